//! Helpers shared by the operator's integration tests.

#![allow(dead_code, reason = "each test binary uses some of the helpers")]

use k8s_openapi::api::core::v1::Namespace;
use kube::{Client, Resource, ResourceExt};
use stowaway_operator::addon_registry::{AddonParameter, BuiltinAddon};

/// One cluster-scoped object the fake API server cannot hold, served by [`with_cluster_objects`].
pub struct ClusterObject {
    /// Collection path, such as `/api/v1/namespaces`.
    pub collection: String,
    /// Object name.
    pub name: String,
    /// The object as JSON.
    pub json: Vec<u8>,
}

impl ClusterObject {
    /// The entry for a cluster-scoped object.
    pub fn of<K>(object: &K) -> ClusterObject
    where
        K: Resource<DynamicType = ()> + serde::Serialize,
    {
        let group = K::group(&());
        let version = K::version(&());
        let plural = K::plural(&());
        let collection = if group.is_empty() {
            format!("/api/{version}/{plural}")
        } else {
            format!("/apis/{group}/{version}/{plural}")
        };
        ClusterObject {
            collection,
            name: object.name_any(),
            json: serde_json::to_vec(object).expect("json"),
        }
    }
}

/// The fake API server registers every custom resource as namespaced and cannot serve
/// `GET /api/v1/namespaces/NAME` (it reads `namespaces` as the start of a namespaced path), so
/// this layer answers `GET` of the given cluster-scoped objects (404 for other names in their
/// collections) and passes every other request on.
pub fn with_cluster_objects(inner: Client, objects: Vec<ClusterObject>) -> Client {
    let objects = std::sync::Arc::new(objects);
    let service = tower::service_fn(move |request: http::Request<kube::client::Body>| {
        let inner = inner.clone();
        let objects = objects.clone();
        async move {
            let path = request.uri().path().to_owned();
            let hit = objects.iter().find_map(|o| {
                path.strip_prefix(&o.collection)
                    .and_then(|rest| rest.strip_prefix('/'))
                    .filter(|name| !name.is_empty() && !name.contains('/'))
                    .map(|name| (o.collection.clone(), name.to_owned()))
            });
            if request.method() == http::Method::GET
                && let Some((collection, name)) = hit
            {
                let found = objects
                    .iter()
                    .find(|o| o.collection == collection && o.name == name);
                let (code, body) = match found {
                    Some(o) => (200, o.json.clone()),
                    None => (
                        404,
                        serde_json::to_vec(&serde_json::json!({
                            "kind": "Status", "apiVersion": "v1", "status": "Failure",
                            "reason": "NotFound", "code": 404,
                            "message": format!("{collection}/{name} not found"),
                        }))
                        .expect("json"),
                    ),
                };
                let response = http::Response::builder()
                    .status(code)
                    .header("content-type", "application/json")
                    .body(kube::client::Body::from(body))
                    .expect("response");
                return Ok::<_, kube::Error>(response);
            }
            inner.send(request).await
        }
    });
    Client::new(service, "default")
}

/// [`with_cluster_objects`] for Namespaces.
pub fn with_namespaces(inner: Client, namespaces: Vec<Namespace>) -> Client {
    with_cluster_objects(inner, namespaces.iter().map(ClusterObject::of).collect())
}

/// The fake API server takes every custom kind for a namespaced one, so cluster-scoped kinds
/// (Addon, Function) cannot be written through their real paths. This layer sends requests
/// for the kinds of `group` to namespace `default` of the fake server (where objects without
/// a namespace are loaded), and passes every other one on.
pub fn cluster_scoped(inner: Client, group: &'static str) -> Client {
    let service = tower::service_fn(move |mut request: http::Request<kube::client::Body>| {
        let inner = inner.clone();
        async move {
            let prefix = format!("/apis/{group}/");
            let path = request.uri().path().to_owned();
            if let Some(rest) = path.strip_prefix(&prefix)
                && let Some((version, resource)) = rest.split_once('/')
                && !resource.starts_with("namespaces/")
            {
                let query = request
                    .uri()
                    .query()
                    .map(|q| format!("?{q}"))
                    .unwrap_or_default();
                let rewritten = format!("{prefix}{version}/namespaces/default/{resource}{query}");
                *request.uri_mut() = rewritten.parse().expect("uri");
            }
            inner.send(request).await
        }
    });
    Client::new(service, "default")
}

/// The built-in addons as they describe themselves (`stowaway addon describe`), shortened to
/// the parameters the tests use; the `stowaway` crate checks the real descriptions.
pub fn builtin_addons() -> Vec<BuiltinAddon> {
    let param = |name: &str, kind: &str, default: Option<&str>| AddonParameter {
        name: name.into(),
        kind: kind.into(),
        description: format!("the {name}"),
        default: default.map(str::to_owned),
    };
    let addon = |name: &str, digest: char, parameters: Vec<AddonParameter>| BuiltinAddon {
        name: name.into(),
        version: "0.1.0".into(),
        description: format!("the {name} addon"),
        digest: std::iter::repeat_n(digest, 64).collect(),
        target_kinds: vec![name.into()],
        backup: true,
        restore: true,
        parameters,
    };
    vec![
        addon(
            "volume",
            'a',
            vec![
                param("exclude", "text-list", Some("")),
                param("restore-owner", "boolean", Some("true")),
                param("overwrite", "boolean", Some("true")),
            ],
        ),
        addon(
            "postgres",
            'b',
            vec![
                param("host", "text", None),
                param("port", "integer", Some("5432")),
                param("backupCmd", "text", Some("pg_dumpall")),
                param("args", "text", Some("")),
            ],
        ),
        addon(
            "mysql",
            'c',
            vec![
                param("host", "text", None),
                param("port", "integer", Some("3306")),
                param("databases", "text-list", Some("")),
            ],
        ),
    ]
}

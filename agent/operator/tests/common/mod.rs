//! Helpers shared by the operator's integration tests.

use k8s_openapi::api::core::v1::Namespace;
use kube::{Client, Resource, ResourceExt};

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
#[allow(dead_code, reason = "not every test binary reads namespaces")]
pub fn with_namespaces(inner: Client, namespaces: Vec<Namespace>) -> Client {
    with_cluster_objects(inner, namespaces.iter().map(ClusterObject::of).collect())
}

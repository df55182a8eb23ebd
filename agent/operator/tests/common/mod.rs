//! Helpers shared by the operator's integration tests.

use k8s_openapi::api::core::v1::Namespace;
use kube::{Client, ResourceExt};

/// The fake API server cannot serve `GET /api/v1/namespaces/NAME` (it reads `namespaces` as
/// the start of a namespaced path), so this layer answers those requests and passes every
/// other one on.
pub fn with_namespaces(inner: Client, namespaces: Vec<Namespace>) -> Client {
    let service = tower::service_fn(move |request: http::Request<kube::client::Body>| {
        let inner = inner.clone();
        let namespaces = namespaces.clone();
        async move {
            let path = request.uri().path().to_owned();
            if let Some(name) = path.strip_prefix("/api/v1/namespaces/")
                && !name.contains('/')
            {
                let (code, body) = match namespaces.iter().find(|n| n.name_any() == name) {
                    Some(ns) => (200, serde_json::to_vec(ns).expect("json")),
                    None => (
                        404,
                        serde_json::to_vec(&serde_json::json!({
                            "kind": "Status", "apiVersion": "v1", "status": "Failure",
                            "reason": "NotFound", "code": 404,
                            "message": format!("namespaces \"{name}\" not found"),
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

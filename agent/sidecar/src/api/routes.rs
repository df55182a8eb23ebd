//! The routes: authorization, then one handler per endpoint.

use serde::de::DeserializeOwned;
use stowaway_operator::http::Request;

use super::Shared;
use super::response::Response;
use crate::wire::{BackupRequest, Created, RestoreRequest, SnapshotList};

/// The answer to `request`.
pub(super) async fn handle(request: &Request, shared: &Shared) -> Response {
    // Without the token, nothing is answered but 401 (not even whether a path exists).
    if let Some(token) = &shared.token {
        let authorization = request.header("authorization");
        if !token.authorizes(authorization) {
            let message = match authorization {
                None => {
                    "this API needs the header `Authorization: Bearer <token>` (the token in the sidecar's mounted Secret)"
                }
                Some(_) => "the bearer token is wrong",
            };
            return Response::error(401, "unauthorized", message)
                .with_header("www-authenticate", "Bearer");
        }
    }
    let method = request.method.as_str();
    match request.path.trim_end_matches('/') {
        "/v1/backups" => match method {
            "POST" => create_backup(request, shared).await,
            _ => not_allowed("POST"),
        },
        "/v1/snapshots" => match method {
            "GET" => match shared.store.snapshots().await {
                Ok(snapshots) => Response::json(200, &SnapshotList { snapshots }),
                Err(e) => Response::from_store_error(&e),
            },
            _ => not_allowed("GET"),
        },
        "/v1/restores" => match method {
            "POST" => create_restore(request, shared).await,
            _ => not_allowed("POST"),
        },
        path => match (
            path.strip_prefix("/v1/backups/"),
            path.strip_prefix("/v1/restores/"),
        ) {
            (Some(name), _) if !name.contains('/') => match method {
                "GET" => match shared.store.backup(name).await {
                    Ok(info) => Response::json(200, &info),
                    Err(e) => Response::from_store_error(&e),
                },
                _ => not_allowed("GET"),
            },
            (_, Some(name)) if !name.contains('/') => match method {
                "GET" => match shared.store.restore(name).await {
                    Ok(info) => Response::json(200, &info),
                    Err(e) => Response::from_store_error(&e),
                },
                _ => not_allowed("GET"),
            },
            _ => Response::error(
                404,
                "not_found",
                format!(
                    "no endpoint {}: the API has POST /v1/backups, GET /v1/backups/NAME, GET /v1/snapshots, POST /v1/restores and GET /v1/restores/NAME",
                    request.path
                ),
            ),
        },
    }
}

fn not_allowed(allow: &'static str) -> Response {
    Response::error(
        405,
        "method_not_allowed",
        format!("this endpoint takes {allow} only"),
    )
    .with_header("allow", allow)
}

/// The JSON body as `T`; an empty body is `{}` when `empty_ok`.
fn body<T: DeserializeOwned>(request: &Request, empty_ok: bool) -> Result<T, Response> {
    let body: &[u8] = if request.body.trim_ascii().is_empty() && empty_ok {
        b"{}"
    } else {
        &request.body
    };
    serde_json::from_slice(body).map_err(|e| {
        Response::error(
            400,
            "invalid_json",
            format!("the body is not the JSON this endpoint takes: {e}"),
        )
    })
}

async fn create_backup(request: &Request, shared: &Shared) -> Response {
    let wanted: BackupRequest = match body(request, true) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Err(message) = wanted.validate() {
        return Response::error(400, "invalid_field", message);
    }
    match shared.store.create_backup(&wanted).await {
        Ok(name) => Response::json(
            202,
            &Created {
                status: Some(format!("/v1/backups/{name}")),
                name,
            },
        ),
        Err(e) => Response::from_store_error(&e),
    }
}

async fn create_restore(request: &Request, shared: &Shared) -> Response {
    if !shared.allow_restore {
        return Response::error(
            403,
            "restore_not_allowed",
            "restores through the sidecar's API are off: start the sidecar with --allow-restore \
             (STOWAWAY_ALLOW_RESTORE=true; `api.allowRestore: true` in a standalone sidecar's \
             configuration) to allow whoever can reach the API to restore the target's \
             snapshots into it",
        );
    }
    let wanted: RestoreRequest = match body(request, false) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Err(message) = wanted.validate() {
        return Response::error(400, "invalid_field", message);
    }
    match shared.store.create_restore(&wanted).await {
        Ok(name) => Response::json(
            202,
            &Created {
                status: Some(format!("/v1/restores/{name}")),
                name,
            },
        ),
        Err(e) => Response::from_store_error(&e),
    }
}

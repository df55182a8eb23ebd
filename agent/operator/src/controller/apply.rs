//! Idempotent writes shared by the reconcilers.

use std::fmt::Debug;

use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Context, Error};
use crate::events::Note;

/// Creates `object`; one that already exists counts as created.
pub(crate) async fn create<K>(api: &Api<K>, object: &K) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + Serialize + Debug,
{
    match api.create(&PostParams::default(), object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Deletes `name` in the background; one that is gone already counts as deleted.
pub(crate) async fn delete<K>(api: &Api<K>, name: &str) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Replaces the status of `name` (a merge patch of the status subresource) when it changed.
pub(crate) async fn status<K, S>(
    api: &Api<K>,
    name: &str,
    old: Option<&S>,
    new: &S,
) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
    S: Serialize + PartialEq,
{
    if old == Some(new) {
        return Ok(());
    }
    let value = serde_json::to_value(new).map_err(|source| Error::Serialize {
        name: name.to_owned(),
        source,
    })?;
    // A merge patch cannot remove list entries one by one: send the whole status, and null
    // for the fields it no longer has, so stale values do not linger.
    let mut patch_status = value;
    if let (Some(old), Some(map)) = (old, patch_status.as_object_mut())
        && let Ok(serde_json::Value::Object(old)) = serde_json::to_value(old)
    {
        for key in old.keys() {
            map.entry(key.clone()).or_insert(serde_json::Value::Null);
        }
    }
    let patch = serde_json::json!({ "status": patch_status });
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// Records the plan's notes as Events on `object`. Failing to record an Event is logged,
/// not fatal: the status carries the same information.
pub(crate) async fn events<K>(ctx: &Context, object: &K, notes: &[Note])
where
    K: Resource<DynamicType = ()>,
{
    let reference = object.object_ref(&());
    for note in notes {
        let event = Event {
            type_: if note.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: note.reason.clone(),
            note: Some(truncate(&note.message, 1000)),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &reference).await {
            tracing::warn!(object = %object.name_any(), reason = %note.reason, error = %e, "cannot record event");
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

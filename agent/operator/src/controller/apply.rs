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

/// Writes the status of `name` when it changed: a merge patch of the status subresource
/// holding only what differs from `old` (null for fields it no longer has). Fields this
/// decision did not change are not sent, so a value another writer set meanwhile (an
/// executor's component outcome, say) is not overwritten with the stale one read before.
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
    let serialize = |value: &S| {
        serde_json::to_value(value).map_err(|source| Error::Serialize {
            name: name.to_owned(),
            source,
        })
    };
    let new_value = serialize(new)?;
    let patch_status = match old {
        Some(old) => merge_diff(&serialize(old)?, &new_value),
        None => new_value,
    };
    let patch = serde_json::json!({ "status": patch_status });
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// The JSON merge patch (RFC 7386) turning `old` into `new`: changed and new fields, nested
/// objects recursively, `null` for removed fields; lists and scalars whole.
pub(crate) fn merge_diff(old: &serde_json::Value, new: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => {
            let mut patch = serde_json::Map::new();
            for (key, value) in new {
                match old.get(key) {
                    Some(before) if before == value => {}
                    Some(before) if before.is_object() && value.is_object() => {
                        patch.insert(key.clone(), merge_diff(before, value));
                    }
                    _ => {
                        patch.insert(key.clone(), value.clone());
                    }
                }
            }
            for key in old.keys() {
                if !new.contains_key(key) {
                    patch.insert(key.clone(), Value::Null);
                }
            }
            Value::Object(patch)
        }
        _ => new.clone(),
    }
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

/// Adds `finalizer` to `object`: a merge patch of the whole list carrying the object's
/// `resourceVersion`, so that a concurrent change fails with a conflict (and the reconcile is
/// retried) instead of being overwritten. Shared by the BackupStorage and Repository
/// reconcilers.
pub(crate) async fn add_finalizer<K>(api: &Api<K>, object: &K, finalizer: &str) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let mut finalizers = object.finalizers().to_vec();
    if finalizers.iter().any(|f| f == finalizer) {
        return Ok(());
    }
    finalizers.push(finalizer.to_owned());
    let mut metadata = serde_json::json!({ "finalizers": finalizers });
    if let Some(version) = object.resource_version() {
        metadata["resourceVersion"] = version.into();
    }
    let patch = serde_json::json!({ "metadata": metadata });
    api.patch(
        &object.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

/// Removes `finalizer` from `object` (tested by position, so that another controller's
/// finalizer is never removed); an object or finalizer already gone counts as removed.
/// Shared by the BackupStorage and Repository reconcilers.
pub(crate) async fn remove_finalizer<K>(
    api: &Api<K>,
    object: &K,
    finalizer: &str,
) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let Some(index) = object.finalizers().iter().position(|f| f == finalizer) else {
        return Ok(());
    };
    let path = format!("/metadata/finalizers/{index}");
    let ops = serde_json::json!([
        { "op": "test", "path": path, "value": finalizer },
        { "op": "remove", "path": path },
    ]);
    match json_patch(api, &object.name_any(), ops).await {
        Err(Error::Kube(kube::Error::Api(e))) if e.code == 404 => Ok(()),
        other => other,
    }
}

async fn json_patch<K>(api: &Api<K>, name: &str, ops: serde_json::Value) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let patch: json_patch::Patch =
        serde_json::from_value(ops).map_err(|source| Error::Serialize {
            name: name.to_owned(),
            source,
        })?;
    api.patch(name, &PatchParams::default(), &Patch::<()>::Json(patch))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::merge_diff;

    #[test]
    fn a_merge_diff_sends_only_what_changed() {
        let old = json!({
            "phase": "Running",
            "components": {"dump": {"phase": "Pending"}, "wal": {"phase": "Pending"}},
            "conditions": [{"type": "A"}],
            "duration": "1s"
        });
        let new = json!({
            "phase": "Failed",
            "components": {"dump": {"phase": "Pending"}, "wal": {"phase": "Failed", "error": "x"}},
            "conditions": [{"type": "A"}, {"type": "B"}]
        });
        let patch = merge_diff(&old, &new);
        assert_eq!(
            patch,
            json!({
                "phase": "Failed",
                "components": {"wal": {"phase": "Failed", "error": "x"}},
                "conditions": [{"type": "A"}, {"type": "B"}],
                "duration": null
            })
        );
        // Applying it to the old value gives the new one.
        let mut doc = old.clone();
        json_patch::merge(&mut doc, &patch);
        assert_eq!(doc, new);
    }
}

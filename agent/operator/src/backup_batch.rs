//! The BackupBatch's own rules. A batch is reconciled by the BackupConfiguration logic
//! ([`crate::backup_configuration::decide`] over an [`Invoker::Batch`]): the same readiness,
//! repositories and schedules, with one BackupSession per run covering every member.

use std::collections::BTreeMap;

use stowaway_api::BackupBatch;

use crate::backup_configuration::validate_sessions;
use crate::invoker::Invoker;

/// Problems with a batch's spec (empty when valid), each naming its field.
pub fn validate(batch: &BackupBatch) -> Vec<String> {
    let mut problems = Vec::new();
    if batch.spec.targets.is_empty() {
        problems.push("spec.targets: at least one member is required".to_owned());
    }
    let mut members = BTreeMap::new();
    for (i, target) in batch.spec.targets.iter().enumerate() {
        let at = format!("spec.targets[{i}]");
        if target.name.is_empty() {
            problems.push(format!("{at}.name: required"));
        } else if let Some(first) = members.insert(target.name.as_str(), i) {
            problems.push(format!(
                "{at}.name: {:?} is already the name of spec.targets[{first}]",
                target.name
            ));
        }
        if target.app_ref.kind.is_empty() || target.app_ref.name.is_empty() {
            problems.push(format!("{at}.appRef: kind and name are required"));
        }
    }
    // A repository holds one member's snapshots: its Repository object names one target.
    let mut repositories: BTreeMap<&str, &str> = BTreeMap::new();
    for (i, session) in batch.spec.sessions.iter().enumerate() {
        if session.targets.is_empty() {
            problems.push(format!(
                "spec.sessions[{i}].targets: at least one member is required"
            ));
        }
        let mut seen = BTreeMap::new();
        for (k, target) in session.targets.iter().enumerate() {
            let at = format!("spec.sessions[{i}].targets[{k}]");
            if !members.contains_key(target.name.as_str()) {
                problems.push(format!(
                    "{at}.name: {:?} is not a member of spec.targets",
                    target.name
                ));
            }
            if let Some(first) = seen.insert(target.name.as_str(), k) {
                problems.push(format!(
                    "{at}.name: member {:?} is already listed at spec.sessions[{i}].targets[{first}]",
                    target.name
                ));
            }
            for (j, repo) in target.repositories.iter().enumerate() {
                match repositories.insert(&repo.name, &target.name) {
                    Some(other) if other != target.name => problems.push(format!(
                        "{at}.repositories[{j}].name: repository {:?} already holds member {other:?}; each member needs its own",
                        repo.name
                    )),
                    _ => {}
                }
            }
        }
    }
    validate_sessions(Invoker::Batch(batch), &mut problems);
    problems
}

#[cfg(test)]
mod tests;

//! Who runs a backup or restore: the target's sidecar, or a Job running `stowaway`.

use jiff::Timestamp;
use stowaway_api::common::Condition;

use crate::conditions;

/// Who runs a backup or restore.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Executor {
    /// A Stowaway sidecar beside the target claims the session.
    Sidecar,
    /// A Job runs `stowaway`; `None` while it does not exist.
    Job(Option<JobState>),
}

/// What the operator sees of an executor Job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Still running (or not started).
    Active,
    /// Completed.
    Succeeded,
    /// Failed; the text is the Job's reason and message.
    Failed(String),
}

/// Records who has the work in the condition `condition_type`; `true` when the executor Job
/// must be created. `work` is `backup` or `restore`.
pub fn ensure(
    executor: &Executor,
    conditions_list: &mut Vec<Condition>,
    condition_type: &str,
    work: &str,
    now: Timestamp,
) -> bool {
    match executor {
        Executor::Sidecar => {
            conditions::set(
                conditions_list,
                condition_type,
                true,
                "SidecarExecutor",
                format!("the target's sidecar runs the {work}"),
                now,
            );
            false
        }
        Executor::Job(None) => {
            conditions::set(
                conditions_list,
                condition_type,
                true,
                "JobExecutor",
                format!("a Job runs the {work}"),
                now,
            );
            true
        }
        Executor::Job(Some(_)) => false,
    }
}

/// [`ensure`] for every member of a run (`members[i]` is the batch member name of
/// `executors[i]`, `None` for a configuration): records who has the work in one condition and
/// returns the indices of the members whose Job must be created.
pub fn ensure_all(
    executors: &[Executor],
    members: &[Option<&str>],
    conditions_list: &mut Vec<Condition>,
    condition_type: &str,
    work: &str,
    now: Timestamp,
) -> Vec<usize> {
    if let [executor] = executors
        && members.first().copied().flatten().is_none()
    {
        return if ensure(executor, conditions_list, condition_type, work, now) {
            vec![0]
        } else {
            Vec::new()
        };
    }
    let mut create = Vec::new();
    let mut parts = Vec::new();
    for (i, executor) in executors.iter().enumerate() {
        let member = members.get(i).copied().flatten().unwrap_or("?");
        match executor {
            Executor::Sidecar => parts.push(format!("{member}: sidecar")),
            Executor::Job(state) => {
                if state.is_none() {
                    create.push(i);
                }
                parts.push(format!("{member}: Job"));
            }
        }
    }
    conditions::set(
        conditions_list,
        condition_type,
        true,
        "ExecutorsEnsured",
        format!("the {work} runs on {}", parts.join(", ")),
        now,
    );
    create
}

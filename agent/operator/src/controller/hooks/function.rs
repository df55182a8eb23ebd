//! The `Function` hook executor: a Job runs the Function's image; the hook is running while
//! the Job is, and its outcome is the Job's.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;
use kube::api::Api;
use stowaway_api::common::HookInfo;
use stowaway_api::{Function, HookTemplate};

use super::{Context, Invocation, Outcome};
use crate::backup_configuration::managed_labels;
use crate::duration::parse_duration;
use crate::executor::JobState;
use crate::hooks::Stage;
use crate::job::{HookJob, hook_job, job_state};
use crate::names;

/// Creates the hook's Job if it does not exist, then reports the Job's state.
pub(super) async fn run(
    ctx: &Context,
    invocation: &Invocation<'_>,
    hook: &HookInfo,
    template: &HookTemplate,
    vars: &BTreeMap<String, String>,
) -> Outcome {
    let template_name = template.name_any();
    let Some(executor) = template.spec.executor.function.as_ref() else {
        return Outcome::Failed(format!(
            "HookTemplate {template_name}: the Function executor needs executor.function"
        ));
    };
    let stage = match invocation.stage {
        Stage::Pre => "pre",
        Stage::Post => "post",
    };
    let name = names::object_name(&["hook", invocation.session, stage, &hook.name]);
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), invocation.namespace);
    match jobs.get_opt(&name).await {
        Err(e) => return Outcome::Failed(format!("reading Job {name}: {e}")),
        Ok(Some(job)) => {
            return match job_state(&job) {
                JobState::Active => Outcome::Running,
                JobState::Succeeded => Outcome::Succeeded,
                JobState::Failed(why) => Outcome::Failed(format!("hook Job {name}: {why}")),
            };
        }
        Ok(None) => {}
    }
    let functions: Api<Function> = Api::all(ctx.client.clone());
    let function = match functions.get_opt(&executor.name).await {
        Ok(Some(f)) => f,
        Ok(None) => {
            return Outcome::Failed(format!(
                "Function {} of HookTemplate {template_name} not found",
                executor.name
            ));
        }
        Err(e) => return Outcome::Failed(format!("reading Function {}: {e}", executor.name)),
    };
    let mut labels = managed_labels();
    labels.insert("stowaway.dev/hook".into(), hook.name.clone());
    labels.insert(
        "stowaway.dev/hook-session".into(),
        invocation.session.into(),
    );
    let job = match hook_job(&HookJob {
        name: name.clone(),
        namespace: invocation.namespace,
        function: &function.spec,
        executor,
        vars,
        labels,
        owner: invocation.owner.clone(),
        timeout: hook.timeout.as_deref().and_then(|t| parse_duration(t).ok()),
        retries: hook.max_retry.unwrap_or(0),
    }) {
        Ok(job) => job,
        Err(e) => {
            return Outcome::Failed(format!(
                "Function {} of HookTemplate {template_name}: {e}",
                executor.name
            ));
        }
    };
    match crate::controller::apply::create(&jobs, &job).await {
        Ok(()) => {
            tracing::info!(job = %name, hook = %hook.name, "created hook Job");
            Outcome::Running
        }
        Err(e) => Outcome::Failed(format!("creating Job {name}: {e}")),
    }
}

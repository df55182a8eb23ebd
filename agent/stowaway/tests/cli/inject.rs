//! `stowaway inject` as a command: what it refuses before it needs a cluster, and what it
//! says without one (the rest runs against a fake API server in `src/cli/inject/tests.rs`).

use super::util::Env;

#[test]
fn inject_refuses_what_cannot_be_rolled() {
    let env = Env::new();
    let line = env.fail(&["inject", "pod/web-0", "-n", "shop"]);
    assert!(
        line.contains("pod/web-0: a bare Pod cannot be rolled"),
        "{line}"
    );
    let line = env.fail(&["inject", "job/nightly", "--remove"]);
    assert!(line.contains("a Job cannot be rolled"), "{line}");
    let line = env.fail(&["inject", "web"]);
    assert!(line.contains("name the workload as KIND/NAME"), "{line}");
}

#[test]
fn inject_without_a_cluster_says_so() {
    let env = Env::new();
    let mut cmd = env.command(&["inject", "deployment/web", "-n", "shop", "--dry-run"]);
    cmd.env("KUBECONFIG", env.path("no-kubeconfig"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT");
    let out = cmd.output().expect("run stowaway");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("stowaway: no Kubernetes API to talk to"),
        "{stderr}"
    );
}

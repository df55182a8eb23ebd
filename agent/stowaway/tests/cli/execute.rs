//! `stowaway execute` outside a cluster, and its arguments.

use crate::util::Env;

#[test]
fn execute_without_a_cluster_says_what_is_missing() {
    let env = Env::new();
    for action in ["backup", "restore"] {
        let out = env
            .command(&["execute", action, "--namespace", "demo", "--session", "s1"])
            .env("KUBECONFIG", env.path("no-such-kubeconfig"))
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KUBERNETES_SERVICE_PORT")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{action}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(
                "no Kubernetes API to talk to: `stowaway execute` runs in the Job the operator \
                 creates for a session, or set KUBECONFIG"
            ),
            "{stderr}"
        );
    }
    let out = env.fail(&[
        "execute",
        "restore",
        "--namespace",
        "demo",
        "--session",
        "s1",
        "--member",
        "web",
    ]);
    assert!(
        out.contains("--member is for backups of a BackupBatch; a restore takes none"),
        "{out}"
    );
    let out = env
        .command(&["execute", "backup", "--namespace", "demo"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a usage error");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--session <SESSION>"), "{stderr}");
}

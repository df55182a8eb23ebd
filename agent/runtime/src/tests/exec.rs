//! The `exec` and network capabilities: programs and endpoints need both the addon's
//! declaration and the job's grant; children are killed with the job; secrets stay out of logs.

use std::io::Read;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use stowaway_addons::test_programs;
use zeroize::Zeroizing;

use super::{failure, harness};
use crate::{Endpoint, Error, ExecGrant, Failure, JobLimits, JobSpec};

fn grant(program: &str, args: &[&str]) -> ExecGrant {
    ExecGrant {
        program: program.into(),
        args: args.iter().map(|a| a.to_string()).collect(),
    }
}

fn spec(id: &str, params: &[(&str, &str)]) -> JobSpec {
    let mut spec = JobSpec::new(id);
    spec.parameters = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    spec.exec = vec![grant("sh", &["-c", "*"])];
    spec
}

fn failed(fail: &Failure) -> (&str, &str) {
    match fail {
        Failure::Failed { kind, message } => (kind, message),
        other => panic!("expected an addon error, got {other:?}"),
    }
}

/// The output of a local command, for comparison.
fn local_output(script: &str) -> Vec<u8> {
    std::process::Command::new("sh")
        .args(["-c", script])
        .output()
        .expect("sh")
        .stdout
}

#[test]
fn child_output_round_trips_through_a_component() {
    let h = harness();
    let addon = h.load(test_programs::EXEC_PROBE);
    let script = "seq 1 300000";
    let out = h
        .backup(&addon, spec("dump", &[("script", script)]))
        .expect("backup");
    let expected = local_output(script);
    assert_eq!(out.components.len(), 1);
    assert_eq!(out.components[0].size, expected.len() as u64);
    let mut stored = Vec::new();
    h.repo
        .open_stream(&out.components[0])
        .expect("open")
        .read_to_end(&mut stored)
        .expect("read");
    assert_eq!(stored, expected);

    // Restore: the host feeds the component into the child's stdin.
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("restored.txt");
    let restore_script = format!("cat > '{}'", target.display());
    addon
        .restore(
            spec("load", &[("script", &restore_script)]),
            h.repo.clone(),
            out.components,
        )
        .expect("restore");
    assert_eq!(std::fs::read(&target).expect("restored file"), expected);
}

#[test]
fn pipes_to_and_from_the_addon() {
    let h = harness();
    let addon = h.load(test_programs::EXEC_PROBE);
    let out = h
        .backup(
            &addon,
            spec(
                "filter",
                &[
                    ("mode", "filter"),
                    ("script", "tr a-z A-Z"),
                    ("text", "hello\nworld\n"),
                ],
            ),
        )
        .expect("backup");
    let mut stored = String::new();
    h.repo
        .open_stream(&out.components[0])
        .expect("open")
        .read_to_string(&mut stored)
        .expect("read");
    assert_eq!(stored, "HELLO\nWORLD\n");
}

#[test]
fn failing_program_reports_status_and_stderr_without_secrets() {
    let h = harness();
    let addon = h.load(test_programs::EXEC_PROBE);
    let mut job = spec(
        "fail",
        &[
            (
                "script",
                "printf %s \"$PW\"; echo \"login as x with $PW refused\" >&2; exit 3",
            ),
            ("secret-env", "true"),
        ],
    );
    job.secrets
        .insert("password".into(), Zeroizing::new(b"s3cret-pw".to_vec()));
    let (_, fail) = failure(h.backup(&addon, job));
    let (kind, message) = failed(&fail);
    assert_eq!(kind, "io");
    assert_eq!(
        message,
        "sh failed (exit status 3): login as x with *** refused"
    );
    assert!(!fail.to_string().contains("s3cret-pw"));

    // The secret did reach the child: it is what the child wrote to the component.
    let mut job = spec(
        "secret",
        &[("script", "printf %s \"$PW\""), ("secret-env", "true")],
    );
    job.secrets
        .insert("password".into(), Zeroizing::new(b"s3cret-pw".to_vec()));
    let out = h.backup(&addon, job).expect("backup");
    assert_eq!(out.components[0].size, 9);

    // Without the secret provided, the child is not started.
    let job = spec("no-secret", &[("script", "true"), ("secret-env", "true")]);
    let (_, fail) = failure(h.backup(&addon, job));
    assert_eq!(
        failed(&fail),
        (
            "not-found",
            "secret \"password\" was not provided for this job"
        )
    );
}

#[test]
fn programs_need_declaration_and_grant() {
    let h = harness();
    let addon = h.load(test_programs::EXEC_PROBE);
    // Not declared by the addon (it declares `sh -c *` and `true **`).
    let job = spec("ls", &[("mode", "program"), ("program", "ls")]);
    let (_, fail) = failure(h.backup(&addon, job));
    assert_eq!(
        failed(&fail),
        (
            "permission-denied",
            "running `ls` is not declared in describe().capabilities"
        )
    );
    // Declared, not granted (the job grants only `sh -c *`).
    let job = spec(
        "true",
        &[("mode", "program"), ("program", "true"), ("args", "x")],
    );
    let (_, fail) = failure(h.backup(&addon, job));
    assert_eq!(
        failed(&fail),
        (
            "permission-denied",
            "running `true x` is not granted to this job"
        )
    );
    // Declared and granted, but the arguments do not match the pattern.
    let mut job = spec(
        "sh",
        &[("mode", "program"), ("program", "sh"), ("args", "-e\nx")],
    );
    job.exec.push(grant("true", &["**"]));
    let (_, fail) = failure(h.backup(&addon, job));
    assert_eq!(
        failed(&fail),
        (
            "permission-denied",
            "running `sh -e x` is not declared in describe().capabilities"
        )
    );
    // A grant for something the addon never declared stops the job before it starts.
    let mut job = spec("rm", &[]);
    job.exec.push(grant("rm", &["**"]));
    match h.backup(&addon, job) {
        Err(Error::PermissionDenied { reason, .. }) => assert_eq!(
            reason,
            "the job grants running \"rm\", which it does not declare"
        ),
        other => panic!("expected permission denied, got {other:?}"),
    }
}

#[test]
fn children_are_killed_at_the_deadline() {
    let h = harness();
    let addon = h.load(test_programs::EXEC_PROBE);
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("pid");
    let script = format!("echo $$ > '{}'; exec sleep 60", pid_file.display());
    let mut job = spec("sleep", &[("script", &script)]);
    job.limits = JobLimits {
        deadline: Some(Duration::from_millis(500)),
        grace: Duration::from_secs(5),
        ..JobLimits::default()
    };
    let started = Instant::now();
    let (_, fail) = failure(h.backup(&addon, job));
    assert_eq!(fail, Failure::Timeout(Duration::from_millis(500)));
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the child was not killed promptly: {:?}",
        started.elapsed()
    );
    let pid = std::fs::read_to_string(&pid_file).expect("pid file");
    let proc = std::path::Path::new("/proc").join(pid.trim());
    assert!(!proc.exists(), "child {} still exists", pid.trim());
}

#[test]
fn connections_only_to_granted_endpoints() {
    let h = harness();
    let addon = h.load(test_programs::EXEC_PROBE);
    let granted = TcpListener::bind("127.0.0.1:0").expect("listen");
    let other = TcpListener::bind("127.0.0.1:0").expect("listen");
    let granted_port = granted.local_addr().expect("addr").port();
    let other_port = other.local_addr().expect("addr").port();
    let job = |port: u16| {
        let port = port.to_string();
        let mut job = spec(
            "connect",
            &[("mode", "connect"), ("host", "127.0.0.1"), ("port", &port)],
        );
        job.connect = vec![Endpoint::new("127.0.0.1", granted_port)];
        job
    };
    let out = h
        .backup(&addon, job(granted_port))
        .expect("granted endpoint");
    assert_eq!(
        out.attributes,
        vec![("reachable".to_string(), format!("127.0.0.1:{granted_port}"))]
    );
    let (_, fail) = failure(h.backup(&addon, job(other_port)));
    assert_eq!(
        failed(&fail),
        (
            "permission-denied",
            format!("connecting to 127.0.0.1:{other_port} is not granted to this job").as_str()
        )
    );
    // Granted, but nothing listens any more.
    drop(granted);
    let (_, fail) = failure(h.backup(&addon, job(granted_port)));
    let (kind, message) = failed(&fail);
    assert_eq!(kind, "unavailable", "{message}");
    assert!(
        message.starts_with(&format!("cannot reach 127.0.0.1:{granted_port}")),
        "{message}"
    );

    // No grant at all: no connection, not even a name lookup.
    let other_port = other_port.to_string();
    let params = [
        ("mode", "connect"),
        ("host", "127.0.0.1"),
        ("port", other_port.as_str()),
    ];
    let (_, fail) = failure(h.backup(&addon, spec("no-net", &params)));
    assert_eq!(failed(&fail).0, "permission-denied", "{fail:?}");
    let params = [
        ("mode", "connect"),
        ("host", "localhost"),
        ("port", other_port.as_str()),
    ];
    let (_, fail) = failure(h.backup(&addon, spec("no-lookup", &params)));
    let (kind, message) = failed(&fail);
    assert_eq!(kind, "unavailable", "{message}");
    assert!(message.starts_with("cannot resolve localhost"), "{message}");
}

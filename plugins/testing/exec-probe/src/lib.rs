//! Test addon: runs programs and opens connections through the host, as the tests direct.
//!
//! Parameter `mode` selects what `backup` does:
//! * `component`: runs `sh -c SCRIPT` and has the host copy its output into stream component
//!   `out` (`stdout-to-component`); with `secret-env` true, `PW` holds secret `password`;
//! * `filter`: runs `sh -c SCRIPT`, writes `text` to its stdin and reads its stdout through
//!   WASI streams, then writes what it read into component `out`;
//! * `program`: spawns `program` with the arguments in `args` and waits for it;
//! * `connect`: checks that `host:port` answers.
//!
//! `restore` runs `sh -c SCRIPT` with component `out` copied into its stdin by the host.
//! A program that fails is reported with its status and standard error.

use std::io::{Read, Write};
use std::time::Duration;

use stowaway_addon::exec::{Command, Stdio};
use stowaway_addon::{
    Addon, AddonError, AddonInfo, Attributes, Capability, Endpoint, ExecPattern, InputReader, Job,
    Operation, OutputWriter, Parameter, ParameterType, StreamWriter, error,
};

struct ExecProbe;

fn script(job: &Job) -> Result<Command, AddonError> {
    let script = job
        .param("script")
        .ok_or_else(|| error::invalid_parameter("script", "missing"))?;
    let mut command = Command::new("sh").args(["-c", script.as_str()]);
    if job.param_bool("secret-env", false)? {
        command = command.secret_env("PW", "password");
    }
    Ok(command)
}

impl Addon for ExecProbe {
    fn describe() -> AddonInfo {
        let text = |name: &str, description: &str, default: Option<&str>| {
            Parameter::new(name, ParameterType::Text, description, default)
        };
        AddonInfo {
            name: "test-exec-probe".into(),
            version: "0.1.0".into(),
            description: "Runs programs and opens connections through the host (test)".into(),
            target_kinds: vec!["test".into()],
            operations: vec![Operation::Backup, Operation::Restore],
            parameters: vec![
                text(
                    "mode",
                    "component, filter, program or connect",
                    Some("component"),
                ),
                text("script", "Shell script for sh -c", Some("true")),
                text("text", "Input for mode filter", Some("")),
                text("program", "Program for mode program", Some("true")),
                Parameter::new(
                    "args",
                    ParameterType::TextList,
                    "Arguments for mode program",
                    Some(""),
                ),
                Parameter::new(
                    "secret-env",
                    ParameterType::Boolean,
                    "Set PW from secret password",
                    Some("false"),
                ),
                text("host", "Host for mode connect", Some("127.0.0.1")),
                Parameter::new(
                    "port",
                    ParameterType::Integer,
                    "Port for mode connect",
                    Some("1"),
                ),
            ],
            capabilities: vec![
                Capability::Exec(ExecPattern {
                    program: "sh".into(),
                    args: vec!["-c".into(), "*".into()],
                }),
                Capability::Exec(ExecPattern {
                    program: "true".into(),
                    args: vec!["**".into()],
                }),
                Capability::Connect(Endpoint {
                    host: "*".into(),
                    port: 0,
                }),
                Capability::Secret("password".into()),
            ],
        }
    }

    fn backup(job: &Job) -> Result<Attributes, AddonError> {
        let mode = job.param("mode").unwrap_or_default();
        match mode.as_str() {
            "component" => {
                let component = job.create_stream("out", "application/octet-stream")?;
                let child = script(job)?.stdout(Stdio::Pipe).spawn()?;
                child.stdout_to_component(&component)?;
                let status = child.wait()?;
                status.check("sh")?;
                let info = StreamWriter::finish(component, &[])?;
                Ok(vec![("size".into(), info.size.to_string())])
            }
            "filter" => {
                let child = script(job)?
                    .stdin(Stdio::Pipe)
                    .stdout(Stdio::Pipe)
                    .spawn()?;
                let mut stdin = OutputWriter::new(child.stdin()?);
                stdin.write_all(job.param("text").unwrap_or_default().as_bytes())?;
                stdin.close()?;
                let mut output = Vec::new();
                InputReader::new(child.stdout()?).read_to_end(&mut output)?;
                child.wait()?.check("sh")?;
                let component = job.create_stream("out", "text/plain")?;
                let mut out = OutputWriter::new(component.output()?);
                out.write_all(&output)?;
                out.close()?;
                StreamWriter::finish(component, &[])?;
                Ok(vec![("size".into(), output.len().to_string())])
            }
            "program" => {
                let program = job.param("program").unwrap_or_default();
                let command = Command::new(program.as_str()).args(job.param_list("args"));
                command.spawn()?.wait()?.check(&program)?;
                Ok(vec![])
            }
            "connect" => {
                let host = job.param("host").unwrap_or_default();
                let port = job.param_int("port", 1)?;
                let port = u16::try_from(port)
                    .map_err(|_| error::invalid_parameter("port", "not a port"))?;
                stowaway_addon::net::check_reachable(&host, port, Duration::from_secs(5))?;
                Ok(vec![("reachable".into(), format!("{host}:{port}"))])
            }
            other => Err(error::invalid_parameter(
                "mode",
                format!("unknown mode {other:?}"),
            )),
        }
    }

    fn restore(job: &Job) -> Result<Attributes, AddonError> {
        let child = script(job)?.stdin(Stdio::Pipe).spawn()?;
        child.stdin_from_component("out")?;
        child.wait()?.check("sh")?;
        Ok(vec![])
    }
}

stowaway_addon::export_addon!(ExecProbe);

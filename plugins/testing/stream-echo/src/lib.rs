//! Test addon: a generic stream addon.
//!
//! * `backup` writes parameter `text` repeated `repeat` times into the stream component
//!   `data` (`text/plain`) through [`OutputWriter`].
//! * `restore` reads component `data` back and fails with `not-found` when it is missing and
//!   `corrupt` when it differs from what the same parameters would write.
//! * Both first wait `delay-ms` milliseconds, checking for cancellation every 10 ms (and
//!   return `cancelled`).

use std::io::{BufWriter, Read, Write};
use std::time::{Duration, Instant};

use stowaway_addon::{
    Addon, AddonError, AddonInfo, Attributes, InputReader, Job, Operation, OutputWriter, Parameter,
    ParameterType, StreamWriter, error,
};

struct StreamEcho;

struct Params {
    text: String,
    repeat: u64,
}

fn params(job: &Job) -> Result<Params, AddonError> {
    let text = job.param("text").unwrap_or_default();
    let repeat = job.param_int("repeat", 1)?;
    let repeat =
        u64::try_from(repeat).map_err(|_| error::invalid_parameter("repeat", "negative"))?;
    let delay = job.param_int("delay-ms", 0)?;
    let delay =
        u64::try_from(delay).map_err(|_| error::invalid_parameter("delay-ms", "negative"))?;
    // Wait, cancellably.
    let end = Instant::now() + Duration::from_millis(delay);
    while Instant::now() < end {
        job.check_cancelled()?;
        std::thread::sleep(Duration::from_millis(10).min(end - Instant::now()));
    }
    job.check_cancelled()?;
    Ok(Params { text, repeat })
}

impl Addon for StreamEcho {
    fn describe() -> AddonInfo {
        AddonInfo {
            name: "test-stream-echo".into(),
            version: "0.1.0".into(),
            description: "Writes and checks a text stream component (test)".into(),
            target_kinds: vec!["test".into()],
            operations: vec![Operation::Backup, Operation::Restore],
            parameters: vec![
                Parameter::new(
                    "text",
                    ParameterType::Text,
                    "Text to write",
                    Some("hello\n"),
                ),
                Parameter::new(
                    "repeat",
                    ParameterType::Integer,
                    "How many times",
                    Some("1"),
                ),
                Parameter::new(
                    "delay-ms",
                    ParameterType::Integer,
                    "Milliseconds to wait first (cancellation tests)",
                    Some("0"),
                ),
            ],
            capabilities: vec![],
        }
    }

    fn backup(job: &Job) -> Result<Attributes, AddonError> {
        let p = params(job)?;
        let writer = job.create_stream("data", "text/plain")?;
        let mut out = BufWriter::with_capacity(256 << 10, OutputWriter::new(writer.output()?));
        for i in 0..p.repeat {
            if i % 4096 == 4095 {
                job.check_cancelled()?;
            }
            out.write_all(p.text.as_bytes())?;
        }
        out.into_inner()
            .map_err(|e| error::io(e.error()))?
            .close()?;
        let size = p.text.len() as u64 * p.repeat;
        let info = StreamWriter::finish(writer, &[("repeat".into(), p.repeat.to_string())])?;
        Ok(vec![
            ("bytes".into(), size.to_string()),
            ("recorded-size".into(), info.size.to_string()),
        ])
    }

    fn restore(job: &Job) -> Result<Attributes, AddonError> {
        let p = params(job)?;
        if !job.components().iter().any(|c| c.name == "data") {
            return Err(error::not_found("component data is not in the snapshot"));
        }
        let mut input = InputReader::new(job.open_stream("data")?);
        let expected = p.text.as_bytes();
        let total = expected.len() as u64 * p.repeat;
        let mut pos = 0u64;
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = input.read(&mut buf)?;
            if n == 0 {
                break;
            }
            for &b in &buf[..n] {
                if pos >= total || b != expected[(pos % expected.len() as u64) as usize] {
                    return Err(error::corrupt(format!("data differs at byte {pos}")));
                }
                pos += 1;
            }
        }
        if pos != total {
            return Err(error::corrupt(format!(
                "data has {pos} bytes, expected {total}"
            )));
        }
        Ok(vec![("bytes".into(), pos.to_string())])
    }
}

stowaway_addon::export_addon!(StreamEcho);

//! A complete third-party addon (the example in `plugins/README.md`): backup stores the
//! `message` parameter as a stream component, restore checks it is there.
//! Build: `cargo build --release --target wasm32-wasip2 --example hello`.

use std::io::{Read, Write};
use stowaway_addon::{
    Addon, AddonError, AddonInfo, Attributes, InputReader, Job, Operation, OutputWriter, Parameter,
    ParameterType, StreamWriter, error, log,
};

struct Hello;

impl Addon for Hello {
    fn describe() -> AddonInfo {
        AddonInfo {
            name: "hello".into(),
            version: "0.1.0".into(),
            description: "Stores a greeting".into(),
            target_kinds: vec!["hello".into()],
            operations: vec![Operation::Backup, Operation::Restore],
            parameters: vec![Parameter::new(
                "message",
                ParameterType::Text,
                "What to store",
                Some("hi"),
            )],
            capabilities: vec![],
        }
    }

    fn backup(job: &Job) -> Result<Attributes, AddonError> {
        let message = job.param("message").unwrap_or_default();
        let writer = job.create_stream("greeting", "text/plain")?;
        let mut out = OutputWriter::new(writer.output()?);
        out.write_all(message.as_bytes())?;
        out.close()?; // flush, then drop the stream before finish
        StreamWriter::finish(writer, &[])?;
        log::info_with("greeting stored", &[("bytes", &message.len().to_string())]);
        Ok(vec![("length".into(), message.len().to_string())])
    }

    fn restore(job: &Job) -> Result<Attributes, AddonError> {
        let mut text = String::new();
        InputReader::new(job.open_stream("greeting")?).read_to_string(&mut text)?;
        if text != job.param("message").unwrap_or_default() {
            return Err(error::corrupt("the greeting differs"));
        }
        Ok(Vec::new())
    }
}

stowaway_addon::export_addon!(Hello);

//! Test addon: `backup` never returns. With `mode` = `spin` (the default) it spins without
//! calling the host; with `sleep` it blocks in a host call (a one-hour sleep); with
//! `wait-cancel` it blocks on the job's cancel pollable and then returns `cancelled`. The
//! host must stop the first two at the deadline plus the grace period, and wake the third at
//! the deadline.

use stowaway_addon::{
    Addon, AddonError, AddonInfo, Attributes, Job, Operation, Parameter, ParameterType, error,
};

struct LoopForever;

impl Addon for LoopForever {
    fn describe() -> AddonInfo {
        AddonInfo {
            name: "test-loop-forever".into(),
            version: "0.1.0".into(),
            description: "Never returns from backup (sandbox test)".into(),
            target_kinds: vec!["test".into()],
            operations: vec![Operation::Backup],
            parameters: vec![Parameter::new(
                "mode",
                ParameterType::Text,
                "spin, sleep or wait-cancel",
                Some("spin"),
            )],
            capabilities: vec![],
        }
    }

    fn backup(job: &Job) -> Result<Attributes, AddonError> {
        match job.param("mode").as_deref() {
            Some("sleep") => {
                std::thread::sleep(std::time::Duration::from_secs(3600));
                Ok(Vec::new())
            }
            Some("wait-cancel") => {
                job.subscribe_cancel().block();
                Err(AddonError::Cancelled)
            }
            Some("spin") | None => {
                let mut counter = 0u64;
                loop {
                    // black_box keeps the loop (and the counter) from being optimised away.
                    counter = std::hint::black_box(counter.wrapping_add(1));
                    core::hint::spin_loop();
                }
            }
            Some(other) => Err(error::invalid_parameter(
                "mode",
                format!("unknown mode {other:?}"),
            )),
        }
    }
}

stowaway_addon::export_addon!(LoopForever);

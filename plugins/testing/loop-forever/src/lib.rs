//! Test addon: `backup` spins forever without calling the host. The host must stop it
//! (epoch deadline) and fail the job.

use stowaway_addon::{Addon, AddonError, AddonInfo, Attributes, Job, Operation};

struct LoopForever;

impl Addon for LoopForever {
    fn describe() -> AddonInfo {
        AddonInfo {
            name: "test-loop-forever".into(),
            version: "0.1.0".into(),
            description: "Spins forever in backup (sandbox test)".into(),
            target_kinds: vec!["test".into()],
            operations: vec![Operation::Backup],
            parameters: vec![],
            capabilities: vec![],
        }
    }

    fn backup(_job: &Job) -> Result<Attributes, AddonError> {
        let mut counter = 0u64;
        loop {
            // black_box keeps the loop (and the counter) from being optimised away.
            counter = std::hint::black_box(counter.wrapping_add(1));
            core::hint::spin_loop();
        }
    }
}

stowaway_addon::export_addon!(LoopForever);

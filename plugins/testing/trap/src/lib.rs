//! Test addon: `backup` panics. With `panic = "abort"` the message goes to stderr and the
//! instance traps; the host must fail the job and log the message.

use stowaway_addon::{Addon, AddonError, AddonInfo, Attributes, Job, Operation};

struct Trap;

impl Addon for Trap {
    fn describe() -> AddonInfo {
        AddonInfo {
            name: "test-trap".into(),
            version: "0.1.0".into(),
            description: "Panics in backup (sandbox test)".into(),
            target_kinds: vec!["test".into()],
            operations: vec![Operation::Backup],
            parameters: vec![],
            capabilities: vec![],
        }
    }

    fn backup(_job: &Job) -> Result<Attributes, AddonError> {
        panic!("deliberate panic in test addon");
    }
}

stowaway_addon::export_addon!(Trap);

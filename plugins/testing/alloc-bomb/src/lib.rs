//! Test addon: `backup` allocates (and touches) memory without bound. The host's memory limit
//! must stop it.

use stowaway_addon::{Addon, AddonError, AddonInfo, Attributes, Job, Operation};

struct AllocBomb;

impl Addon for AllocBomb {
    fn describe() -> AddonInfo {
        AddonInfo {
            name: "test-alloc-bomb".into(),
            version: "0.1.0".into(),
            description: "Allocates memory without bound in backup (sandbox test)".into(),
            target_kinds: vec!["test".into()],
            operations: vec![Operation::Backup],
            parameters: vec![],
            capabilities: vec![],
        }
    }

    fn backup(_job: &Job) -> Result<Attributes, AddonError> {
        const CHUNK: usize = 1 << 20;
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut chunk = Vec::<u8>::with_capacity(CHUNK);
            // Touch every page so the memory is really used.
            chunk.resize(CHUNK, 0xA5);
            for i in (0..CHUNK).step_by(4096) {
                chunk[i] = i as u8;
            }
            hoard.push(std::hint::black_box(chunk));
        }
    }
}

stowaway_addon::export_addon!(AllocBomb);

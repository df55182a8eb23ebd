//! `volume`: the built-in Stowaway addon that backs up and restores directories.
//!
//! Backup writes one tree component per granted volume, named after the volume; restore
//! writes the selected tree components back into the writable volumes of the same names.
//! See `backup.rs` and `restore.rs` for the rules, `exclude.rs` for the `exclude` patterns,
//! `root.rs` for how the volume root's own metadata travels (tree attributes `root-*`).

mod backup;
mod exclude;
mod restore;
mod root;

use stowaway_addon::{
    Addon, AddonError, AddonInfo, Attributes, Capability, Job, Operation, Parameter, ParameterType,
    VolumeAccess,
};

/// The addon.
struct VolumeAddon;

impl Addon for VolumeAddon {
    fn describe() -> AddonInfo {
        AddonInfo {
            name: "volume".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Backs up and restores directories with their metadata".into(),
            target_kinds: vec!["volume".into()],
            operations: vec![Operation::Backup, Operation::Restore],
            parameters: vec![
                Parameter::new(
                    "exclude",
                    ParameterType::TextList,
                    "Glob patterns to leave out: without `/` a name at any depth, with `/` a \
                     path from the volume root; `**` matches any number of directories, a \
                     trailing `/` only directories",
                    Some(""),
                ),
                Parameter::new(
                    "restore-owner",
                    ParameterType::Boolean,
                    "Restore file owners and groups (needs a privileged agent)",
                    Some("true"),
                ),
                Parameter::new(
                    "overwrite",
                    ParameterType::Boolean,
                    "Replace existing files on restore; when false, existing files are kept",
                    Some("true"),
                ),
            ],
            capabilities: vec![Capability::Volume(VolumeAccess {
                name: "*".into(),
                writable: true,
            })],
        }
    }

    fn backup(job: &Job) -> Result<Attributes, AddonError> {
        backup::run(job)
    }

    fn restore(job: &Job) -> Result<Attributes, AddonError> {
        restore::run(job)
    }
}

stowaway_addon::export_addon!(VolumeAddon);

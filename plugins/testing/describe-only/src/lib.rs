//! Test addon: declares a capability it is never meant to get (`connect 127.0.0.1:5432`) and
//! a required parameter `needed` without default. `backup` succeeds and echoes `needed`.

use stowaway_addon::{
    Addon, AddonError, AddonInfo, Attributes, Capability, Endpoint, Job, Operation, Parameter,
    ParameterType,
};

struct DescribeOnly;

impl Addon for DescribeOnly {
    fn describe() -> AddonInfo {
        AddonInfo {
            name: "test-describe-only".into(),
            version: "0.1.0".into(),
            description: "Declares an ungranted capability and a required parameter".into(),
            target_kinds: vec!["test".into()],
            operations: vec![Operation::Backup],
            parameters: vec![Parameter::new(
                "needed",
                ParameterType::Text,
                "A required parameter (no default)",
                None,
            )],
            capabilities: vec![Capability::Connect(Endpoint {
                host: "127.0.0.1".into(),
                port: 5432,
            })],
        }
    }

    fn backup(job: &Job) -> Result<Attributes, AddonError> {
        Ok(vec![(
            "needed".into(),
            job.param("needed").unwrap_or_else(|| "<missing>".into()),
        )])
    }
}

stowaway_addon::export_addon!(DescribeOnly);

//! Prints the CRDs (same as `stowaway crds`, without building the agent).
fn main() -> Result<(), stowaway_api::CrdYamlError> {
    print!("{}", stowaway_api::crds_yaml()?);
    Ok(())
}

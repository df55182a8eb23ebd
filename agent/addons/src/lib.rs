//! The built-in Stowaway addons, compiled for `wasm32-wasip2` from `plugins/` by the build
//! script and embedded, so a user never builds them by hand.
//!
//! `test_programs` holds the paths of small misbehaving guests (endless loops, unbounded
//! allocation, traps, escape attempts) that the runtime's sandbox tests load.

include!(concat!(env!("OUT_DIR"), "/addons.rs"));

/// The component bytes of a built-in addon.
pub fn builtin(name: &str) -> Option<&'static [u8]> {
    BUILTIN
        .iter()
        .find(|(builtin, _)| *builtin == name)
        .map(|(_, bytes)| *bytes)
}

/// Names of the built-in addons.
pub fn builtin_names() -> impl Iterator<Item = &'static str> {
    BUILTIN.iter().map(|(name, _)| *name)
}

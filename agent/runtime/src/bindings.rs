//! Bindings for the `stowaway:addon@0.1` line of the addon interface.
//!
//! One `bindgen!` per supported WIT line. A later breaking line (0.2) gets its own module
//! beside this one and a dispatch enum in `addon.rs`; patch versions of 0.1 are resolved by
//! wasmtime's semver matching and need no new module.

#![allow(missing_docs, reason = "generated code")]

wasmtime::component::bindgen!({
    path: "../../wit/v0.1",
    world: "stowaway:addon/addon",
    imports: { default: trappable },
    exports: { default: async },
    require_store_data_send: true,
    with: {
        "wasi": wasmtime_wasi::p2::bindings,
        "stowaway:addon/host.job": crate::job::JobHandle,
        "stowaway:addon/host.stream-writer": crate::components::StreamWriterHandle,
        "stowaway:addon/host.tree-writer": crate::components::TreeWriterHandle,
        "stowaway:addon/host.file-content": crate::components::FileContentHandle,
        "stowaway:addon/host.tree-reader": crate::components::TreeReaderHandle,
        "stowaway:addon/exec.child": crate::exec::ChildHandle,
    },
});

/// The interface line these bindings implement.
pub const LINE: (u64, u64) = (0, 1);
/// The newest version of the line this host implements.
pub const VERSION: &str = "0.1.1";

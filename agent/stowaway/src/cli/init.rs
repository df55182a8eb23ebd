//! `stowaway init`.

use anyhow::Context;
use stowaway_repository::{ChunkerConfig, InitOptions, KdfParams, Repository};

use super::{Global, output};

/// Create a new repository.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Store data unencrypted (anyone with access to the storage can read it).
    #[arg(long)]
    insecure_no_encryption: bool,
    /// zstd compression level, 1 (fast) to 19 (small).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=19))]
    compression_level: i32,
    /// Argon2id memory in KiB for the password key (default 65536 = 64 MiB).
    #[arg(long, default_value_t = KdfParams::default().memory_kib, value_parser = clap::value_parser!(u32).range(8..))]
    kdf_memory_kib: u32,
    /// Argon2id passes.
    #[arg(long, default_value_t = KdfParams::default().iterations, value_parser = clap::value_parser!(u32).range(1..))]
    kdf_iterations: u32,
    /// Minimum chunk size in bytes (for benchmarks and tests).
    #[arg(long, hide = true)]
    chunk_min: Option<u32>,
    /// Average chunk size in bytes (for benchmarks and tests).
    #[arg(long, hide = true)]
    chunk_avg: Option<u32>,
    /// Maximum chunk size in bytes (for benchmarks and tests).
    #[arg(long, hide = true)]
    chunk_max: Option<u32>,
    /// Target pack size in bytes (for benchmarks and tests).
    #[arg(long, hide = true)]
    pack_size: Option<u32>,
}

pub(crate) async fn run(g: &Global, args: Args) -> anyhow::Result<u8> {
    let storage = super::repo::storage(g)?;
    let location = storage.describe();
    let password = if args.insecure_no_encryption {
        super::repo::password(g)
            .map(|p| p.to_string())
            .unwrap_or_default()
    } else {
        super::repo::password(g)?.to_string()
    };
    let default = ChunkerConfig::default();
    let chunker = ChunkerConfig {
        min_size: args.chunk_min.unwrap_or(default.min_size),
        avg_size: args.chunk_avg.unwrap_or(default.avg_size),
        max_size: args.chunk_max.unwrap_or(default.max_size),
        ..default
    };
    let options = InitOptions {
        encryption: !args.insecure_no_encryption,
        compression_level: args.compression_level,
        kdf: KdfParams {
            memory_kib: args.kdf_memory_kib,
            iterations: args.kdf_iterations,
            ..KdfParams::default()
        },
        chunker,
        pack_size: args.pack_size.unwrap_or(InitOptions::default().pack_size),
    };
    let repo = Repository::init(storage, &password, options)
        .await
        .with_context(|| format!("creating a repository at {location}"))?;
    let id = repo.config().id.to_hex();
    if g.json {
        output::json(&serde_json::json!({ "id": id, "location": location }))?;
    } else if !g.quiet {
        println!("created repository {} at {location}", &id[..8]);
        if args.insecure_no_encryption {
            println!("warning: the repository is not encrypted");
        } else {
            println!("keep the password safe: without it the data cannot be read");
        }
    }
    Ok(0)
}

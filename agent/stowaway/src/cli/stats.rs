//! `stowaway stats`.

use super::{Global, output};

/// Show repository statistics.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) async fn run(g: &Global, _args: Args) -> anyhow::Result<u8> {
    let repo = super::repo::open_indexed(g).await?;
    let s = repo.stats().await?;
    if g.json {
        output::json(&serde_json::json!({
            "snapshots": s.snapshots,
            "packs": s.packs,
            "data_blobs": s.data_blobs,
            "tree_blobs": s.tree_blobs,
            "stored_bytes": s.stored_bytes,
            "blob_raw_bytes": s.blob_raw_bytes,
            "blob_stored_bytes": s.blob_stored_bytes,
            "latest_logical_bytes": s.latest_logical_bytes,
            "compression_ratio": s.compression_ratio,
            "dedup_ratio": s.dedup_ratio,
        }))?;
        return Ok(0);
    }
    println!("snapshots:              {}", s.snapshots);
    println!("packs:                  {}", s.packs);
    println!(
        "blobs:                  {} data, {} tree",
        s.data_blobs, s.tree_blobs
    );
    println!("stored in packs:        {}", output::bytes(s.stored_bytes));
    println!(
        "unique data:            {}",
        output::bytes(s.blob_raw_bytes)
    );
    println!(
        "latest snapshots hold:  {}",
        output::bytes(s.latest_logical_bytes)
    );
    println!("compression ratio:      {:.2}x", s.compression_ratio);
    println!("deduplication ratio:    {:.2}x", s.dedup_ratio);
    Ok(0)
}

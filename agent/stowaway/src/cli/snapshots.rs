//! `stowaway snapshots`.

use super::{Global, output};

/// List snapshots.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Only snapshots with this tag (repeatable: all must match).
    #[arg(long)]
    tag: Vec<String>,
}

pub(crate) async fn run(g: &Global, args: Args) -> anyhow::Result<u8> {
    let repo = super::repo::open(g).await?;
    let snapshots: Vec<_> = repo
        .snapshots()
        .await?
        .into_iter()
        .filter(|s| args.tag.iter().all(|t| s.tags.contains(t)))
        .collect();
    if g.json {
        let list: Vec<serde_json::Value> = snapshots
            .iter()
            .map(|s| {
                let mut v = serde_json::to_value(s).unwrap_or_default();
                if let Some(obj) = v.as_object_mut() {
                    obj.insert("id".into(), s.id.to_hex().into());
                }
                v
            })
            .collect();
        output::json(&list)?;
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = snapshots
        .iter()
        .map(|s| {
            vec![
                s.id.short(),
                output::time(s.time),
                s.hostname.clone(),
                s.addon.name.clone(),
                s.tags.join(","),
                output::bytes(s.components.iter().map(|c| c.size).sum()),
                s.target.name.clone(),
            ]
        })
        .collect();
    output::table(
        &["ID", "Time", "Host", "Addon", "Tags", "Size", "Target"],
        &rows,
    )?;
    println!("{} snapshots", snapshots.len());
    Ok(0)
}

//! Test addon: `backup` adds tree entries the host must refuse (`../evil`, `/abs`,
//! `a/../../b`, `x/y` without parent `x`, a file `../evil-file`) and returns, for each path,
//! `refused: <error>` or `accepted`, plus the outcome of `finish` under the key `finish`.

use stowaway_addon::{
    Addon, AddonError, AddonInfo, Attributes, Entry, EntryKind, Job, Operation, TreeWriter,
};

struct BadTree;

fn outcome<T>(r: Result<T, AddonError>) -> String {
    match r {
        Ok(_) => "accepted".into(),
        Err(e) => format!("refused: {e:?}"),
    }
}

impl Addon for BadTree {
    fn describe() -> AddonInfo {
        AddonInfo {
            name: "test-bad-tree".into(),
            version: "0.1.0".into(),
            description: "Adds invalid tree entries (sandbox test)".into(),
            target_kinds: vec!["test".into()],
            operations: vec![Operation::Backup],
            parameters: vec![],
            capabilities: vec![],
        }
    }

    fn backup(job: &Job) -> Result<Attributes, AddonError> {
        let tree = job.create_tree("bad")?;
        let mut results: Attributes = Vec::new();
        for path in ["../evil", "/abs", "a/../../b", "x/y"] {
            let r = tree.add(&Entry::new(path, EntryKind::Directory));
            results.push((path.to_string(), outcome(r)));
        }
        let file = "../evil-file";
        let r = tree
            .add_file(&Entry::new(file, EntryKind::File))
            .map(|content| {
                // Accepted (wrongly): give the file its zero bytes so the tree stays consistent.
                if let Some(content) = content {
                    let _ = stowaway_addon::FileContent::finish(content, false);
                }
            });
        results.push((format!("file:{file}"), outcome(r)));
        let finished = TreeWriter::finish(tree, &[]);
        results.push(("finish".into(), outcome(finished)));
        Ok(results)
    }
}

stowaway_addon::export_addon!(BadTree);

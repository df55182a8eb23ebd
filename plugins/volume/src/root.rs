//! The volume root's own metadata.
//!
//! The root of a tree component is not an entry, yet its permissions and owner matter (a
//! PostgreSQL data directory must be `0700` and owned by the server). Backup stores them as
//! tree attributes `root-mode` (octal), `root-uid`, `root-gid`, `root-mtime` and `root-atime`
//! (`<seconds>.<nanoseconds>`); restore applies them to the volume root at the end.

use stowaway_addon::volume::Volume;
use stowaway_addon::volumes::MetadataUpdate;
use stowaway_addon::{Attributes, Timestamp, log};

/// The `root-*` attributes of `volume` (none, with a warning, if its root cannot be read).
pub fn attributes(volume: &Volume) -> Attributes {
    match volume.stat("") {
        Ok(root) => vec![
            ("root-mode".into(), format!("{:o}", root.mode)),
            ("root-uid".into(), root.uid.to_string()),
            ("root-gid".into(), root.gid.to_string()),
            ("root-mtime".into(), format_time(root.mtime)),
            ("root-atime".into(), format_time(root.atime)),
        ],
        Err(e) => {
            log::warn_with(
                "cannot read the volume root's metadata",
                &[("volume", volume.name()), ("error", &e.to_string())],
            );
            vec![]
        }
    }
}

/// The metadata update described by the `root-*` attributes, if there are any.
pub fn update(attributes: &Attributes, restore_owner: bool) -> Option<MetadataUpdate> {
    let get = |name: &str| {
        attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let mode = get("root-mode").and_then(|m| u32::from_str_radix(m, 8).ok());
    let owner = match (get("root-uid"), get("root-gid")) {
        (Some(u), Some(g)) if restore_owner => u.parse().ok().zip(g.parse().ok()),
        _ => None,
    };
    let mtime = get("root-mtime").and_then(parse_time);
    let atime = get("root-atime").and_then(parse_time);
    if mode.is_none() && owner.is_none() && mtime.is_none() && atime.is_none() {
        return None;
    }
    Some(MetadataUpdate {
        mode,
        owner,
        mtime,
        atime,
    })
}

fn format_time(t: Timestamp) -> String {
    format!("{}.{:09}", t.seconds, t.nanoseconds)
}

fn parse_time(s: &str) -> Option<Timestamp> {
    let (seconds, nanoseconds) = s.split_once('.').unwrap_or((s, "0"));
    Some(Timestamp {
        seconds: seconds.parse().ok()?,
        nanoseconds: nanoseconds.parse().ok().filter(|&n| n < 1_000_000_000)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = Timestamp {
            seconds: -5,
            nanoseconds: 42,
        };
        let attrs: Attributes = vec![
            ("files".into(), "3".into()),
            ("root-mode".into(), "700".into()),
            ("root-uid".into(), "999".into()),
            ("root-gid".into(), "998".into()),
            ("root-mtime".into(), format_time(t)),
        ];
        let u = update(&attrs, true).unwrap();
        assert_eq!(u.mode, Some(0o700));
        assert_eq!(u.owner, Some((999, 998)));
        let m = u.mtime.unwrap();
        assert_eq!((m.seconds, m.nanoseconds), (-5, 42));
        assert!(u.atime.is_none());
        assert!(update(&attrs, false).unwrap().owner.is_none());
        assert!(update(&vec![("files".into(), "1".into())], true).is_none());
    }
}

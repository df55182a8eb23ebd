//! Names and annotations of the sessions the on-demand API creates.

use ring::rand::{SecureRandom, SystemRandom};
use stowaway_operator::names::object_name;

pub use stowaway_operator::names::TRIGGER_ANNOTATION;

/// Value of [`TRIGGER_ANNOTATION`] on sessions the on-demand API creates.
pub const ON_DEMAND: &str = "on-demand";
/// On an on-demand BackupSession: the tag the request gave.
pub const TAG_ANNOTATION: &str = "stowaway.dev/tag";
/// On an on-demand BackupSession: the components the request asked for, joined by `,`.
pub const COMPONENTS_ANNOTATION: &str = "stowaway.dev/components";

/// Name of an on-demand BackupSession:
/// `<configuration>-<session>-ondemand-<unix seconds>-<random>`, cut to a valid name.
pub fn backup_name(configuration: &str, session: &str, unix: i64, random: &str) -> String {
    object_name(&[
        configuration,
        session,
        "ondemand",
        &unix.to_string(),
        random,
    ])
}

/// Name of an on-demand RestoreSession: `<configuration>-restore-<unix seconds>-<random>`.
pub fn restore_name(configuration: &str, unix: i64, random: &str) -> String {
    object_name(&[configuration, "restore", &unix.to_string(), random])
}

/// Eight random hex digits, which keep names created in the same second apart.
pub fn random_suffix() -> String {
    let mut bytes = [0u8; 4];
    if SystemRandom::new().fill(&mut bytes).is_err() {
        // The system's random source failing is unheard of; the clock's nanoseconds still
        // differ between requests, and a name clash is caught by the API server (409).
        let nanos = jiff::Timestamp::now().subsec_nanosecond();
        bytes = nanos.to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `name` is a valid object name (a DNS-1123 subdomain).
pub fn is_object_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 253
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.'))
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_distinct_and_keep_the_random_part() {
        let a = backup_name("db", "frequent", 1_700_000_000, "0a1b2c3d");
        assert_eq!(a, "db-frequent-ondemand-1700000000-0a1b2c3d");
        assert_eq!(
            restore_name("db", 1_700_000_000, "0a1b2c3d"),
            "db-restore-1700000000-0a1b2c3d"
        );
        let long = "c".repeat(70);
        let b = backup_name(&long, "frequent", 1_700_000_000, "0a1b2c3d");
        let c = backup_name(&long, "frequent", 1_700_000_000, "ffffffff");
        assert!(b.len() <= 63 && is_object_name(&b), "{b}");
        assert!(b.ends_with("-0a1b2c3d"), "{b}");
        assert_ne!(b, c);
        let r = random_suffix();
        assert_eq!(r.len(), 8);
        assert!(r.bytes().all(|b| b.is_ascii_hexdigit()), "{r}");
        assert_ne!(random_suffix(), random_suffix());
    }

    #[test]
    fn object_names() {
        assert!(is_object_name("db-daily-1.a"));
        for bad in ["", "-a", "a-", "A", "a/b", "a_b", "..", &"a".repeat(254)] {
            assert!(!is_object_name(bad), "{bad:?}");
        }
    }
}

//! Credentials from a mounted Kubernetes Secret (a directory with one file per key) or a
//! file of `KEY=value` lines. Values are zeroized on drop and never printed.

use std::collections::BTreeMap;
use std::path::Path;

use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// The keys and values of a Secret (`AWS_ACCESS_KEY_ID`, `AZURE_ACCOUNT_KEY`, ...). `Debug`
/// shows the keys only; values are zeroized on drop.
#[derive(Default)]
pub struct Credentials {
    values: BTreeMap<String, Zeroizing<String>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Credentials {
    /// Reads a Secret directory or a `KEY=value` file. In a directory, files whose names
    /// start with `.` (Kubernetes' `..data` links) and subdirectories are skipped.
    pub fn load(path: &Path) -> Result<Credentials> {
        let io = |source| Error::Credentials {
            path: path.display().to_string(),
            source,
        };
        let mut values = BTreeMap::new();
        if path.is_dir() {
            for entry in std::fs::read_dir(path).map_err(io)? {
                let entry = entry.map_err(io)?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') || !entry.path().is_file() {
                    continue;
                }
                let value = Zeroizing::new(std::fs::read_to_string(entry.path()).map_err(io)?);
                // Secrets created from files often end in a newline; keys never do.
                let trimmed = Zeroizing::new(value.trim_end_matches(['\r', '\n']).to_owned());
                values.insert(name, trimmed);
            }
        } else {
            let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io)?);
            for line in text.lines() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let line = line.strip_prefix("export ").unwrap_or(line);
                let Some((key, value)) = line.split_once('=') else {
                    return Err(io(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "expected KEY=value lines",
                    )));
                };
                let value = value.trim();
                let value = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(value);
                values.insert(key.trim().to_owned(), Zeroizing::new(value.to_owned()));
            }
        }
        Ok(Credentials { values })
    }

    /// Credentials held in memory, such as the data of a Secret read from the Kubernetes
    /// API. Values that are not UTF-8 are refused, naming the key.
    pub fn from_values<'a>(
        values: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Result<Credentials> {
        let mut map = BTreeMap::new();
        for (key, value) in values {
            let text = std::str::from_utf8(value)
                .map_err(|_| Error::config(format!("the credential {key} is not UTF-8 text")))?;
            let text = text.trim_end_matches(['\r', '\n']);
            map.insert(key.to_owned(), Zeroizing::new(text.to_owned()));
        }
        Ok(Credentials { values: map })
    }

    /// The value of `key`, if present and not empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .map(|v| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_directory_and_env_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = dir.path().join("secret");
        std::fs::create_dir(&secret).expect("mkdir");
        std::fs::write(secret.join("AWS_ACCESS_KEY_ID"), "AKIDEXAMPLE\n").expect("write");
        std::fs::write(secret.join("AWS_SECRET_ACCESS_KEY"), "s3cr3t").expect("write");
        std::fs::create_dir(secret.join("..2026_11_23")).expect("mkdir");
        let creds = Credentials::load(&secret).expect("load dir");
        assert_eq!(creds.get("AWS_ACCESS_KEY_ID"), Some("AKIDEXAMPLE"));
        assert_eq!(creds.get("AWS_SECRET_ACCESS_KEY"), Some("s3cr3t"));
        assert_eq!(creds.get("MISSING"), None);
        let debug = format!("{creds:?}");
        assert!(debug.contains("AWS_ACCESS_KEY_ID"));
        assert!(!debug.contains("s3cr3t"), "{debug}");

        let file = dir.path().join("env");
        std::fs::write(
            &file,
            "# comment\nexport AZURE_ACCOUNT_KEY=\"a2V5\"\n\nAWS_REGION = eu-west-1\n",
        )
        .expect("write");
        let creds = Credentials::load(&file).expect("load file");
        assert_eq!(creds.get("AZURE_ACCOUNT_KEY"), Some("a2V5"));
        assert_eq!(creds.get("AWS_REGION"), Some("eu-west-1"));

        std::fs::write(&file, "not a pair\n").expect("write");
        let err = Credentials::load(&file).expect_err("bad line");
        assert!(
            err.to_string().contains("expected KEY=value lines"),
            "{err}"
        );
        let err = Credentials::load(&dir.path().join("nope")).expect_err("missing");
        assert!(matches!(err, Error::Credentials { .. }));
    }
}

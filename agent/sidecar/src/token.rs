//! The optional bearer token of the on-demand API, read from a file (a mounted Secret) at
//! start.
//!
//! Only an HMAC-SHA-256 tag of the token under a key drawn at start is kept; a presented token
//! is checked with [`ring::hmac::verify`], whose comparison takes the same time whatever the
//! input, so neither the token's bytes nor its length leak through timing.

use std::path::{Path, PathBuf};

use ring::hmac;
use ring::rand::SystemRandom;
use zeroize::Zeroizing;

/// Why a token could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The file could not be read.
    #[error("reading the API token {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The token is empty (or only white space).
    #[error("the API token {} is empty", path.display())]
    Empty {
        /// Where it came from.
        path: PathBuf,
    },
    /// The system's random source failed.
    #[error("no randomness for the API token's key")]
    Random,
}

/// A bearer token that requests must present.
pub struct Token {
    key: hmac::Key,
    tag: hmac::Tag,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// A token from its text; leading and trailing white space (a file's last newline) is
    /// not part of it.
    pub fn new(secret: &[u8]) -> Result<Token, TokenError> {
        Token::build(secret, Path::new("(given)"))
    }

    /// Reads the token from `path` (a Secret's key mounted as a file).
    pub fn from_file(path: &Path) -> Result<Token, TokenError> {
        let data = Zeroizing::new(std::fs::read(path).map_err(|source| TokenError::Read {
            path: path.to_owned(),
            source,
        })?);
        Token::build(&data, path)
    }

    fn build(secret: &[u8], path: &Path) -> Result<Token, TokenError> {
        let secret = secret.trim_ascii();
        if secret.is_empty() {
            return Err(TokenError::Empty {
                path: path.to_owned(),
            });
        }
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new())
            .map_err(|_| TokenError::Random)?;
        let tag = hmac::sign(&key, secret);
        Ok(Token { key, tag })
    }

    /// Whether `presented` is the token.
    pub fn verify(&self, presented: &[u8]) -> bool {
        hmac::verify(&self.key, presented, self.tag.as_ref()).is_ok()
    }

    /// Whether an `Authorization` header value is `Bearer <the token>`.
    pub fn authorizes(&self, authorization: Option<&str>) -> bool {
        let Some((scheme, credentials)) = authorization.and_then(|v| v.trim().split_once(' '))
        else {
            return false;
        };
        scheme.eq_ignore_ascii_case("bearer") && self.verify(credentials.trim().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_token_authorizes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret-token\n").expect("write");
        let token = Token::from_file(&path).expect("token");
        assert!(token.authorizes(Some("Bearer s3cret-token")));
        assert!(token.authorizes(Some("bearer  s3cret-token ")));
        for bad in [
            None,
            Some(""),
            Some("Bearer"),
            Some("Bearer s3cret-toke"),
            Some("Bearer s3cret-token2"),
            Some("Basic s3cret-token"),
            Some("s3cret-token"),
        ] {
            assert!(!token.authorizes(bad), "{bad:?}");
        }
        assert_eq!(format!("{token:?}"), "Token(<redacted>)");

        std::fs::write(&path, " \n").expect("write");
        let err = Token::from_file(&path).expect_err("empty");
        assert!(err.to_string().contains("is empty"), "{err}");
        let err = Token::from_file(&dir.path().join("missing")).expect_err("missing");
        assert!(matches!(err, TokenError::Read { .. }), "{err}");
    }
}

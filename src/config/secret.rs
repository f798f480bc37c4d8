//! `Secret`: a string that never shows up in logs or error messages.
//!
//! `Debug` and `Display` print `[redacted]`; the value is reachable only
//! through [`Secret::expose`], so every use is easy to find and review.

use std::fmt;

use subtle::ConstantTimeEq;

const REDACTED: &str = "[redacted]";

/// A secret string (admin secret, node secret, client secret, password).
#[derive(Clone)]
pub struct Secret(String);

// === impl Secret ===

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself. Never log it or put it in an error.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` equals the secret, in time that does not depend
    /// on where they first differ (only on their lengths).
    pub fn matches(&self, candidate: &[u8]) -> bool {
        self.0.as_bytes().ct_eq(candidate).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALUE: &str = "s3cr3t-value";

    #[test]
    fn debug_and_display_redact() {
        let secret = Secret::new(VALUE);
        for shown in [
            format!("{secret:?}"),
            format!("{secret:#?}"),
            format!("{secret}"),
            format!("{:?}", Some(&secret)),
            format!("{:?}", [&secret]),
        ] {
            assert!(!shown.contains(VALUE), "{shown}");
            assert!(shown.contains(REDACTED), "{shown}");
        }
    }

    #[test]
    fn expose_returns_value() {
        assert_eq!(Secret::from(VALUE).expose(), VALUE);
        assert_eq!(Secret::from(VALUE.to_owned()).expose(), VALUE);
    }

    #[test]
    fn matches_compares_whole_value() {
        let secret = Secret::new(VALUE);
        assert!(secret.matches(VALUE.as_bytes()));
        assert!(!secret.matches(b"s3cr3t-valuE"));
        assert!(!secret.matches(b"s3cr3t"));
        assert!(!secret.matches(b""));
    }
}

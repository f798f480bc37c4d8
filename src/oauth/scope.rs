//! The `scope` parameter (RFC 6749 section 3.3): scope tokens of printable
//! ASCII other than space, `"` and `\`, separated by single spaces.

use super::{ErrorCode, OAuthError};

/// Refuses a scope outside the grammar with `invalid_scope`: a scope is
/// stored with the tokens and echoed to clients and identity servers.
pub(crate) fn check_scope(scope: &str) -> Result<(), OAuthError> {
    let valid = scope
        .split(' ')
        .all(|token| !token.is_empty() && token.bytes().all(is_scope_char));
    if valid {
        return Ok(());
    }
    Err(OAuthError::new(
        ErrorCode::InvalidScope,
        "scope must be tokens of printable ASCII other than space, '\"' and '\\', \
         separated by single spaces (RFC 6749 section 3.3)",
    ))
}

/// `%x21 / %x23-5B / %x5D-7E`
fn is_scope_char(byte: u8) -> bool {
    matches!(byte, 0x21 | 0x23..=0x5B | 0x5D..=0x7E)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_tokens_follow_rfc_6749() {
        for ok in ["read", "read write", "a:b/c.d-e_f~!#$%&'()*+,;<=>?@[]^`{|}"] {
            assert!(check_scope(ok).is_ok(), "{ok}");
        }
        for bad in [
            "\u{fffd}\u{fffd}",
            "caf\u{e9}",
            "a  b",
            " a",
            "a ",
            "a\"b",
            "a\\b",
            "a\tb",
        ] {
            let error = check_scope(bad).unwrap_err();
            assert_eq!(error.code, ErrorCode::InvalidScope, "{bad:?}");
        }
    }
}

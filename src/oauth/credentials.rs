//! Generating and checking credentials: tokens, codes, client secrets,
//! PKCE verifiers.
//!
//! Tokens and codes carry 256 bits from the OS generator and are stored
//! under their SHA-256. Client secrets are stored as HMAC-SHA256 under a
//! per-client salt and compared in constant time.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A new random credential: 32 bytes, base64url without padding.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A new random identifier (grant ids, generated client ids): 16 bytes, hex.
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The storage key of a credential: hex SHA-256 of its value. It runs on
/// every authenticated request, so the hex is written into a buffer rather
/// than collected character by character.
pub fn token_hash(token: &str) -> String {
    let mut hex = [0u8; 64];
    let digest = Sha256::digest(token.as_bytes());
    match hex::encode_to_slice(digest, &mut hex) {
        Ok(()) => std::str::from_utf8(&hex).map_or_else(|_| hex::encode(digest), str::to_owned),
        Err(_) => hex::encode(digest),
    }
}

/// A short, non-reversible tag for correlating log lines.
pub fn fingerprint(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// Hashes a client secret under `salt`.
pub fn secret_hash(secret: &str, salt: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(salt.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(secret.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Whether `secret` hashes to `expected_hash`, in constant time.
pub fn secret_matches(secret: &str, salt: &str, expected_hash: &str) -> bool {
    let actual = secret_hash(secret, salt);
    actual.as_bytes().ct_eq(expected_hash.as_bytes()).into()
}

/// Checks a PKCE verifier against its challenge (RFC 7636 section 4.6).
pub fn pkce_matches(verifier: &str, challenge: &str, method: &str) -> bool {
    let computed = match method {
        "S256" => URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
        "plain" => verifier.to_string(),
        _ => return false,
    };
    computed.as_bytes().ct_eq(challenge.as_bytes()).into()
}

/// RFC 7636 section 4.1: 43 to 128 characters from the unreserved set.
pub fn valid_pkce_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// Hashes a resource owner's password with Argon2id (PHC string).
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut OsRng);
    Ok(argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Checks a password against a PHC string. Slow by design: call it off the
/// async threads.
pub fn verify_password(password: &str, phc: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    argon2::Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_url_safe() {
        let a = random_token();
        assert_ne!(a, random_token());
        assert_eq!(a.len(), 43);
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    }

    #[test]
    fn secret_hash_depends_on_salt() {
        let hash = secret_hash("s3cret", "salt-a");
        assert!(secret_matches("s3cret", "salt-a", &hash));
        assert!(!secret_matches("s3cret", "salt-b", &hash));
        assert!(!secret_matches("other", "salt-a", &hash));
    }

    #[test]
    fn password_hash_verifies_only_its_password() {
        let phc = hash_password("hunter2").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify_password("hunter2", &phc));
        assert!(!verify_password("hunter3", &phc));
        assert!(!verify_password("hunter2", "not a hash"));
    }

    #[test]
    fn pkce_s256_matches_rfc_example() {
        // RFC 7636 appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_matches(verifier, challenge, "S256"));
        assert!(!pkce_matches(verifier, challenge, "plain"));
        assert!(valid_pkce_verifier(verifier));
    }
}

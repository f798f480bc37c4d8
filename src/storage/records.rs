//! The MessagePack records behind codes, refresh tokens and grants.
//!
//! Records are encoded with field names, so a node running a newer version
//! can add fields (with `#[serde(default)]`) and still read older records.

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::StorageError;
use crate::session::Session;

/// What an authorization code stands for until it is exchanged.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CodeRecord {
    /// The redirect URI the code was minted for.
    pub redirect_uri: String,
    /// Whether the authorization request named it; if so, the token request
    /// must name it too (RFC 6749 section 4.1.3).
    pub redirect_uri_given: bool,
    pub scope: Option<String>,
    /// PKCE (RFC 7636): the challenge and its method, `S256` or `plain`.
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    /// The session the tokens will carry, prepared at authorization time.
    pub session: Session,
}

/// What a refresh token stands for.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RefreshRecord {
    pub grant_id: String,
    /// Hash of the access token issued together with this refresh token.
    pub access_hash: String,
    /// The session that the next access token is issued from.
    pub session: Session,
}

/// The live credentials of one chain of refreshes (a grant family).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GrantRecord {
    pub api_id: String,
    pub client_id: String,
    pub access_hash: String,
    pub refresh_hash: Option<String>,
}

pub(crate) fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>, StorageError> {
    Ok(rmp_serde::to_vec_named(record)?)
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StorageError> {
    Ok(rmp_serde::from_slice(bytes)?)
}

//! Everything tollgate keeps in Redis, and the only module that knows fred.
//!
//! Credentials are stored under the SHA-256 of their value, never in plain
//! text. Every contended change (using a code, rotating a refresh token,
//! revoking a grant) is atomic on one key, so the same code works on a single
//! Redis and on a Redis Cluster without hash tags.

mod catalog;
mod claim;
mod connection;
mod keys;
mod limits;
mod observer;
mod pubsub;
mod records;
mod routes;
mod tokens;

pub use catalog::{Catalog, ClientRecord, UserRecord, Write};
pub use connection::{redact_url, ConnectError, Store, StoreConfig};
pub use limits::{Allowance, LimitOutcome, Limits};
pub use pubsub::PubSubEvent;
pub use records::{CodeRecord, GrantRecord, RefreshRecord};
pub use routes::Swap;
pub use tokens::{owner, Claimed, IssuedTokens, NewRefresh, NewTokens, TokenPage};

/// A failure talking to Redis or decoding what it returned.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("redis command failed")]
    Redis(#[from] fred::error::Error),
    #[error("stored record is unreadable")]
    Decode(#[from] rmp_serde::decode::Error),
    #[error("record could not be encoded")]
    Encode(#[from] rmp_serde::encode::Error),
    #[error("stored document is unreadable")]
    Json(#[from] serde_json::Error),
    #[error("unexpected reply from redis: {0}")]
    Reply(&'static str),
}

// === impl StorageError ===

impl StorageError {
    /// The same failure again, for each of several requests that shared
    /// one round trip. Decoding errors do not occur there and become a
    /// generic reply error.
    pub(crate) fn duplicate(&self) -> Self {
        match self {
            Self::Redis(error) => Self::Redis(error.clone()),
            Self::Reply(what) => Self::Reply(what),
            _ => Self::Reply("shared round trip failed"),
        }
    }
}

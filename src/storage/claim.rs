//! Single-use credentials: authorization codes and refresh tokens.
//!
//! A claimable value is stored as `state owner \0 payload`, where state is
//! `L` (live) or `U` (used). One Lua script on the one key checks the owner,
//! flips the state and returns the payload, so exactly one of many concurrent
//! claims wins. A used value stays behind as a tombstone until its TTL ends,
//! so that a second use can be recognised and the grant revoked.

use fred::prelude::*;
use fred::types::Value;

use super::observer::Operation;
use super::{StorageError, Store};

/// Flips a live value to used; see the module documentation.
const CLAIM_SCRIPT: &str = r#"
local v = redis.call('GET', KEYS[1])
if not v then return false end
local sep = string.find(v, '\0', 2, true)
if not sep then return false end
if string.sub(v, 2, sep - 1) ~= ARGV[1] then return {'other'} end
local payload = string.sub(v, sep + 1)
if string.sub(v, 1, 1) == 'U' then return {'used', payload} end
local tomb = ARGV[2]
if tomb == '' then tomb = payload end
redis.call('SET', KEYS[1], 'U' .. ARGV[1] .. '\0' .. tomb, 'KEEPTTL')
return {'live', payload}
"#;

/// The outcome of claiming a single-use value.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// This caller won; here is the payload.
    Live(Vec<u8>),
    /// The value was used before; here is its tombstone.
    Used(Vec<u8>),
    /// Unknown, expired, or issued to another owner.
    Missing,
}

/// Encodes a fresh, live value.
pub(crate) fn live_value(owner: &str, payload: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(owner.len() + payload.len() + 2);
    value.push(b'L');
    value.extend_from_slice(owner.as_bytes());
    value.push(0);
    value.extend_from_slice(payload);
    value
}

/// Reads the owner and payload of a stored value, live or used.
pub(crate) fn split_value(value: &[u8]) -> Option<(bool, &[u8], &[u8])> {
    let live = *value.first()? == b'L';
    let sep = value.iter().skip(1).position(|b| *b == 0)? + 1;
    Some((live, &value[1..sep], &value[sep + 1..]))
}

/// Claims `key` for `owner`. `tombstone` replaces the payload once used;
/// an empty tombstone keeps the payload.
pub(crate) async fn claim(
    store: &Store,
    operation: Operation,
    key: String,
    owner: &str,
    tombstone: &[u8],
) -> Result<Claim, StorageError> {
    let eval = store
        .client()
        .eval(CLAIM_SCRIPT, key, vec![owner.as_bytes(), tombstone]);
    let reply: Value = store.timed(operation, eval).await?;
    parse_reply(reply)
}

fn parse_reply(reply: Value) -> Result<Claim, StorageError> {
    let Value::Array(items) = reply else {
        return Ok(Claim::Missing);
    };
    let mut items = items.into_iter();
    let state = items.next().and_then(|v| v.as_bytes().map(<[u8]>::to_vec));
    let payload = items.next().and_then(|v| v.as_bytes().map(<[u8]>::to_vec));
    match (state.as_deref(), payload) {
        (Some(b"live"), Some(payload)) => Ok(Claim::Live(payload)),
        (Some(b"used"), Some(payload)) => Ok(Claim::Used(payload)),
        (Some(b"other"), None) => Ok(Claim::Missing),
        _ => Err(StorageError::Reply("claim script")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_value_round_trips() {
        let value = live_value("api/client", b"\x01\x00payload");
        let (live, owner, payload) = split_value(&value).unwrap();
        assert!(live);
        assert_eq!(owner, b"api/client");
        assert_eq!(payload, b"\x01\x00payload");
    }
}

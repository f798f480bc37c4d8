//! Claims on routes (a listen path and domain): which stored API may serve
//! one. A claim is one key holding an API id, changed only by a
//! compare-and-swap script on that one key, so concurrent creates of APIs
//! on one listen path are decided by Redis, also on a Redis Cluster.

use fred::prelude::*;
use fred::types::Value;

use super::observer::Operation;
use super::{StorageError, Store};

/// Sets (or, with an empty new value, deletes) the claim when it holds the
/// expected API id (empty: no claim). Replies `{1}` when it did, else
/// `{0, holder}`, or `{0}` when there is no claim.
const SWAP_SCRIPT: &str = r#"
local current = redis.call('GET', KEYS[1])
if (current or '') == ARGV[1] then
  if ARGV[2] == '' then
    redis.call('DEL', KEYS[1])
  else
    redis.call('SET', KEYS[1], ARGV[2])
  end
  return {1}
end
if current then return {0, current} end
return {0}
"#;

/// The outcome of [`Store::swap_route_claim`].
#[derive(Debug, PartialEq, Eq)]
pub enum Swap {
    /// The claim held what was expected and now holds the new value.
    Done,
    /// Another API holds the claim.
    Held(String),
    /// Nobody holds the claim (and somebody was expected).
    Free,
}

// === impl Store ===

impl Store {
    /// The API id holding the claim on `route`, if any.
    pub async fn route_claim(&self, route: &str) -> Result<Option<String>, StorageError> {
        let get = self.client().get(self.keys.route(route));
        self.timed(Operation::RouteClaim, get).await
    }

    /// Swaps the claim on `route` from `expected` to `new` (`None`: no
    /// claim), atomically.
    pub async fn swap_route_claim(
        &self,
        route: &str,
        expected: Option<&str>,
        new: Option<&str>,
    ) -> Result<Swap, StorageError> {
        let args = vec![expected.unwrap_or(""), new.unwrap_or("")];
        let eval = self
            .client()
            .eval(SWAP_SCRIPT, self.keys.route(route), args);
        let reply: Vec<Value> = self.timed(Operation::RouteClaim, eval).await?;
        match reply.as_slice() {
            [Value::Integer(1)] => Ok(Swap::Done),
            [Value::Integer(0)] => Ok(Swap::Free),
            [Value::Integer(0), holder] => holder
                .as_string()
                .map(Swap::Held)
                .ok_or(StorageError::Reply("route claim script")),
            _ => Err(StorageError::Reply("route claim script")),
        }
    }
}

//! Rate limit and quota counters, shared by every node.
//!
//! Both live in one hash per scope (a client app, a key, or either of those
//! for one API) and are checked by one Lua script on that one key: one round
//! trip, atomic, and no cross-slot access on a Redis Cluster. Time comes
//! from Redis itself, so nodes with skewed clocks agree.
//!
//! The rate limit is GCRA: `rate` requests per `per` seconds, with a burst
//! of `rate`. A rejected request changes nothing, so hammering a limit does
//! not extend the block. The quota counts allowed requests per renewal
//! period; a request refused by either check uses no quota.

use std::sync::LazyLock;

use fred::types::scripts::Script;

use super::observer::Operation;
use super::{StorageError, Store};

const LIMITS_SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate, per = tonumber(ARGV[1]), tonumber(ARGV[2])
local quota_max, renewal = tonumber(ARGV[3]), tonumber(ARGV[4])

local tat = tonumber(redis.call('HGET', KEYS[1], 'tat') or now)
if tat < now then tat = now end
local new_tat = tat
if rate > 0 then
  new_tat = tat + per / rate
  if new_tat - now > per then
    return {0, math.ceil(tat + per / rate - per - now), -1, -1}
  end
end

local used = tonumber(redis.call('HGET', KEYS[1], 'qused') or 0)
local reset = tonumber(redis.call('HGET', KEYS[1], 'qreset') or 0)
if quota_max >= 0 then
  if reset <= now then
    used = 0
    reset = now + renewal
  end
  if used >= quota_max then
    return {1, reset - now, 0, reset - now}
  end
  used = used + 1
end

redis.call('HSET', KEYS[1], 'tat', new_tat, 'qused', used, 'qreset', reset)
local keep = math.max(new_tat - now, reset - now, 1)
redis.call('PEXPIRE', KEYS[1], math.ceil(keep))
local remaining = -1
if quota_max >= 0 then remaining = quota_max - used end
return {2, 0, remaining, math.max(reset - now, 0)}
"#;

/// The script by its SHA-1, computed once. This runs on every request with
/// a limit: `EVALSHA` spares the node sending, and Redis hashing, the whole
/// script each time. After a Redis restart (`NOSCRIPT`) it is loaded again.
static LIMITS: LazyLock<Script> = LazyLock::new(|| Script::from_lua(LIMITS_SCRIPT));

/// The limits that apply to one request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// Requests per `per_ms`; 0 means no rate limit.
    pub rate: f64,
    pub per_ms: u64,
    /// Requests per renewal period; `None` means no quota.
    pub quota_max: Option<u64>,
    pub quota_renewal_ms: u64,
}

/// What the counters said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitOutcome {
    Allowed {
        /// Quota left after this request, when a quota applies.
        quota_remaining: Option<u64>,
        /// Milliseconds until the quota renews.
        quota_reset_ms: u64,
    },
    RateLimited {
        retry_after_ms: u64,
    },
    QuotaExceeded {
        retry_after_ms: u64,
    },
}

// === impl Limits ===

impl Limits {
    pub fn is_unlimited(&self) -> bool {
        self.rate <= 0.0 && self.quota_max.is_none()
    }
}

// === impl Store ===

impl Store {
    /// Counts one request against the limits of `scope`.
    pub async fn check_limits(
        &self,
        scope: &str,
        limits: &Limits,
    ) -> Result<LimitOutcome, StorageError> {
        let quota_max = limits.quota_max.map_or(-1, |max| max as i64);
        let args: Vec<String> = vec![
            limits.rate.max(0.0).to_string(),
            limits.per_ms.max(1).to_string(),
            quota_max.to_string(),
            limits.quota_renewal_ms.max(1).to_string(),
        ];
        let eval = LIMITS.evalsha_with_reload(self.client(), self.keys.limits(scope), args);
        let reply: Vec<i64> = self.timed(Operation::CheckLimits, eval).await?;
        parse_reply(&reply)
    }
}

fn parse_reply(reply: &[i64]) -> Result<LimitOutcome, StorageError> {
    let [verdict, wait, remaining, reset] = reply else {
        return Err(StorageError::Reply("limits script"));
    };
    let wait = (*wait).max(0) as u64;
    Ok(match verdict {
        0 => LimitOutcome::RateLimited {
            retry_after_ms: wait,
        },
        1 => LimitOutcome::QuotaExceeded {
            retry_after_ms: wait,
        },
        _ => LimitOutcome::Allowed {
            quota_remaining: u64::try_from(*remaining).ok(),
            quota_reset_ms: (*reset).max(0) as u64,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_map_to_outcomes() {
        assert_eq!(
            parse_reply(&[0, 1500, -1, -1]).unwrap(),
            LimitOutcome::RateLimited {
                retry_after_ms: 1500
            }
        );
        assert_eq!(
            parse_reply(&[2, 0, -1, 0]).unwrap(),
            LimitOutcome::Allowed {
                quota_remaining: None,
                quota_reset_ms: 0
            }
        );
        assert!(parse_reply(&[2]).is_err());
    }
}

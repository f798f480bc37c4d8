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

mod coalesce;

pub(super) use coalesce::Coalescer;

const LIMITS_SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate, per = tonumber(ARGV[1]), tonumber(ARGV[2])
local quota_max, renewal = tonumber(ARGV[3]), tonumber(ARGV[4])
local count = tonumber(ARGV[5])

local state = redis.call('HMGET', KEYS[1], 'tat', 'qused', 'qreset')
local tat = math.max(tonumber(state[1]) or now, now)
local used = tonumber(state[2]) or 0
local reset = tonumber(state[3]) or 0
if quota_max >= 0 and reset <= now then
  used = 0
  reset = now + renewal
end
local interval = 0
if rate > 0 then interval = per / rate end

-- Two numbers a request: -1 and the wait when rate limited, -2 and the
-- wait when the quota is used up; else what is left and when it is whole
-- again, of the quota when one applies, else of the rate limit.
local out, changed = {}, false
for i = 1, count do
  local first, second
  if rate > 0 and tat + interval - now > per then
    first, second = -1, math.ceil(tat + interval - per - now)
  elseif quota_max >= 0 and used >= quota_max then
    first, second = -2, reset - now
  else
    tat = tat + interval
    changed = true
    if quota_max >= 0 then
      used = used + 1
      first, second = quota_max - used, math.max(reset - now, 0)
    else
      first = math.floor((now + per - tat) / interval + 1e-9)
      second = math.ceil(tat - now)
    end
  end
  out[2 * i - 1], out[2 * i] = first, second
end

if changed then
  redis.call('HSET', KEYS[1], 'tat', tat, 'qused', used, 'qreset', reset)
  local keep = math.max(tat - now, reset - now, 1)
  redis.call('PEXPIRE', KEYS[1], math.ceil(keep))
end
return out
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
    Allowed(Allowance),
    RateLimited { retry_after_ms: u64 },
    QuotaExceeded { retry_after_ms: u64 },
}

/// The counters after an allowed request: the quota's when a quota
/// applies, else the rate limit's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allowance {
    /// Requests left: of the quota, or of the rate limit's burst.
    pub remaining: u64,
    /// Milliseconds until the quota renews, or until the whole burst is
    /// available again.
    pub reset_ms: u64,
}

/// Values the script returns for each request it counted.
const REPLY_WIDTH: usize = 2;

// === impl Limits ===

impl Limits {
    pub fn is_unlimited(&self) -> bool {
        self.rate <= 0.0 && self.quota_max.is_none()
    }
}

// === impl Store ===

impl Store {
    /// Counts one request against the limits of `scope`. Concurrent checks
    /// of one scope share a round trip (see [`Coalescer`]).
    pub async fn check_limits(
        &self,
        scope: &str,
        limits: &Limits,
    ) -> Result<LimitOutcome, StorageError> {
        Coalescer::check(self, scope, limits).await
    }

    /// Counts `count` requests against the limits of `scope`, in order, in
    /// one script call: each outcome is what that request would have met
    /// on its own after the ones before it.
    pub(super) async fn count_requests(
        &self,
        scope: &str,
        limits: &Limits,
        count: usize,
    ) -> Result<Vec<LimitOutcome>, StorageError> {
        let quota_max = limits.quota_max.map_or(-1, |max| max as i64);
        let args: Vec<String> = vec![
            limits.rate.max(0.0).to_string(),
            limits.per_ms.max(1).to_string(),
            quota_max.to_string(),
            limits.quota_renewal_ms.max(1).to_string(),
            count.to_string(),
        ];
        let eval = LIMITS.evalsha_with_reload(self.client(), self.keys.limits(scope), args);
        let reply: Vec<i64> = self.timed(Operation::CheckLimits, eval).await?;
        if reply.len() != count * REPLY_WIDTH {
            return Err(StorageError::Reply("limits script"));
        }
        reply.chunks_exact(REPLY_WIDTH).map(parse_outcome).collect()
    }
}

fn parse_outcome(reply: &[i64]) -> Result<LimitOutcome, StorageError> {
    let &[first, second] = reply else {
        return Err(StorageError::Reply("limits script"));
    };
    let ms = second.max(0) as u64;
    Ok(match first {
        -1 => LimitOutcome::RateLimited { retry_after_ms: ms },
        -2 => LimitOutcome::QuotaExceeded { retry_after_ms: ms },
        left => LimitOutcome::Allowed(Allowance {
            remaining: left.max(0) as u64,
            reset_ms: ms,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_map_to_outcomes() {
        assert_eq!(
            parse_outcome(&[-1, 1500]).unwrap(),
            LimitOutcome::RateLimited {
                retry_after_ms: 1500
            }
        );
        assert_eq!(
            parse_outcome(&[-2, 60_000]).unwrap(),
            LimitOutcome::QuotaExceeded {
                retry_after_ms: 60_000
            }
        );
        assert_eq!(
            parse_outcome(&[4, 800]).unwrap(),
            LimitOutcome::Allowed(Allowance {
                remaining: 4,
                reset_ms: 800,
            })
        );
        assert!(parse_outcome(&[2]).is_err());
    }
}

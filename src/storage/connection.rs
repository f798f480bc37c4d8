//! The Redis connection pool and the `Store` handle the rest of tollgate uses.

use std::time::Duration;

use fred::prelude::*;

use super::keys::Keys;
use super::limits::Coalescer;
use super::observer::{Operation, RedisObserver};
use super::StorageError;

/// First reconnect delay; each further one doubles it.
const RECONNECT_MIN_DELAY_MS: u32 = 100;

/// Longest wait between two reconnect attempts, jitter included. Service
/// must be back within 2 s of Redis returning after an outage of any
/// length: a delay that kept doubling would leave a node waiting seconds
/// for its next attempt.
const RECONNECT_MAX_DELAY_MS: u32 = 1_000;

/// How to reach Redis.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub url: String,
    pub key_prefix: String,
    pub pool_size: usize,
    pub connect_timeout: Duration,
    /// Longest a single command may take before it fails, so that a Redis
    /// that stops answering turns into an error instead of a hung request.
    pub command_timeout: Duration,
}

/// A cheap-to-clone handle on the Redis pool.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    pub(crate) keys: Keys,
    pub(crate) config: std::sync::Arc<StoreConfig>,
    /// Where round trips are timed; `None` without a node's metrics.
    pub(super) observer: Option<std::sync::Arc<RedisObserver>>,
    /// Limit checks waiting to share a round trip.
    pub(super) limit_batches: std::sync::Arc<Coalescer>,
}

/// Startup failure: which address could not be reached, and why.
#[derive(Debug, thiserror::Error)]
#[error("redis at {address} is unreachable: {reason}")]
pub struct ConnectError {
    pub address: String,
    pub reason: String,
}

// === impl Store ===

impl Store {
    /// Connects the pool and checks that Redis answers.
    ///
    /// # Errors
    ///
    /// Fails when the URL is invalid or Redis does not answer within the
    /// connect timeout.
    pub async fn connect(config: &StoreConfig) -> Result<Self, ConnectError> {
        let address = redact_url(&config.url);
        let fail = |reason: String| ConnectError {
            address: address.clone(),
            reason,
        };
        let pool = build_pool(config).map_err(|e| fail(e.to_string()))?;

        let connected = tokio::time::timeout(config.connect_timeout, async {
            pool.init().await?;
            pool.ping::<()>(None).await
        });
        match connected.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(fail(error.to_string())),
            Err(_) => return Err(fail("no answer within the connect timeout".into())),
        }
        Ok(Self {
            pool,
            keys: Keys::new(&config.key_prefix),
            config: std::sync::Arc::new(config.clone()),
            observer: None,
            limit_batches: Default::default(),
        })
    }

    /// A client from the pool, in turn.
    pub(crate) fn client(&self) -> &Client {
        self.pool.next()
    }

    /// Whether Redis answers a PING now.
    pub async fn ping(&self) -> Result<(), StorageError> {
        self.timed(Operation::Ping, self.client().ping::<()>(None))
            .await
    }

    /// Closes every connection of the pool.
    pub async fn close(&self) {
        let _ = self.pool.quit().await;
    }
}

fn build_pool(config: &StoreConfig) -> Result<Pool, fred::error::Error> {
    builder(config)?.build_pool(config.pool_size.max(1))
}

/// Connection settings shared by the pool and the subscriber.
pub(crate) fn builder(config: &StoreConfig) -> Result<Builder, fred::error::Error> {
    let redis = Config::from_url(&config.url)?;
    let connect_timeout = config.connect_timeout;
    let command_timeout = config.command_timeout;
    let mut builder = Builder::from_config(redis);
    builder
        .with_connection_config(|c| {
            c.connection_timeout = connect_timeout;
            c.max_command_attempts = 2;
        })
        .with_performance_config(|p| {
            p.default_command_timeout = command_timeout;
        })
        .set_policy(ReconnectPolicy::new_exponential(
            0,
            RECONNECT_MIN_DELAY_MS,
            RECONNECT_MAX_DELAY_MS,
            2,
        ));
    Ok(builder)
}

/// The URL without a password, for logs and error messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://***@{host}"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_url_hides_password() {
        assert_eq!(redact_url("redis://:pw@h:1/0"), "redis://***@h:1/0");
        assert_eq!(redact_url("redis://h:1"), "redis://h:1");
    }
}

//! Timing and error counting of Redis round trips, for the node's metrics.
//!
//! Every round trip goes through [`Store::timed`] with an [`Operation`],
//! a fixed name that becomes the `operation` label: never a key or a value.
//! A store built without metrics (unit tests, `--check-config`) times
//! nothing. The handles of an operation are registered on its first use and
//! kept, so a round trip costs one clock read and one record.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use tokio::time::Instant;

use super::{StorageError, Store};
use crate::metrics::{Metrics, RedisHandles};

/// What a Redis round trip was for: the `operation` label. A new variant
/// goes at the end, and into [`Operation::ALL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    Ping,
    PutCode,
    ClaimCode,
    ClaimRefresh,
    RefreshRecord,
    IssueTokens,
    PutKeySession,
    Session,
    RevokeAccess,
    RevokeGrant,
    ClientTokens,
    RevokeClientTokens,
    PutDocument,
    Document,
    Documents,
    DeleteDocument,
    User,
    PutUser,
    DeleteUser,
    UserOrgs,
    CheckLimits,
    PushAnalytics,
    BumpChangeCounter,
    ChangeCounter,
    Publish,
    RouteClaim,
}

/// The handles of each operation, for one node.
pub(crate) struct RedisObserver {
    metrics: Arc<Metrics>,
    handles: [OnceLock<RedisHandles>; Operation::ALL.len()],
}

// === impl Operation ===

impl Operation {
    const ALL: [Operation; 26] = [
        Self::Ping,
        Self::PutCode,
        Self::ClaimCode,
        Self::ClaimRefresh,
        Self::RefreshRecord,
        Self::IssueTokens,
        Self::PutKeySession,
        Self::Session,
        Self::RevokeAccess,
        Self::RevokeGrant,
        Self::ClientTokens,
        Self::RevokeClientTokens,
        Self::PutDocument,
        Self::Document,
        Self::Documents,
        Self::DeleteDocument,
        Self::User,
        Self::PutUser,
        Self::DeleteUser,
        Self::UserOrgs,
        Self::CheckLimits,
        Self::PushAnalytics,
        Self::BumpChangeCounter,
        Self::ChangeCounter,
        Self::Publish,
        Self::RouteClaim,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Ping => "ping",
            Self::PutCode => "put_code",
            Self::ClaimCode => "claim_code",
            Self::ClaimRefresh => "claim_refresh",
            Self::RefreshRecord => "refresh_record",
            Self::IssueTokens => "issue_tokens",
            Self::PutKeySession => "put_key_session",
            Self::Session => "session",
            Self::RevokeAccess => "revoke_access",
            Self::RevokeGrant => "revoke_grant",
            Self::ClientTokens => "client_tokens",
            Self::RevokeClientTokens => "revoke_client_tokens",
            Self::PutDocument => "put_document",
            Self::Document => "document",
            Self::Documents => "documents",
            Self::DeleteDocument => "delete_document",
            Self::User => "user",
            Self::PutUser => "put_user",
            Self::DeleteUser => "delete_user",
            Self::UserOrgs => "user_orgs",
            Self::CheckLimits => "check_limits",
            Self::PushAnalytics => "push_analytics",
            Self::BumpChangeCounter => "bump_change_counter",
            Self::ChangeCounter => "change_counter",
            Self::Publish => "publish",
            Self::RouteClaim => "route_claim",
        }
    }
}

// === impl RedisObserver ===

impl RedisObserver {
    pub(crate) fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            handles: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// `None` only for a variant missing from `ALL`: such a round trip
    /// goes unrecorded rather than failing the request.
    fn handles(&self, operation: Operation) -> Option<&RedisHandles> {
        // The discriminant is the index: `ALL` lists the variants in order,
        // which a unit test checks.
        let slot = self.handles.get(operation as usize)?;
        Some(slot.get_or_init(|| self.metrics.redis_handles(operation.as_str())))
    }
}

// === impl Store: observing ===

impl Store {
    /// Sets the metrics that every round trip of this store, and of its
    /// clones made from now on, is recorded into.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.observer = Some(Arc::new(RedisObserver::new(metrics)));
        self
    }

    /// Awaits one round trip, timing it and counting its failure when the
    /// store has metrics.
    pub(crate) async fn timed<T>(
        &self,
        operation: Operation,
        round_trip: impl Future<Output = Result<T, fred::error::Error>>,
    ) -> Result<T, StorageError> {
        let Some(observer) = &self.observer else {
            return Ok(round_trip.await?);
        };
        let started = Instant::now();
        let result = round_trip.await;
        if let Some(handles) = observer.handles(operation) {
            handles.duration.record(started.elapsed().as_secs_f64());
            if result.is_err() {
                handles.errors.increment(1);
            }
        }
        Ok(result?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_listed_in_order_with_distinct_names() {
        let last = *Operation::ALL.last().expect("operations");
        assert_eq!(
            last as usize,
            Operation::RouteClaim as usize,
            "last variant"
        );
        let mut names = std::collections::HashSet::new();
        for (index, operation) in Operation::ALL.iter().enumerate() {
            assert_eq!(*operation as usize, index, "{operation:?}");
            let name = operation.as_str();
            assert!(names.insert(name), "{name} twice");
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name}"
            );
        }
    }
}

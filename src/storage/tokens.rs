//! Access tokens, refresh tokens, codes and grant families.
//!
//! Issuing is one pipelined round trip. A grant family is revoked by turning
//! its record into the marker `R`; a rotation that lands after the marker
//! sees it and removes the tokens it just wrote, so a replayed code or
//! refresh token always ends with the whole family dead.

use fred::clients::Pipeline;
use fred::prelude::*;
use fred::types::{ClusterHash, CustomCommand, Value};

use super::claim::{self, Claim};
use super::observer::Operation;
use super::records::{self, CodeRecord, GrantRecord, RefreshRecord};
use super::{StorageError, Store};
use crate::session::{now_ms, Session};

/// Page size of the token listing, as in Tyk.
const TOKEN_PAGE_SIZE: usize = 100;

const GRANT_STORE_SCRIPT: &str = r#"
if redis.call('GET', KEYS[1]) == 'R' then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"#;

const GRANT_REVOKE_SCRIPT: &str = r#"
local v = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], 'R', 'PX', ARGV[1])
if v == 'R' then return false end
return v
"#;

/// One issue in this many, on average, trims the client's token index.
const INDEX_TRIM_EVERY: u32 = 16;

/// Everything needed to store one issued access token (and refresh token).
#[derive(Debug)]
pub struct NewTokens<'a> {
    pub access_hash: &'a str,
    pub session: &'a Session,
    pub refresh: Option<NewRefresh<'a>>,
    /// The access token that this issue replaces (refresh rotation).
    pub replaces_access: Option<&'a str>,
    /// How long a revoked-grant marker must outlive the tokens.
    pub grant_ttl_ms: u64,
}

/// A refresh token to store next to a new access token.
#[derive(Debug)]
pub struct NewRefresh<'a> {
    pub hash: &'a str,
    pub ttl_ms: u64,
}

/// Whether the tokens were stored live or the grant was revoked meanwhile.
#[derive(Debug, PartialEq, Eq)]
pub enum IssuedTokens {
    Live,
    /// A replay revoked the grant while this issue was in flight; the new
    /// tokens were removed again.
    GrantRevoked,
}

/// The outcome of using a single-use credential.
#[derive(Debug)]
pub enum Claimed<L, U> {
    /// This caller won the credential.
    Live(L),
    /// It was used before; what its tombstone says.
    Used(U),
    /// Unknown, expired, or issued to another client.
    Missing,
}

/// One page of a client's live access tokens.
#[derive(Debug)]
pub struct TokenPage {
    /// `(token hash, expiry as Unix seconds)`.
    pub tokens: Vec<(String, u64)>,
    pub total: usize,
    pub page: usize,
    pub page_size: usize,
}

// === impl Store: codes ===

impl Store {
    pub async fn put_code(
        &self,
        hash: &str,
        owner: &str,
        record: &CodeRecord,
        ttl_ms: u64,
    ) -> Result<(), StorageError> {
        let value = claim::live_value(owner, &records::encode(record)?);
        let expire = Some(Expiration::PX(ttl_ms as i64));
        let set = self
            .client()
            .set::<(), _, _>(self.keys.code(hash), value, expire, None, false);
        self.timed(Operation::PutCode, set).await
    }

    /// Uses a code once. The tombstone left behind names `grant_id`, so a
    /// second use can revoke what the first one issued.
    pub async fn claim_code(
        &self,
        hash: &str,
        owner: &str,
        grant_id: &str,
    ) -> Result<Claimed<CodeRecord, String>, StorageError> {
        let key = self.keys.code(hash);
        let claim =
            claim::claim(self, Operation::ClaimCode, key, owner, grant_id.as_bytes()).await?;
        Ok(match claim {
            Claim::Live(payload) => Claimed::Live(records::decode(&payload)?),
            Claim::Used(tomb) => Claimed::Used(String::from_utf8_lossy(&tomb).into_owned()),
            Claim::Missing => Claimed::Missing,
        })
    }

    /// Uses a refresh token once; its tombstone keeps the record.
    pub async fn claim_refresh(
        &self,
        hash: &str,
        owner: &str,
    ) -> Result<Claimed<RefreshRecord, RefreshRecord>, StorageError> {
        let key = self.keys.refresh(hash);
        let claim = claim::claim(self, Operation::ClaimRefresh, key, owner, b"").await?;
        Ok(match claim {
            Claim::Live(payload) => Claimed::Live(records::decode(&payload)?),
            Claim::Used(payload) => Claimed::Used(records::decode(&payload)?),
            Claim::Missing => Claimed::Missing,
        })
    }

    /// Reads a refresh record without using it: `(owner, live, record)`.
    pub async fn refresh_record(
        &self,
        hash: &str,
    ) -> Result<Option<(String, bool, RefreshRecord)>, StorageError> {
        let get = self.client().get(self.keys.refresh(hash));
        let value: Option<Vec<u8>> = self.timed(Operation::RefreshRecord, get).await?;
        let Some(value) = value else { return Ok(None) };
        let Some((live, owner, payload)) = claim::split_value(&value) else {
            return Err(StorageError::Reply("refresh record"));
        };
        let owner = String::from_utf8_lossy(owner).into_owned();
        Ok(Some((owner, live, records::decode(payload)?)))
    }
}

// === impl Store: access tokens ===

impl Store {
    /// Stores new tokens: one pipelined round trip, and a second one for
    /// the grant record when the tokens belong to a grant.
    ///
    /// The tokens are written before the grant record, and the grant
    /// record only where the grant is not revoked. A concurrent revocation
    /// of the grant then either comes first, and this call removes the new
    /// tokens itself, or comes after, and finds them in the grant record:
    /// either way no token of a revoked grant survives, in any order the
    /// commands of a Redis Cluster's nodes run.
    pub async fn issue(&self, new: &NewTokens<'_>) -> Result<IssuedTokens, StorageError> {
        let session = new.session;
        let now = now_ms();
        let access_ttl = session.expires_at_ms.saturating_sub(now).max(1);
        let pipe = self.client().pipeline();

        let access_key = self.keys.access(new.access_hash);
        let expire = Some(Expiration::PX(access_ttl as i64));
        pipe.set::<(), _, _>(&access_key, records::encode(session)?, expire, None, false)
            .await?;
        self.queue_index(&pipe, session, new.access_hash, now)
            .await?;
        if let Some(old) = new.replaces_access {
            pipe.del::<(), _>(self.keys.access(old)).await?;
            let index = self.keys.client_tokens(&session.api_id, &session.client_id);
            pipe.zrem::<(), _, _>(index, old).await?;
        }
        if let Some(refresh) = &new.refresh {
            self.queue_refresh(&pipe, new, refresh).await?;
        }
        let _: Vec<Value> = self.timed(Operation::IssueTokens, pipe.all()).await?;

        if !self.store_grant(new, now).await? {
            self.remove_new_tokens(new).await?;
            return Ok(IssuedTokens::GrantRevoked);
        }
        Ok(IssuedTokens::Live)
    }

    /// Stores a key's session as it is, with no index and no grant:
    /// keys made through the admin API. `None` keeps it until deleted.
    pub async fn put_key_session(
        &self,
        hash: &str,
        session: &Session,
        ttl_ms: Option<u64>,
    ) -> Result<(), StorageError> {
        let expire = ttl_ms.map(|ms| Expiration::PX(ms.max(1) as i64));
        let set = self.client().set::<(), _, _>(
            self.keys.access(hash),
            records::encode(session)?,
            expire,
            None,
            false,
        );
        self.timed(Operation::PutKeySession, set).await
    }

    pub async fn session(&self, hash: &str) -> Result<Option<Session>, StorageError> {
        let get = self.client().get(self.keys.access(hash));
        let value: Option<Vec<u8>> = self.timed(Operation::Session, get).await?;
        value.map(|bytes| records::decode(&bytes)).transpose()
    }

    /// Deletes one access token; returns its session if it existed.
    pub async fn revoke_access(&self, hash: &str) -> Result<Option<Session>, StorageError> {
        let op = Operation::RevokeAccess;
        let getdel = self.client().getdel(self.keys.access(hash));
        let value: Option<Vec<u8>> = self.timed(op, getdel).await?;
        let Some(bytes) = value else { return Ok(None) };
        let session: Session = records::decode(&bytes)?;
        let index = self.keys.client_tokens(&session.api_id, &session.client_id);
        let zrem = self.client().zrem::<(), _, _>(index, hash);
        self.timed(op, zrem).await?;
        Ok(Some(session))
    }

    /// Kills a grant family: its access and refresh tokens, now and for any
    /// rotation still in flight.
    pub async fn revoke_grant(
        &self,
        grant_id: &str,
        marker_ttl_ms: u64,
    ) -> Result<Option<GrantRecord>, StorageError> {
        let eval = self.client().eval(
            GRANT_REVOKE_SCRIPT,
            self.keys.grant(grant_id),
            marker_ttl_ms.max(1).to_string(),
        );
        let old: Option<Vec<u8>> = self.timed(Operation::RevokeGrant, eval).await?;
        let Some(bytes) = old else { return Ok(None) };
        let grant: GrantRecord = records::decode(&bytes)?;
        self.delete_grant_tokens(&grant).await?;
        Ok(Some(grant))
    }

    /// Live access tokens of a client: page `n` of 100 (from 1), or all of
    /// them when `page` is `None`. Lapsed entries are trimmed first.
    pub async fn client_tokens(
        &self,
        api_id: &str,
        client_id: &str,
        page: Option<usize>,
    ) -> Result<TokenPage, StorageError> {
        let key = self.keys.client_tokens(api_id, client_id);
        let now = now_ms();
        let client = self.client();
        let op = Operation::ClientTokens;
        let trim =
            client.zremrangebyscore::<(), _, _, _>(&key, f64::NEG_INFINITY, lapsed_bound(now));
        self.timed(op, trim).await?;
        let count = client.zcount(&key, score(now), f64::INFINITY);
        let total: usize = self.timed(op, count).await?;
        let limit = page.map(|page| {
            let offset = (page.max(1) - 1) * TOKEN_PAGE_SIZE;
            (offset as i64, TOKEN_PAGE_SIZE as i64)
        });
        let range = client.zrangebyscore(&key, score(now), f64::INFINITY, true, limit);
        let raw: Vec<(String, f64)> = self.timed(op, range).await?;
        let tokens = raw.into_iter().map(|(h, s)| (h, s.ceil() as u64)).collect();
        Ok(TokenPage {
            tokens,
            total,
            page: page.unwrap_or(1).max(1),
            page_size: TOKEN_PAGE_SIZE,
        })
    }

    /// Revokes every token of a client; returns the access hashes removed.
    pub async fn revoke_client_tokens(
        &self,
        api_id: &str,
        client_id: &str,
        marker_ttl_ms: u64,
    ) -> Result<Vec<String>, StorageError> {
        let client = self.client();
        let op = Operation::RevokeClientTokens;
        let grants_key = self.keys.client_grants(api_id, client_id);
        let range = client.zrange(&grants_key, 0, -1, None, false, None, false);
        let grants: Vec<String> = self.timed(op, range).await?;
        for grant_id in &grants {
            self.revoke_grant(grant_id, marker_ttl_ms).await?;
        }

        let tokens_key = self.keys.client_tokens(api_id, client_id);
        let range = client.zrange(&tokens_key, 0, -1, None, false, None, false);
        let hashes: Vec<String> = self.timed(op, range).await?;
        let keys: Vec<String> = hashes.iter().map(|h| self.keys.access(h)).collect();
        if !keys.is_empty() {
            self.delete_each(op, keys).await?;
        }
        self.delete_each(op, vec![tokens_key, grants_key]).await?;
        Ok(hashes)
    }
}

// === impl Store: pipeline steps ===

impl Store {
    async fn queue_index(
        &self,
        pipe: &Pipeline<Client>,
        session: &Session,
        access_hash: &str,
        now: u64,
    ) -> Result<(), StorageError> {
        let index = self.keys.client_tokens(&session.api_id, &session.client_id);
        let expiry = score(session.expires_at_ms);
        pipe.zadd::<(), _, _>(&index, None, None, false, false, (expiry, access_hash))
            .await?;
        // Lapsed entries are trimmed by every reader of the index and by
        // the purge call; issuing trims them now and then, which bounds the
        // index of a busy client without a third command per token.
        if rand::random_ratio(1, INDEX_TRIM_EVERY) {
            pipe.zremrangebyscore::<(), _, _, _>(&index, f64::NEG_INFINITY, lapsed_bound(now))
                .await?;
        }
        Ok(())
    }

    async fn queue_refresh(
        &self,
        pipe: &Pipeline<Client>,
        new: &NewTokens<'_>,
        refresh: &NewRefresh<'_>,
    ) -> Result<(), StorageError> {
        let session = new.session;
        let record = RefreshRecord {
            grant_id: session.grant_id.clone().unwrap_or_default(),
            access_hash: new.access_hash.to_string(),
            session: session.clone(),
        };
        let owner = owner(&session.api_id, &session.client_id);
        let value = claim::live_value(&owner, &records::encode(&record)?);
        let expire = Some(Expiration::PX(refresh.ttl_ms.max(1) as i64));
        pipe.set::<(), _, _>(self.keys.refresh(refresh.hash), value, expire, None, false)
            .await?;
        Ok(())
    }

    /// Writes the grant record of new tokens, when they belong to a grant;
    /// `false` when the grant was revoked before.
    async fn store_grant(&self, new: &NewTokens<'_>, now: u64) -> Result<bool, StorageError> {
        let session = new.session;
        let Some(grant_id) = &session.grant_id else {
            return Ok(true);
        };
        let grant = GrantRecord {
            api_id: session.api_id.clone(),
            client_id: session.client_id.clone(),
            access_hash: new.access_hash.to_string(),
            refresh_hash: new.refresh.as_ref().map(|r| r.hash.to_string()),
        };
        let ttl = new.grant_ttl_ms.max(1);
        let pipe = self.client().pipeline();
        // Pipelines have no EVAL method of their own; send it as a command.
        let eval = CustomCommand::new_static("EVAL", ClusterHash::FirstKey, false);
        let args: Vec<Value> = vec![
            GRANT_STORE_SCRIPT.into(),
            1.into(),
            self.keys.grant(grant_id).into(),
            Value::Bytes(records::encode(&grant)?.into()),
            ttl.to_string().into(),
        ];
        pipe.custom::<(), _>(eval, args).await?;

        let index = self.keys.client_grants(&session.api_id, &session.client_id);
        let expiry = score(now + ttl);
        pipe.zadd::<(), _, _>(
            &index,
            None,
            None,
            false,
            false,
            (expiry, grant_id.as_str()),
        )
        .await?;
        pipe.zremrangebyscore::<(), _, _, _>(&index, f64::NEG_INFINITY, lapsed_bound(now))
            .await?;
        let replies: Vec<Value> = self.timed(Operation::IssueTokens, pipe.all()).await?;
        Ok(replies.first().and_then(Value::as_i64) != Some(0))
    }

    async fn remove_new_tokens(&self, new: &NewTokens<'_>) -> Result<(), StorageError> {
        let mut keys = vec![self.keys.access(new.access_hash)];
        if let Some(refresh) = &new.refresh {
            keys.push(self.keys.refresh(refresh.hash));
        }
        self.delete_each(Operation::IssueTokens, keys).await
    }

    async fn delete_grant_tokens(&self, grant: &GrantRecord) -> Result<(), StorageError> {
        let mut keys = vec![self.keys.access(&grant.access_hash)];
        if let Some(refresh) = &grant.refresh_hash {
            keys.push(self.keys.refresh(refresh));
        }
        let op = Operation::RevokeGrant;
        self.delete_each(op, keys).await?;
        let index = self.keys.client_tokens(&grant.api_id, &grant.client_id);
        let zrem = self
            .client()
            .zrem::<(), _, _>(index, grant.access_hash.as_str());
        self.timed(op, zrem).await
    }
}

// === impl Store: helpers ===

impl Store {
    /// Deletes keys one command each, pipelined: a multi-key DEL would fail
    /// on a Redis Cluster when the keys live in different slots.
    pub(crate) async fn delete_each(
        &self,
        operation: Operation,
        keys: Vec<String>,
    ) -> Result<(), StorageError> {
        let pipe = self.client().pipeline();
        for key in keys {
            pipe.del::<(), _>(key).await?;
        }
        let _: Vec<Value> = self.timed(operation, pipe.all()).await?;
        Ok(())
    }
}

/// Index scores are expiry times in Unix seconds, to the millisecond, so a
/// token stays listed until its very last millisecond.
fn score(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// Entries scored up to here have expired.
fn lapsed_bound(now_ms: u64) -> f64 {
    score(now_ms.saturating_sub(1))
}

/// The owner string that binds a code or refresh token to its client.
pub fn owner(api_id: &str, client_id: &str) -> String {
    format!("{api_id}/{client_id}")
}

//! What operators submit and read back: API definitions, policies, OAuth
//! client apps and basic-auth users, stored as JSON.
//!
//! Each kind has one key per document and a set of ids for listing. The two
//! writes are not atomic together; a crash between them leaves either an id
//! without a document (skipped when listing) or a document without an id
//! (listed again by the next write of the same id).
//!
//! Whether a document may be written is decided by the one `SET` on its own
//! key (`NX` to create, `XX` to replace), so of many concurrent creates of
//! one id exactly one wins, and an update never brings back a document that
//! a concurrent delete removed. One key per decision also works on a Redis
//! Cluster.

use fred::prelude::*;
use fred::types::{SetOptions, Value};
use serde::{Deserialize, Serialize};

use super::observer::Operation;
use super::{StorageError, Store};

/// An OAuth client app. The secret is kept only as a salted hash.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientRecord {
    pub client_id: String,
    pub api_id: String,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    pub policy_id: Option<String>,
    #[serde(default)]
    pub meta_data: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub description: String,
    pub secret_hash: String,
    pub secret_salt: String,
}

/// A resource owner for the password grant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    pub username: String,
    pub org_id: String,
    /// PHC string of an Argon2id hash.
    pub password_hash: String,
    #[serde(default)]
    pub apply_policies: Vec<String>,
    #[serde(default)]
    pub meta_data: serde_json::Map<String, serde_json::Value>,
}

/// How a document may be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    /// Only if no document has this id.
    Create,
    /// Only if a document has this id.
    Replace,
}

/// The kinds of stored document, to pick their keys.
#[derive(Clone, Copy, Debug)]
pub enum Catalog<'a> {
    Apis,
    Policies,
    Clients { api_id: &'a str },
}

// === impl Store: documents ===

impl Store {
    /// Writes a document as `write` allows; false when it did not allow it
    /// (the id exists on create, or does not on replace).
    pub async fn put_document(
        &self,
        kind: Catalog<'_>,
        id: &str,
        document: &[u8],
        write: Write,
    ) -> Result<bool, StorageError> {
        let client = self.client();
        let op = Operation::PutDocument;
        let condition = match write {
            Write::Create => SetOptions::NX,
            Write::Replace => SetOptions::XX,
        };
        let key = self.document_key(kind, id);
        let set = client.set::<Value, _, _>(key, document, None, Some(condition), false);
        if self.timed(op, set).await?.is_null() {
            return Ok(false);
        }
        // Also on replace: it puts back an id that a crash left out.
        let sadd = client.sadd::<(), _, _>(self.set_key(kind), id);
        self.timed(op, sadd).await?;
        Ok(true)
    }

    pub async fn document(
        &self,
        kind: Catalog<'_>,
        id: &str,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let get = self.client().get(self.document_key(kind, id));
        self.timed(Operation::Document, get).await
    }

    /// The ids of every document of a kind, unsorted.
    pub async fn document_ids(&self, kind: Catalog<'_>) -> Result<Vec<String>, StorageError> {
        let members = self.client().smembers(self.set_key(kind));
        self.timed(Operation::Documents, members).await
    }

    /// Every document of a kind, sorted by id.
    pub async fn documents(
        &self,
        kind: Catalog<'_>,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let mut ids = self.document_ids(kind).await?;
        ids.sort();
        if ids.is_empty() {
            return Ok(Vec::new());
        }

        // One GET per key in a pipeline: MGET would cross slots on a cluster.
        let pipe = self.client().pipeline();
        for id in &ids {
            pipe.get::<(), _>(self.document_key(kind, id)).await?;
        }
        let replies: Vec<Value> = self.timed(Operation::Documents, pipe.all()).await?;
        let documents = ids
            .into_iter()
            .zip(replies)
            .filter_map(|(id, reply)| reply.as_bytes().map(|b| (id, b.to_vec())))
            .collect();
        Ok(documents)
    }

    /// Removes a document; true when it existed.
    pub async fn delete_document(&self, kind: Catalog<'_>, id: &str) -> Result<bool, StorageError> {
        let client = self.client();
        let op = Operation::DeleteDocument;
        let removed: i64 = self
            .timed(op, client.del(self.document_key(kind, id)))
            .await?;
        let srem = client.srem::<(), _, _>(self.set_key(kind), id);
        self.timed(op, srem).await?;
        Ok(removed > 0)
    }

    fn document_key(&self, kind: Catalog<'_>, id: &str) -> String {
        match kind {
            Catalog::Apis => self.keys.api(id),
            Catalog::Policies => self.keys.policy(id),
            Catalog::Clients { api_id } => self.keys.client(api_id, id),
        }
    }

    fn set_key(&self, kind: Catalog<'_>) -> String {
        match kind {
            Catalog::Apis => self.keys.api_set(),
            Catalog::Policies => self.keys.policy_set(),
            Catalog::Clients { api_id } => self.keys.client_set(api_id),
        }
    }
}

// === impl Store: typed records ===

impl Store {
    pub async fn client_app(
        &self,
        api_id: &str,
        client_id: &str,
    ) -> Result<Option<ClientRecord>, StorageError> {
        let kind = Catalog::Clients { api_id };
        let Some(bytes) = self.document(kind, client_id).await? else {
            return Ok(None);
        };
        Ok(Some(serde_json::from_slice(&bytes)?))
    }

    /// Writes a client app as `write` allows; see [`Store::put_document`].
    pub async fn put_client_app(
        &self,
        client: &ClientRecord,
        write: Write,
    ) -> Result<bool, StorageError> {
        let kind = Catalog::Clients {
            api_id: &client.api_id,
        };
        let bytes = serde_json::to_vec(client)?;
        self.put_document(kind, &client.client_id, &bytes, write)
            .await
    }

    pub async fn client_apps(&self, api_id: &str) -> Result<Vec<ClientRecord>, StorageError> {
        let documents = self.documents(Catalog::Clients { api_id }).await?;
        documents
            .iter()
            .map(|(_, bytes)| Ok(serde_json::from_slice(bytes)?))
            .collect()
    }

    pub async fn user(
        &self,
        org_id: &str,
        username: &str,
    ) -> Result<Option<UserRecord>, StorageError> {
        let get = self.client().get(self.keys.user(org_id, username));
        let bytes: Option<Vec<u8>> = self.timed(Operation::User, get).await?;
        bytes
            .map(|b| serde_json::from_slice(&b).map_err(StorageError::from))
            .transpose()
    }

    pub async fn put_user(&self, user: &UserRecord) -> Result<(), StorageError> {
        let key = self.keys.user(&user.org_id, &user.username);
        let bytes = serde_json::to_vec(user)?;
        let client = self.client();
        let op = Operation::PutUser;
        let set = client.set::<(), _, _>(key, bytes, None, None, false);
        self.timed(op, set).await?;
        let orgs = self.keys.user_orgs(&user.username);
        let sadd = client.sadd::<(), _, _>(orgs, user.org_id.as_str());
        self.timed(op, sadd).await
    }

    pub async fn delete_user(&self, org_id: &str, username: &str) -> Result<bool, StorageError> {
        let client = self.client();
        let op = Operation::DeleteUser;
        let removed: i64 = self
            .timed(op, client.del(self.keys.user(org_id, username)))
            .await?;
        let srem = client.srem::<(), _, _>(self.keys.user_orgs(username), org_id);
        self.timed(op, srem).await?;
        Ok(removed > 0)
    }

    /// The organisations that have a user named `username`.
    pub async fn user_orgs(&self, username: &str) -> Result<Vec<String>, StorageError> {
        let members = self.client().smembers(self.keys.user_orgs(username));
        let mut orgs: Vec<String> = self.timed(Operation::UserOrgs, members).await?;
        orgs.sort();
        Ok(orgs)
    }
}

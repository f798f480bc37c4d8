//! The OAuth 2.0 authorization server of each OAuth API.
//!
//! Endpoints under an API's listen path:
//!
//! | path | what |
//! | --- | --- |
//! | `GET/POST oauth/authorize` | checks the request, `307` to the login page |
//! | `POST oauth/token` | all grants (RFC 6749 sections 4 and 6) |
//! | `POST oauth/revoke` | RFC 7009 revocation, client-authenticated |
//! | `POST oauth/revoke_all` | every token of the authenticated client |
//! | `POST tyk/oauth/authorize-client` | the identity server mints a code (admin secret) |

mod authorize;
mod client_auth;
mod clients;
pub mod credentials;
mod endpoint;
mod error;
mod grants;
mod issue;
mod redirect_uri;
mod revoke;
mod scope;

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

pub use authorize::{authorize_client, AuthorizeClientError};
pub use clients::ClientCache;
pub use endpoint::Endpoint;
pub use error::{ErrorCode, OAuthError};
pub use redirect_uri::check_redirect_uri;

use crate::cluster::{Cluster, Event};
use crate::http::BodyLimit;
use crate::metrics::Metrics;
use crate::session::SessionCache;
use crate::storage::Store;
use crate::webhooks::Notifier;

/// OAuth behaviour that operators configure.
#[derive(Clone, Debug)]
pub struct Settings {
    pub token_ttl: Duration,
    pub refresh_ttl: Duration,
    pub code_ttl: Duration,
    /// `oauth_error_status_code`: one status for every OAuth error.
    pub error_status: Option<StatusCode>,
    /// Accept Basic plus identical body credentials, as Tyk's documented
    /// examples send them.
    pub accept_duplicate_client_auth: bool,
    /// Splits a `redirect_uri` string into several registered URIs.
    pub redirect_uri_separator: String,
    /// Largest request body the endpoints read, and how long they wait.
    pub body_limit: BodyLimit,
}

/// What the OAuth endpoints need: storage, settings, the session cache and
/// the cluster to tell of revocations, and the token notification queue.
pub struct OAuthServer {
    pub store: Store,
    pub settings: Settings,
    pub sessions: Arc<SessionCache>,
    pub clients: ClientCache,
    pub cluster: Cluster,
    pub notifier: Notifier,
    pub metrics: Arc<Metrics>,
}

// === impl OAuthServer ===

impl OAuthServer {
    /// Drops revoked tokens from this node's cache and every other node's.
    pub fn forget_tokens(&self, hashes: Vec<String>) {
        self.uncache(&hashes);
        self.cluster.publish(&Event::TokensRevoked { hashes });
    }

    /// Drops the cached sessions of a revoked grant, on every node.
    pub fn forget_grant(&self, grant_id: &str, hashes: Vec<String>) {
        self.uncache(&hashes);
        self.cluster.publish(&Event::GrantRevoked {
            grant_id: grant_id.to_string(),
            hashes,
        });
    }

    /// Drops a removed client and every cached session of it, on every
    /// node.
    pub fn forget_client(&self, api_id: &str, client_id: &str) {
        self.sessions.remove_client(api_id, client_id);
        self.clients.remove(api_id, client_id);
        self.cluster.publish(&Event::ClientRevoked {
            api_id: api_id.to_string(),
            client_id: client_id.to_string(),
        });
    }

    /// Drops a changed client (a new secret, say) from every node's cache;
    /// its tokens stay valid.
    pub fn forget_client_app(&self, api_id: &str, client_id: &str) {
        self.clients.remove(api_id, client_id);
        self.cluster.publish(&Event::ClientChanged {
            api_id: api_id.to_string(),
            client_id: client_id.to_string(),
        });
    }

    fn uncache(&self, hashes: &[String]) {
        for hash in hashes {
            self.sessions.remove(hash);
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            token_ttl: Duration::from_secs(3600),
            refresh_ttl: Duration::from_secs(14 * 24 * 3600),
            code_ttl: Duration::from_secs(60),
            error_status: None,
            accept_duplicate_client_auth: false,
            redirect_uri_separator: ";".into(),
            body_limit: BodyLimit {
                max_bytes: 64 * 1024,
                timeout: Duration::from_secs(30),
            },
        }
    }
}

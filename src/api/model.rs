//! The normalised API definition that the rest of tollgate works with.
//!
//! Tyk Classic and Tyk OAS documents are both parsed into [`ApiDefinition`];
//! nothing outside `api` looks at the submitted JSON or YAML again.

use std::collections::BTreeSet;

use super::versioning::Versioning;

/// One API served by the gateway.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiDefinition {
    pub id: String,
    pub name: String,
    pub org_id: String,
    /// An inactive API is loaded but not served.
    pub active: bool,
    /// Served only as a version of a base API, never on its own listen
    /// path (Tyk's internal APIs).
    pub internal: bool,
    /// Always starts with `/`; a trailing `/` is kept as submitted.
    pub listen_path: String,
    /// Optional `Host` that must match as well as the listen path.
    pub domain: Option<String>,
    /// Absolute `http://` URL of the upstream, without a trailing `/`.
    pub target_url: String,
    pub strip_listen_path: bool,
    pub auth: AuthMode,
    /// Where the credential is read from on protected requests.
    pub credential: CredentialSource,
    /// Remove the credential from the request before forwarding it.
    pub strip_auth_data: bool,
    /// Tyk's API tags (Classic `tags`, OAS `server.gatewayTags.tags`),
    /// carried into analytics records.
    pub tags: Vec<String>,
    /// `None` for an unversioned API.
    pub versioning: Option<Versioning>,
}

/// How requests to the API are authenticated.
#[derive(Clone, Debug, PartialEq)]
pub enum AuthMode {
    /// No credential needed.
    Keyless,
    /// tollgate is the OAuth 2.0 authorization server for this API.
    OAuth(OAuthSettings),
    /// Tyk's "Auth Token" method: any session whose policies grant the API.
    AuthToken,
}

/// The OAuth settings of one API.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OAuthSettings {
    /// Grant types the token endpoint accepts for this API.
    pub grant_types: BTreeSet<GrantType>,
    /// `response_type` values accepted by authorize (`code`, `token`).
    pub authorize_types: BTreeSet<ResponseType>,
    /// Login page of the identity server that authorize redirects to.
    pub auth_login_redirect: Option<String>,
    /// Token notification webhook, when configured.
    pub notifications: Option<Notifications>,
}

/// OAuth 2.0 grant types (RFC 6749 section 4 and 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GrantType {
    AuthorizationCode,
    ClientCredentials,
    Password,
    RefreshToken,
}

/// Authorization endpoint response types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResponseType {
    Code,
    Token,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Notifications {
    pub url: String,
    pub shared_secret: String,
}

/// Header, query parameter and cookie names that may carry the credential.
/// The header is read first; a non-empty query parameter overrides it, and
/// a non-empty cookie overrides both, as in Tyk.
#[derive(Clone, Debug, PartialEq)]
pub struct CredentialSource {
    pub header: Option<String>,
    pub query: Option<String>,
    pub cookie: Option<String>,
}

// === impl GrantType ===

impl GrantType {
    /// Parses the wire name used in `grant_type` and in API definitions.
    pub fn from_wire(name: &str) -> Option<Self> {
        match name {
            "authorization_code" => Some(Self::AuthorizationCode),
            "client_credentials" => Some(Self::ClientCredentials),
            "password" => Some(Self::Password),
            "refresh_token" => Some(Self::RefreshToken),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::ClientCredentials => "client_credentials",
            Self::Password => "password",
            Self::RefreshToken => "refresh_token",
        }
    }
}

// === impl ResponseType ===

impl ResponseType {
    pub fn from_wire(name: &str) -> Option<Self> {
        match name {
            "code" => Some(Self::Code),
            "token" => Some(Self::Token),
            _ => None,
        }
    }
}

// === impl ApiDefinition ===

impl ApiDefinition {
    pub fn oauth(&self) -> Option<&OAuthSettings> {
        match &self.auth {
            AuthMode::OAuth(settings) => Some(settings),
            _ => None,
        }
    }

    pub fn is_oauth(&self) -> bool {
        self.oauth().is_some()
    }

    /// Whether requests reach the API through its own listen path: it is
    /// active and not internal.
    pub fn is_routed(&self) -> bool {
        self.active && !self.internal
    }
}

// === impl OAuthSettings ===

impl OAuthSettings {
    pub fn allows(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    /// Whether the code and password grants also issue a refresh token.
    pub fn issues_refresh_tokens(&self) -> bool {
        self.allows(GrantType::RefreshToken)
    }
}

// === impl CredentialSource ===

impl Default for CredentialSource {
    fn default() -> Self {
        Self {
            header: Some("Authorization".to_string()),
            query: None,
            cookie: None,
        }
    }
}

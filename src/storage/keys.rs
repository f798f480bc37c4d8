//! Every Redis key format, in one place.
//!
//! All keys share the configured prefix. Keys that name a credential use its
//! hash, so a copy of the data gives nobody a usable token.

#[derive(Clone, Debug)]
pub(crate) struct Keys {
    prefix: String,
}

// === impl Keys ===

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_string(),
        }
    }

    pub(crate) fn api(&self, api_id: &str) -> String {
        format!("{}api:{api_id}", self.prefix)
    }

    pub(crate) fn api_set(&self) -> String {
        format!("{}apis", self.prefix)
    }

    pub(crate) fn policy(&self, policy_id: &str) -> String {
        format!("{}policy:{policy_id}", self.prefix)
    }

    pub(crate) fn policy_set(&self) -> String {
        format!("{}policies", self.prefix)
    }

    pub(crate) fn client(&self, api_id: &str, client_id: &str) -> String {
        format!("{}client:{api_id}:{client_id}", self.prefix)
    }

    pub(crate) fn client_set(&self, api_id: &str) -> String {
        format!("{}clients:{api_id}", self.prefix)
    }

    pub(crate) fn code(&self, hash: &str) -> String {
        format!("{}code:{hash}", self.prefix)
    }

    pub(crate) fn access(&self, hash: &str) -> String {
        format!("{}access:{hash}", self.prefix)
    }

    pub(crate) fn refresh(&self, hash: &str) -> String {
        format!("{}refresh:{hash}", self.prefix)
    }

    pub(crate) fn grant(&self, grant_id: &str) -> String {
        format!("{}grant:{grant_id}", self.prefix)
    }

    /// Sorted set of a client's access token hashes, scored by expiry.
    pub(crate) fn client_tokens(&self, api_id: &str, client_id: &str) -> String {
        format!("{}client-tokens:{api_id}:{client_id}", self.prefix)
    }

    /// Sorted set of a client's grant ids, scored by refresh expiry.
    pub(crate) fn client_grants(&self, api_id: &str, client_id: &str) -> String {
        format!("{}client-grants:{api_id}:{client_id}", self.prefix)
    }

    /// The cluster change counter, bumped by every published event.
    pub(crate) fn change_counter(&self) -> String {
        format!("{}changes", self.prefix)
    }

    /// Rate limit and quota counters of one scope.
    pub(crate) fn limits(&self, scope: &str) -> String {
        format!("{}limits:{scope}", self.prefix)
    }

    /// The organisations that have a user of this name.
    pub(crate) fn user_orgs(&self, username: &str) -> String {
        format!("{}user-orgs:{username}", self.prefix)
    }

    /// The claim on a route: a listen path, after its domain if any.
    pub(crate) fn route(&self, route: &str) -> String {
        format!("{}route:{route}", self.prefix)
    }

    pub(crate) fn user(&self, org_id: &str, username: &str) -> String {
        format!("{}user:{org_id}:{username}", self.prefix)
    }
}

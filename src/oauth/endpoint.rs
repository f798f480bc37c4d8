//! Which OAuth endpoint a path under a listen path names.

/// An endpoint of the authorization server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Authorize,
    Token,
    Revoke,
    RevokeAll,
    AuthorizeClient,
}

// === impl Endpoint ===

impl Endpoint {
    /// Recognises `rest`, the path after the listen path. A trailing `/`
    /// is accepted.
    pub fn from_rest(rest: &str) -> Option<Self> {
        let rest = rest.trim_start_matches('/');
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        match rest {
            "oauth/authorize" => Some(Self::Authorize),
            "oauth/token" => Some(Self::Token),
            "oauth/revoke" => Some(Self::Revoke),
            "oauth/revoke_all" => Some(Self::RevokeAll),
            "tyk/oauth/authorize-client" => Some(Self::AuthorizeClient),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_slash_is_accepted() {
        assert_eq!(Endpoint::from_rest("/oauth/token/"), Some(Endpoint::Token));
        assert_eq!(Endpoint::from_rest("/oauth/token"), Some(Endpoint::Token));
        assert_eq!(Endpoint::from_rest("/oauth/tokens"), None);
        assert_eq!(Endpoint::from_rest("/x/oauth/token"), None);
    }
}

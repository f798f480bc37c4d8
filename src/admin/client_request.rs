//! The client object of a create or update call, as Tyk's API takes it,
//! and the checks on what it asks to store.

use serde::Deserialize;
use serde_json::Value;

use super::respond::AdminError;
use crate::oauth::{check_redirect_uri, credentials};
use crate::policy::valid_id;

/// The client object as Tyk's API accepts it.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ClientRequest {
    client_id: Option<String>,
    secret: Option<String>,
    redirect_uri: Option<String>,
    redirect_uris: Option<Vec<String>>,
    pub api_id: Option<String>,
    pub policy_id: Option<String>,
    pub meta_data: Option<serde_json::Map<String, Value>>,
    pub description: Option<String>,
}

// === impl ClientRequest ===

impl ClientRequest {
    /// The id of a new client: the one given, or a generated one.
    pub fn new_client_id(&self) -> Result<String, AdminError> {
        let Some(client_id) = &self.client_id else {
            return Ok(credentials::random_id());
        };
        if !valid_id(client_id) {
            return Err(AdminError::bad_request(
                "client_id: use letters, digits, '.', '_' or '-'",
            ));
        }
        Ok(client_id.clone())
    }

    /// The secret of a new client: the one given, or a generated one. An
    /// empty secret is refused: HTTP Basic could present it, the body
    /// could not, and it protects nothing.
    pub fn new_secret(&self) -> Result<String, AdminError> {
        match self.secret.as_deref() {
            None => Ok(credentials::random_token()),
            Some("") => Err(AdminError::bad_request(
                "secret must not be empty; leave it out to have one generated",
            )),
            Some(secret) => Ok(secret.to_string()),
        }
    }

    /// The redirect URIs to register; `None` when the request names none.
    /// `redirect_uri` is split on `separator` (none when empty). Both
    /// fields at once are refused rather than one of them dropped, and
    /// every URI must be one a client may register.
    pub fn redirect_uris(&self, separator: &str) -> Result<Option<Vec<String>>, AdminError> {
        let uris = match (&self.redirect_uri, &self.redirect_uris) {
            (None, None) => return Ok(None),
            (Some(_), Some(_)) => {
                return Err(AdminError::bad_request(
                    "give redirect_uri or redirect_uris, not both",
                ))
            }
            (None, Some(list)) => list.clone(),
            (Some(joined), None) => split(joined, separator)?,
        };
        for uri in &uris {
            check_redirect_uri(uri)
                .map_err(|reason| AdminError::bad_request(format!("redirect_uri: {reason}")))?;
        }
        Ok(Some(uris))
    }
}

fn split(joined: &str, separator: &str) -> Result<Vec<String>, AdminError> {
    let uris: Vec<String> = if separator.is_empty() {
        vec![joined.trim().to_string()]
    } else {
        joined
            .split(separator)
            .map(|u| u.trim().to_string())
            .collect()
    };
    let uris: Vec<String> = uris.into_iter().filter(|u| !u.is_empty()).collect();
    if uris.is_empty() {
        return Err(AdminError::bad_request(
            "redirect_uri is empty; leave it out, or send \"redirect_uris\": [] for none",
        ));
    }
    Ok(uris)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: serde_json::Value) -> ClientRequest {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn redirect_uri_is_split_and_checked() {
        let joined = request(serde_json::json!({"redirect_uri": "http://a/1; http://b/2"}));
        let uris = joined.redirect_uris(";").unwrap().unwrap();
        assert_eq!(uris, ["http://a/1", "http://b/2"]);
        assert_eq!(
            request(serde_json::json!({})).redirect_uris(";").unwrap(),
            None
        );
        for bad in [
            serde_json::json!({"redirect_uri": ""}),
            serde_json::json!({"redirect_uri": " ; "}),
            serde_json::json!({"redirect_uri": "http://a/1;javascript:alert(1)"}),
            serde_json::json!({"redirect_uris": ["http://a/cb#x"]}),
            serde_json::json!({"redirect_uri": "http://a/1", "redirect_uris": ["http://a/1"]}),
        ] {
            assert!(request(bad.clone()).redirect_uris(";").is_err(), "{bad}");
        }
    }

    #[test]
    fn an_empty_secret_is_refused_and_none_is_generated() {
        assert!(request(serde_json::json!({"secret": ""}))
            .new_secret()
            .is_err());
        let generated = request(serde_json::json!({})).new_secret().unwrap();
        assert!(!generated.is_empty());
    }
}

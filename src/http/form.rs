//! Request parameters from `application/x-www-form-urlencoded` bodies, query
//! strings and flat JSON objects.
//!
//! RFC 6749 section 3.1 says a parameter must not appear more than once, so
//! a repeated name is an error rather than "first one wins".

use std::collections::HashMap;

/// Decoded parameters; each name appears once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params {
    values: HashMap<String, String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParamsError {
    #[error("parameter {0} is repeated")]
    Repeated(String),
    #[error("body is not a JSON object of string values")]
    BadJson,
    #[error("malformed percent-encoding")]
    BadEscape,
}

/// Decodes a form (or query string). Empty values count as absent. A `%`
/// not followed by two hex digits is an error, not a literal `%`.
pub fn parse_params(encoded: &[u8]) -> Result<Params, ParamsError> {
    if !escapes_are_valid(encoded) {
        return Err(ParamsError::BadEscape);
    }
    let mut params = Params::default();
    for (name, value) in form_urlencoded::parse(encoded) {
        params.insert(name.into_owned(), value.into_owned())?;
    }
    Ok(params)
}

// === impl Params ===

impl Params {
    /// Decodes a flat JSON object whose values are all strings. A name
    /// given twice is an error here too, not "last one wins".
    pub fn from_json(body: &[u8]) -> Result<Self, ParamsError> {
        let Members(members) = serde_json::from_slice(body).map_err(|_| ParamsError::BadJson)?;
        let mut params = Self::default();
        for (name, value) in members {
            let serde_json::Value::String(value) = value else {
                return Err(ParamsError::BadJson);
            };
            params.insert(name, value)?;
        }
        Ok(params)
    }

    /// Adds every parameter of `other`; a name in both is an error.
    pub fn merge(&mut self, other: Params) -> Result<(), ParamsError> {
        for (name, value) in other.values {
            self.insert(name, value)?;
        }
        Ok(())
    }

    /// The value of a parameter, `None` when absent or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    fn insert(&mut self, name: String, value: String) -> Result<(), ParamsError> {
        if self.values.contains_key(&name) {
            return Err(ParamsError::Repeated(name));
        }
        self.values.insert(name, value);
        Ok(())
    }
}

/// The members of a JSON object in order, repeated names included.
struct Members(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MembersVisitor)
    }
}

struct MembersVisitor;

impl<'de> serde::de::Visitor<'de> for MembersVisitor {
    type Value = Members;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
        let mut members = Vec::new();
        while let Some(member) = map.next_entry()? {
            members.push(member);
        }
        Ok(Members(members))
    }
}

fn escapes_are_valid(encoded: &[u8]) -> bool {
    encoded.iter().enumerate().all(|(i, byte)| {
        *byte != b'%'
            || encoded
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_are_decoded() {
        let params = parse_params(b"a=1&redirect_uri=http%3A%2F%2Fx%2Fcb&b=").unwrap();
        assert_eq!(params.get("a"), Some("1"));
        assert_eq!(params.get("redirect_uri"), Some("http://x/cb"));
        assert_eq!(params.get("b"), None);
    }

    #[test]
    fn bad_escapes_are_an_error() {
        assert_eq!(parse_params(b"a=%zz").unwrap_err(), ParamsError::BadEscape);
        assert_eq!(parse_params(b"a=1%").unwrap_err(), ParamsError::BadEscape);
        assert_eq!(parse_params(b"a=%2").unwrap_err(), ParamsError::BadEscape);
        assert_eq!(parse_params(b"a=%2F").unwrap().get("a"), Some("/"));
    }

    #[test]
    fn repeated_parameter_is_an_error() {
        let error = parse_params(b"code=1&code=2").unwrap_err();
        assert_eq!(error, ParamsError::Repeated("code".into()));
    }

    #[test]
    fn repeated_json_member_is_an_error() {
        let body = br#"{"grant_type": "client_credentials", "grant_type": "password"}"#;
        let error = Params::from_json(body).unwrap_err();
        assert_eq!(error, ParamsError::Repeated("grant_type".into()));
    }

    #[test]
    fn json_needs_string_values() {
        let params = Params::from_json(br#"{"grant_type":"password"}"#).unwrap();
        assert_eq!(params.get("grant_type"), Some("password"));
        assert_eq!(
            Params::from_json(br#"{"n":1}"#).unwrap_err(),
            ParamsError::BadJson
        );
    }
}

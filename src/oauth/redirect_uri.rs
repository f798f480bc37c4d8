//! Which redirect URIs a client may register: absolute, without a fragment
//! (RFC 6749 section 3.1.2), and with a scheme a browser hands to an app,
//! never one it runs itself (`javascript:`, `data:`, `vbscript:`, `file:`).

/// Why `uri` may not be a client's redirect URI; `Ok` when it may.
///
/// Allowed: `http` and `https` with a host, and the private-use schemes of
/// native apps, which RFC 8252 section 7.1 names after a domain the app
/// owns (`com.example.app:/cb`), so they always hold a `.`.
pub fn check_redirect_uri(uri: &str) -> Result<(), String> {
    if uri.is_empty() {
        return Err("redirect URI is empty".into());
    }
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{uri:?} holds whitespace or control characters"));
    }
    if uri.contains('#') {
        return Err(format!(
            "{uri:?} has a fragment, which RFC 6749 section 3.1.2 forbids"
        ));
    }
    let Some((scheme, rest)) = uri.split_once(':').filter(|(s, _)| is_scheme(s)) else {
        return Err(format!("{uri:?} is not an absolute URI"));
    };
    match scheme.to_ascii_lowercase().as_str() {
        "http" | "https" => check_authority(uri, rest),
        private if private.contains('.') && !rest.is_empty() => Ok(()),
        _ => Err(format!(
            "{uri:?}: scheme {scheme} is not allowed; use http, https or a \
             private-use scheme such as com.example.app (RFC 8252 section 7.1)"
        )),
    }
}

/// RFC 3986 section 3.1: a letter, then letters, digits, `+`, `-`, `.`.
fn is_scheme(scheme: &str) -> bool {
    let mut bytes = scheme.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
}

/// An `http(s)` URI needs a host; user information in it would only serve
/// to make one host look like another.
fn check_authority(uri: &str, rest: &str) -> Result<(), String> {
    let Some(after) = rest.strip_prefix("//") else {
        return Err(format!("{uri:?} has no host"));
    };
    let authority = after.split(['/', '?']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(format!("{uri:?} carries user information"));
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    if host.is_empty() {
        return Err(format!("{uri:?} has no host"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn web_and_native_app_uris_are_allowed() {
        for uri in [
            "http://client.oauth.com",
            "https://app.example/cb?x=1",
            "http://127.0.0.1:8080/cb",
            "http://[::1]:8080/cb",
            "com.example.app:/oauth2redirect",
            "com.example.app://cb",
        ] {
            assert!(check_redirect_uri(uri).is_ok(), "{uri}");
        }
    }

    #[test]
    fn scripts_relative_and_fragment_uris_are_refused() {
        for uri in [
            "",
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "data:text/html,x",
            "vbscript:msgbox",
            "file:///etc/passwd",
            "not a url",
            "/relative/cb",
            "http://a/cb#frag",
            "http:/no-host",
            "https://",
            "http://user@evil.example/cb",
            "http://:80/cb",
            "com.example.app:",
            "1http://a/cb",
        ] {
            assert!(check_redirect_uri(uri).is_err(), "{uri:?}");
        }
    }
}

//! Which methods each control-plane route takes, in one table: a route
//! exists or not (404), and a known route answers another method with 405
//! and `Allow` (RFC 9110 section 15.5.6).

use http::Method;

const GET: &[Method] = &[Method::GET];
const GET_HEAD: &[Method] = &[Method::GET, Method::HEAD];
const POST: &[Method] = &[Method::POST];
const PUT: &[Method] = &[Method::PUT];
const DELETE: &[Method] = &[Method::DELETE];
const GET_POST: &[Method] = &[Method::GET, Method::POST];
const ONE_DOCUMENT: &[Method] = &[Method::GET, Method::PUT, Method::DELETE];
const KEY: &[Method] = &[Method::GET, Method::POST, Method::PUT, Method::DELETE];

/// The methods `segments` (the decoded path) takes; `None` for no route.
pub(super) fn allowed(segments: &[&str]) -> Option<&'static [Method]> {
    match segments {
        ["hello"] | ["live"] | ["metrics"] => Some(GET_HEAD),
        ["tyk", "apis" | "policies"] => Some(GET_POST),
        ["tyk", "apis" | "policies", _] => Some(ONE_DOCUMENT),
        ["tyk", "keys"] => Some(POST),
        ["tyk", "keys", _] => Some(KEY),
        ["tyk", "reload"] | ["tyk", "reload", "group"] => Some(GET),
        ["tyk", "oauth", rest @ ..] => gateway_oauth(rest),
        ["api", "apis", "oauth", rest @ ..] => dashboard_oauth(rest),
        ["api", "apis", _, "authorize-client"] => Some(POST),
        _ => None,
    }
}

fn gateway_oauth(rest: &[&str]) -> Option<&'static [Method]> {
    match rest {
        // GET lists the clients of an API whose id is "create".
        ["clients", "create"] => Some(GET_POST),
        ["clients", _] => Some(GET),
        ["clients", _, _] => Some(ONE_DOCUMENT),
        ["clients", _, _, "tokens"] => Some(GET),
        ["clients", _, _, "rotate"] => Some(PUT),
        ["authorize-client" | "revoke" | "revoke_all"] => Some(POST),
        ["refresh", _] | ["tokens"] => Some(DELETE),
        _ => None,
    }
}

fn dashboard_oauth(rest: &[&str]) -> Option<&'static [Method]> {
    const CLIENT_OR_ACTION: &[Method] = &[Method::GET, Method::PUT, Method::DELETE, Method::POST];
    match rest {
        [_] => Some(GET_POST),
        // POST mints or revokes; the others read, change or delete a
        // client whose id is the action's name.
        [_, "authorize-client" | "revoke" | "revoke_all"] => Some(CLIENT_OR_ACTION),
        [_, _] => Some(ONE_DOCUMENT),
        [_, _, "tokens"] => Some(GET),
        [_, _, "rotate"] => Some(PUT),
        _ => None,
    }
}

/// The `Allow` header value.
pub(super) fn allow_header(methods: &[Method]) -> String {
    let names: Vec<&str> = methods.iter().map(Method::as_str).collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_routes_list_their_methods() {
        assert_eq!(allowed(&["tyk", "apis", "x"]), Some(ONE_DOCUMENT));
        assert_eq!(allowed(&["hello"]), Some(GET_HEAD));
        assert_eq!(
            allowed(&["tyk", "oauth", "clients", "a", "c", "tokens"]),
            Some(GET)
        );
        assert_eq!(allowed(&["tyk", "apis", "x", "y"]), None);
        assert_eq!(allow_header(ONE_DOCUMENT), "GET, PUT, DELETE");
    }
}

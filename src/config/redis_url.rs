//! Checks a Redis URL (`redis[s]://[user[:password]@]host[:port][/db][?query]`)
//! before fred sees it, so a mistake is reported with a reason and the key.
//! `redis[s]-cluster://` names one node of a Redis Cluster (more with
//! `?node=host:port`), `redis[s]-sentinel://` a Sentinel (with
//! `?sentinelServiceName=`).
//!
//! Reasons never quote the URL, since it may hold a password.

/// Standalone (plain and TLS), Redis Cluster and Sentinel.
const SCHEMES: &[&str] = &[
    "redis",
    "rediss",
    "redis-cluster",
    "rediss-cluster",
    "redis-sentinel",
    "rediss-sentinel",
];

/// A URL split into its parts; every part borrows from the input.
#[derive(Debug)]
pub(super) struct RedisUrl<'a> {
    scheme: &'a str,
    user: Option<&'a str>,
    password: Option<&'a str>,
    host_port: &'a str,
    /// `/db`, if any; the query is kept separately.
    path: &'a str,
    /// Includes the `?`; may carry Sentinel credentials.
    query: &'a str,
}

// === impl RedisUrl ===

impl<'a> RedisUrl<'a> {
    pub(super) fn parse(url: &'a str) -> Result<Self, String> {
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("must not contain whitespace".to_owned());
        }
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err("expected redis://host:port or rediss://host:port".to_owned());
        };
        let known = SCHEMES
            .iter()
            .any(|known| scheme.eq_ignore_ascii_case(known));
        if !known {
            return Err("scheme must be redis://, rediss://, redis[s]-cluster:// \
                 or redis[s]-sentinel://"
                .to_owned());
        }
        let sentinel = scheme.to_ascii_lowercase().ends_with("-sentinel");
        if sentinel && !rest.contains("sentinelServiceName=") {
            return Err("a sentinel URL needs ?sentinelServiceName=".to_owned());
        }
        if rest.contains('#') {
            return Err("must not have a fragment (#)".to_owned());
        }

        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let (path, query) = tail.split_at(tail.find('?').unwrap_or(tail.len()));
        let (user, password, host_port) = split_authority(authority);
        check_host_port(host_port)?;
        check_database(path)?;
        Ok(Self {
            scheme,
            user,
            password,
            host_port,
            path,
            query,
        })
    }

    /// The URL with `password` in it, percent-encoded.
    pub(super) fn with_password(&self, password: &str) -> Result<String, String> {
        if self.password.is_some() {
            return Err("redis.url already contains a password".to_owned());
        }
        let user = self.user.unwrap_or("");
        let password = percent_encode(password);
        Ok(format!(
            "{}://{user}:{password}@{}{}{}",
            self.scheme, self.host_port, self.path, self.query
        ))
    }

    /// The URL for logs: password replaced, query left out.
    pub(super) fn redacted(&self) -> String {
        let userinfo = match (self.user, self.password) {
            (user, Some(_)) => format!("{}:[redacted]@", user.unwrap_or("")),
            (Some(user), None) => format!("{user}@"),
            (None, None) => String::new(),
        };
        format!(
            "{}://{userinfo}{}{}",
            self.scheme, self.host_port, self.path
        )
    }
}

/// Splits `[user[:password]@]host[:port]`. The last `@` ends the userinfo,
/// so an unencoded `@` in a password still parses.
fn split_authority(authority: &str) -> (Option<&str>, Option<&str>, &str) {
    let Some((userinfo, host_port)) = authority.rsplit_once('@') else {
        return (None, None, authority);
    };
    match userinfo.split_once(':') {
        Some((user, password)) => (
            Some(user).filter(|u| !u.is_empty()),
            Some(password),
            host_port,
        ),
        None => (Some(userinfo).filter(|u| !u.is_empty()), None, host_port),
    }
}

fn check_host_port(host_port: &str) -> Result<(), String> {
    let (host, port) = match host_port.strip_prefix('[') {
        // An IPv6 literal: `[::1]:6379`.
        Some(v6) => {
            let (host, after) = v6.split_once(']').ok_or("unclosed [ in host")?;
            if !after.is_empty() && !after.starts_with(':') {
                return Err("unexpected text after ]".to_owned());
            }
            (host, after.strip_prefix(':'))
        }
        None if host_port.matches(':').count() > 1 || host_port.contains(']') => {
            return Err("put an IPv6 host in brackets: [::1]:6379".to_owned());
        }
        None => match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        },
    };
    if host.is_empty() {
        return Err("missing host".to_owned());
    }
    match port.map(str::parse::<u16>) {
        Some(Ok(0) | Err(_)) => Err("port must be 1..=65535".to_owned()),
        _ => Ok(()),
    }
}

fn check_database(path: &str) -> Result<(), String> {
    let db = path.trim_start_matches('/');
    if db.is_empty() || db.parse::<u32>().is_ok() {
        return Ok(());
    }
    Err("database after / must be a number".to_owned())
}

/// Encodes all but RFC 3986 unreserved characters, so any password is safe
/// in the userinfo.
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_common_forms() {
        for url in [
            "redis://127.0.0.1:6379",
            "redis://localhost",
            "rediss://user:pw@redis.example.com:6380/2",
            "redis://:pw@host:6379/0?protocol=resp3",
            "redis://[::1]:6379",
            "REDIS://host",
        ] {
            assert!(RedisUrl::parse(url).is_ok(), "{url}");
        }
    }

    #[test]
    fn rejects_with_a_reason() {
        for (url, reason) in [
            ("127.0.0.1:6379", "expected redis://"),
            ("http://host:6379", "scheme must be"),
            ("redis://", "missing host"),
            ("redis://:pw@:6379", "missing host"),
            ("redis://host:port", "port must be"),
            ("redis://host:0", "port must be"),
            ("redis://host:70000", "port must be"),
            ("redis://host/zero", "database"),
            ("redis://host #x", "whitespace"),
            ("redis://host#x", "fragment"),
            ("redis://[::1", "unclosed"),
            ("redis://::1:6379", "brackets"),
        ] {
            let err = RedisUrl::parse(url).unwrap_err();
            assert!(err.contains(reason), "{url}: {err}");
        }
    }

    #[test]
    fn reasons_never_quote_the_password() {
        let err = RedisUrl::parse("redis://:hunter2@host:bad").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn with_password_encodes_and_keeps_the_rest() {
        let url = RedisUrl::parse("rediss://app@host:6380/1?x=y").unwrap();
        let with = url.with_password("p@ss:w/rd").unwrap();
        assert_eq!(with, "rediss://app:p%40ss%3Aw%2Frd@host:6380/1?x=y");
        assert!(RedisUrl::parse(&with).is_ok());
    }

    #[test]
    fn with_password_refuses_a_second_password() {
        let url = RedisUrl::parse("redis://:one@host").unwrap();
        assert!(url.with_password("two").is_err());
    }

    #[test]
    fn redacted_hides_password_and_query() {
        let url = RedisUrl::parse("redis://u:hunter2@h:1/3?sentinelPassword=s").unwrap();
        assert_eq!(url.redacted(), "redis://u:[redacted]@h:1/3");
        let url = RedisUrl::parse("redis://h:1").unwrap();
        assert_eq!(url.redacted(), "redis://h:1");
    }
}

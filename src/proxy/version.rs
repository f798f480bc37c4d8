//! Which version a request asks for and which API serves it, before any
//! credential is looked at, as Tyk's version check runs: an unknown or
//! expired version is refused whoever asks.
//!
//! An unversioned API costs one `Option` test here.

use std::borrow::Cow;
use std::sync::Arc;

use http::Request;

use super::auth::{set_path_and_query, strip_query_param};
use super::ProxyError;
use crate::api::{
    rest_of, ApiDefinition, LoadedApi, Version, VersionLocation, VersionMode, Versioning,
};
use crate::app::Gateway;
use crate::session::now_ms;

/// A version this API serves itself, and that access rights must list.
pub(super) type Listed<'a> = (&'a str, &'a Version);

/// For a base API: the API serving the version the request asks for, or
/// `None` when the base serves it itself. The version is stripped from the
/// request first when the base says so, as Tyk does before handing over.
pub(super) fn child_api<B>(
    gateway: &Gateway,
    base: &ApiDefinition,
    matched: usize,
    request: &mut Request<B>,
) -> Result<Option<Arc<LoadedApi>>, ProxyError> {
    let Some(versioning) = base.versioning.as_ref() else {
        return Ok(None);
    };
    if versioning.mode != VersionMode::Children {
        return Ok(None);
    }
    let (_, version) = choose(versioning, request, matched)?;
    strip(versioning, matched, request);
    let Some(api_id) = version.api_id.as_deref() else {
        return Ok(None);
    };
    let snapshot = gateway.registry.snapshot();
    let child = snapshot.get(api_id).filter(|api| api.definition.active);
    child.cloned().map(Some).ok_or(ProxyError::NoVersionApi)
}

/// For an API that lists its versions: the one the request asks for,
/// stripped from the request when the API says so.
pub(super) fn listed<'a, B>(
    api: &'a ApiDefinition,
    matched: usize,
    request: &mut Request<B>,
) -> Result<Option<Listed<'a>>, ProxyError> {
    let Some(versioning) = api.versioning.as_ref() else {
        return Ok(None);
    };
    if versioning.mode != VersionMode::Listed {
        return Ok(None);
    }
    let chosen = choose(versioning, request, matched)?;
    strip(versioning, matched, request);
    Ok(Some(chosen))
}

/// The version named in the request, else the default; an unknown name
/// falls back to the default when the API allows it.
fn choose<'a, B>(
    versioning: &'a Versioning,
    request: &Request<B>,
    matched: usize,
) -> Result<(&'a str, &'a Version), ProxyError> {
    let requested = requested(versioning, request, matched);
    let name = requested
        .as_deref()
        .or(versioning.default.as_deref())
        .ok_or(ProxyError::VersionMissing)?;
    let default = || {
        let name = versioning.default.as_deref()?;
        versioning.versions.get_key_value(name)
    };
    let found = versioning.versions.get_key_value(name);
    let fallback = versioning.fallback_to_default.then(default).flatten();
    let (name, version) = found.or(fallback).ok_or_else(|| unknown(versioning))?;
    if version
        .expires
        .as_ref()
        .is_some_and(|e| e.has_passed(now_ms()))
    {
        return Err(ProxyError::VersionExpired);
    }
    Ok((name.as_str(), version))
}

fn unknown(versioning: &Versioning) -> ProxyError {
    match versioning.mode {
        VersionMode::Listed => ProxyError::UnknownVersion,
        VersionMode::Children => ProxyError::NoVersionApi,
    }
}

/// The version as the request names it; an empty value names none.
fn requested<'r, B>(
    versioning: &Versioning,
    request: &'r Request<B>,
    matched: usize,
) -> Option<Cow<'r, str>> {
    let named = match &versioning.location {
        VersionLocation::Header(name) => {
            let value = request.headers().get(name)?.to_str().ok()?;
            Cow::Borrowed(value)
        }
        VersionLocation::Query(key) => form_urlencoded::parse(request.uri().query()?.as_bytes())
            .find(|(name, _)| name == key)
            .map(|(_, value)| value)?,
        VersionLocation::Url => Cow::Borrowed(url_segment(request.uri().path(), matched)?.1),
    };
    Some(named).filter(|name| !name.is_empty())
}

/// The first non-empty segment after the listen path, with where it
/// starts in `path`.
fn url_segment(path: &str, matched: usize) -> Option<(usize, &str)> {
    let rest = rest_of(path, matched);
    let trimmed = rest.trim_start_matches('/');
    let segment = trimmed.split('/').next().filter(|s| !s.is_empty())?;
    let start = path.len() - trimmed.len();
    Some((start, segment))
}

fn strip<B>(versioning: &Versioning, matched: usize, request: &mut Request<B>) {
    if !versioning.strip {
        return;
    }
    match &versioning.location {
        VersionLocation::Header(name) => {
            request.headers_mut().remove(name);
        }
        VersionLocation::Query(key) => strip_query_param(request, key),
        VersionLocation::Url => strip_url_segment(versioning, matched, request),
    }
}

/// Removes the version segment and the `/` before it: `/api/v1/users`
/// goes on as `/api/users`.
fn strip_url_segment<B>(versioning: &Versioning, matched: usize, request: &mut Request<B>) {
    let uri = request.uri();
    let Some((start, segment)) = url_segment(uri.path(), matched) else {
        return;
    };
    if let Some(pattern) = &versioning.url_pattern {
        if !pattern.is_match(segment) {
            return;
        }
    }
    let path = uri.path();
    let mut kept = [&path[..matched], &path[start + segment.len()..]].concat();
    if kept.is_empty() {
        kept.push('/');
    }
    if let Some(query) = uri.query() {
        kept.push('?');
        kept.push_str(query);
    }
    set_path_and_query(request, &kept);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_segment_after_the_listen_path_is_the_version() {
        assert_eq!(url_segment("/api/v1/users", 4), Some((5, "v1")));
        assert_eq!(url_segment("/api//v1", 4), Some((6, "v1")));
        assert_eq!(url_segment("/api/", 4), None);
        assert_eq!(url_segment("/api", 4), None);
        assert_eq!(url_segment("/v2/x", 0), Some((1, "v2")));
    }
}

//! Entry point for API definition documents: decoding, format detection,
//! the checks both Tyk formats share, and loading a folder of files.
//!
//! Every error names the dotted path of the offending field (or the line of
//! a syntax error), so an operator can fix a rejected document at once.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::classic::parse_classic;
use super::model::{ApiDefinition, CredentialSource, GrantType, Notifications, ResponseType};
use super::oas::parse_oas;
use super::yaml_depth;

/// How a definition document is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefinitionFormat {
    Json,
    Yaml,
}

/// A validated definition together with the document it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedApi {
    pub definition: ApiDefinition,
    /// The document as submitted, converted to JSON if it was YAML. This is
    /// what the admin API returns.
    pub raw: Value,
}

#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    /// `line` and `column` start at 1; both are 0 when serde gave no position.
    #[error("invalid json{}: {message}", position(.line, .column))]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("invalid yaml{}: {message}", position(.line, .column))]
    Yaml {
        line: usize,
        column: usize,
        message: String,
    },
    /// `field` is the dotted path of the field, e.g. `proxy.listen_path`.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("cannot read file: {0}")]
    Io(std::io::Error),
}

/// A possibly absent value at a dotted path of a document. Parsers walk the
/// document through it so that every type error names the field.
#[derive(Clone, Debug)]
pub(super) struct Field<'a> {
    value: Option<&'a Value>,
    path: String,
}

// === impl DefinitionFormat ===

impl DefinitionFormat {
    /// The format of a file, from its extension; `None` when the file is not
    /// a definition.
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "json" => Some(Self::Json),
            "yaml" | "yml" => Some(Self::Yaml),
            _ => None,
        }
    }
}

impl fmt::Display for DefinitionFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Json => "json",
            Self::Yaml => "yaml",
        })
    }
}

// === impl DefinitionError ===

impl DefinitionError {
    pub(super) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The dotted path of the offending field, for validation errors.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
}

// === impl Field ===

impl<'a> Field<'a> {
    /// The whole document; its path is `document`, used only in errors.
    pub(super) fn root(doc: &'a Value) -> Self {
        Self {
            value: Some(doc),
            path: "document".to_string(),
        }
    }

    /// The member `key`; absent when this is not an object.
    pub(super) fn get(&self, key: &str) -> Field<'a> {
        let path = match self.path.as_str() {
            "document" => key.to_string(),
            parent => format!("{parent}.{key}"),
        };
        let value = self.value.and_then(|v| v.get(key));
        Field { value, path }
    }

    /// Whether the value is present and not an empty string, array or
    /// object.
    pub(super) fn has_content(&self) -> bool {
        match self.present() {
            None => false,
            Some(Value::String(s)) => !s.is_empty(),
            Some(Value::Array(items)) => !items.is_empty(),
            Some(Value::Object(map)) => !map.is_empty(),
            Some(_) => true,
        }
    }

    pub(super) fn invalid(&self, reason: impl Into<String>) -> DefinitionError {
        DefinitionError::invalid(self.path.clone(), reason)
    }

    /// The value, with JSON `null` treated as absent (Tyk exports use both).
    fn present(&self) -> Option<&'a Value> {
        self.value.filter(|v| !v.is_null())
    }

    pub(super) fn object(&self) -> Result<Option<&'a Map<String, Value>>, DefinitionError> {
        match self.present() {
            None => Ok(None),
            Some(v) => v
                .as_object()
                .map(Some)
                .ok_or_else(|| self.invalid("must be an object")),
        }
    }

    /// A boolean that defaults to false.
    pub(super) fn flag(&self) -> Result<bool, DefinitionError> {
        Ok(self.bool()?.unwrap_or(false))
    }

    /// A string that defaults to empty.
    pub(super) fn string(&self) -> Result<String, DefinitionError> {
        Ok(self.str()?.unwrap_or_default().to_string())
    }

    pub(super) fn bool(&self) -> Result<Option<bool>, DefinitionError> {
        match self.present() {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.invalid("must be a boolean")),
        }
    }

    /// A string; an empty string counts as absent.
    pub(super) fn str(&self) -> Result<Option<&'a str>, DefinitionError> {
        match self.present() {
            None => Ok(None),
            Some(v) => match v.as_str() {
                Some(s) => Ok(Some(s).filter(|s| !s.is_empty())),
                None => Err(self.invalid("must be a string")),
            },
        }
    }

    pub(super) fn required_str(&self) -> Result<&'a str, DefinitionError> {
        self.str()?.ok_or_else(|| self.invalid("is required"))
    }

    /// An array of strings; absent means empty.
    pub(super) fn strings(&self) -> Result<Vec<&'a str>, DefinitionError> {
        let Some(value) = self.present() else {
            return Ok(Vec::new());
        };
        let not_strings = || self.invalid("must be an array of strings");
        let items = value.as_array().ok_or_else(not_strings)?;
        items
            .iter()
            .map(|v| v.as_str().ok_or_else(not_strings))
            .collect()
    }

    /// The members of an array, each named by its index; absent means none.
    pub(super) fn items(&self) -> Result<Vec<Field<'a>>, DefinitionError> {
        let Some(value) = self.present() else {
            return Ok(Vec::new());
        };
        let items = value
            .as_array()
            .ok_or_else(|| self.invalid("must be an array"))?;
        let item = |(i, value)| Field {
            value: Some(value),
            path: format!("{}.{i}", self.path),
        };
        Ok(items.iter().enumerate().map(item).collect())
    }

    /// [`strings`](Self::strings), owned.
    pub(super) fn owned_strings(&self) -> Result<Vec<String>, DefinitionError> {
        Ok(self.strings()?.into_iter().map(str::to_owned).collect())
    }
}

/// Decodes `bytes` and parses the document as Tyk OAS when it has a
/// top-level `openapi` key, as Tyk Classic otherwise.
///
/// # Errors
///
/// A syntax error with its position, or the first invalid field.
pub fn parse_definition(
    bytes: &[u8],
    format: DefinitionFormat,
) -> Result<ParsedApi, DefinitionError> {
    let raw = decode(bytes, format)?;
    let definition = if raw.get("openapi").is_some() {
        parse_oas(&raw)?
    } else {
        parse_classic(&raw)?
    };
    Ok(ParsedApi { definition, raw })
}

/// Loads every `.json`, `.yaml` and `.yml` file directly in `path`, in file
/// name order. Hidden entries are skipped, which also skips the `..data`
/// folders of a Kubernetes ConfigMap mount; symlinks to files are followed.
///
/// A file that fails to load is reported with its path and does not stop
/// the others. A file whose api id was already loaded from an earlier file
/// is reported as an error.
// The pair reads plainly at the call site; aliases would only hide it.
#[allow(clippy::type_complexity)]
pub fn load_dir(path: &Path) -> (Vec<(PathBuf, ParsedApi)>, Vec<(PathBuf, DefinitionError)>) {
    let mut loaded = Vec::new();
    let mut failed = Vec::new();
    let files = match definition_files(path) {
        Ok(files) => files,
        Err(err) => return (loaded, vec![(path.to_path_buf(), DefinitionError::Io(err))]),
    };

    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    for (file, format) in files {
        let parsed = std::fs::read(&file)
            .map_err(DefinitionError::Io)
            .and_then(|bytes| parse_definition(&bytes, format));
        let parsed = match parsed {
            Ok(parsed) => parsed,
            Err(err) => {
                failed.push((file, err));
                continue;
            }
        };

        if let Some(first) = seen.get(&parsed.definition.id) {
            failed.push((file, duplicate_id(&parsed.raw, first)));
            continue;
        }
        seen.insert(parsed.definition.id.clone(), file.clone());
        loaded.push((file, parsed));
    }
    (loaded, failed)
}

fn decode(bytes: &[u8], format: DefinitionFormat) -> Result<Value, DefinitionError> {
    match format {
        DefinitionFormat::Json => serde_json::from_slice(bytes).map_err(|err| {
            let (line, column) = (err.line(), err.column());
            let message = strip_position(&err.to_string(), line, column);
            DefinitionError::Json {
                line,
                column,
                message,
            }
        }),
        DefinitionFormat::Yaml => {
            check_yaml_depth(bytes)?;
            serde_yaml_ng::from_slice(bytes).map_err(|err| {
                let (line, column) = err.location().map_or((0, 0), |l| (l.line(), l.column()));
                let message = strip_position(&err.to_string(), line, column);
                DefinitionError::Yaml {
                    line,
                    column,
                    message,
                }
            })
        }
    }
}

/// Refuses flow collections nested too deep before the parser, whose time
/// grows with the square of that depth, ever sees them.
fn check_yaml_depth(bytes: &[u8]) -> Result<(), DefinitionError> {
    let Some((line, column)) = yaml_depth::too_deep(bytes, yaml_depth::MAX_FLOW_DEPTH) else {
        return Ok(());
    };
    Err(DefinitionError::Yaml {
        line,
        column,
        message: format!(
            "collections nested more than {} levels deep",
            yaml_depth::MAX_FLOW_DEPTH
        ),
    })
}

/// serde puts the error position in its messages; it is in our fields and
/// our Display already, so the first mention is dropped.
fn strip_position(message: &str, line: usize, column: usize) -> String {
    message.replacen(&format!(" at line {line} column {column}"), "", 1)
}

fn position(line: &usize, column: &usize) -> String {
    match line {
        0 => String::new(),
        _ => format!(" at line {line}, column {column}"),
    }
}

/// Definition files in `dir`, sorted by file name.
fn definition_files(dir: &Path) -> std::io::Result<Vec<(PathBuf, DefinitionFormat)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let hidden = path
            .file_name()
            .and_then(|name| name.to_str())
            .is_none_or(|name| name.starts_with('.'));
        let Some(format) = DefinitionFormat::from_path(&path).filter(|_| !hidden) else {
            continue;
        };
        // `metadata` follows symlinks, so a link to a file counts as a file.
        if std::fs::metadata(&path).is_ok_and(|meta| meta.is_file()) {
            files.push((path, format));
        }
    }
    files.sort_by(|(a, _), (b, _)| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

fn duplicate_id(raw: &Value, first: &Path) -> DefinitionError {
    let field = if raw.get("openapi").is_some() {
        "x-tyk-api-gateway.info.id"
    } else {
        "api_id"
    };
    let first = first.file_name().unwrap_or(first.as_os_str());
    let reason = format!("same id as {}", first.to_string_lossy());
    DefinitionError::invalid(field, reason)
}

// === Checks shared by both formats ===

/// The api id becomes part of Redis keys and URL paths, so it is limited to
/// characters that need no escaping in either.
pub(super) fn api_id(field: &Field<'_>) -> Result<String, DefinitionError> {
    let id = field.required_str()?;
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if !id.chars().all(allowed) {
        return Err(field.invalid("may only contain letters, digits, '.', '_' and '-'"));
    }
    if id.chars().all(|c| c == '.') {
        return Err(field.invalid("must not be only dots"));
    }
    Ok(id.to_string())
}

pub(super) fn listen_path(field: &Field<'_>) -> Result<String, DefinitionError> {
    let path = field.required_str()?;
    if !path.starts_with('/') {
        return Err(field.invalid("must start with /"));
    }
    if path.contains("..") {
        return Err(field.invalid("must not contain .."));
    }
    if path.contains(|c: char| c.is_whitespace() || c == '?' || c == '#') {
        return Err(field.invalid("must not contain whitespace, ? or #"));
    }
    Ok(path.to_string())
}

/// Checks the upstream URL and returns it without trailing `/`, so the proxy
/// can append the request path as is.
pub(super) fn target_url(field: &Field<'_>) -> Result<String, DefinitionError> {
    let url = field.required_str()?;
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let (scheme, rest) = url.split_at(scheme_end);
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http://" && scheme != "https://" {
        return Err(field.invalid("must be an absolute http:// or https:// url"));
    }
    if rest.contains(|c: char| c.is_whitespace() || c == '?' || c == '#') {
        return Err(field.invalid("must not contain whitespace, a query or a fragment"));
    }

    let authority = rest.split('/').next().unwrap_or_default();
    check_authority(authority).map_err(|reason| field.invalid(reason))?;
    Ok(format!("{scheme}{}", rest.trim_end_matches('/')))
}

fn check_authority(authority: &str) -> Result<(), &'static str> {
    if authority.contains('@') {
        return Err("must not contain credentials");
    }
    // An IPv6 literal is bracketed; any other `:` starts the port.
    let port = match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']').ok_or("has an unclosed [ in the host")?.1,
        None => authority.find(':').map_or("", |i| &authority[i..]),
    };
    let host_len = authority.len() - port.len();
    if host_len == 0 {
        return Err("must have a host");
    }
    match port.strip_prefix(':') {
        None if port.is_empty() => Ok(()),
        Some(p) if p.parse::<u16>().is_ok_and(|p| p != 0) => Ok(()),
        _ => Err("has an invalid port"),
    }
}

pub(super) fn domain(field: &Field<'_>) -> Result<Option<String>, DefinitionError> {
    let Some(domain) = field.str()? else {
        return Ok(None);
    };
    if domain.contains(|c: char| c.is_whitespace() || c == '/') {
        return Err(field.invalid("must be a host name, without scheme or path"));
    }
    Ok(Some(domain.to_string()))
}

/// Tyk refuses an API whose credential cannot be read from anywhere.
pub(super) fn check_sources(
    source: &CredentialSource,
    field: &Field<'_>,
    method: &str,
) -> Result<(), DefinitionError> {
    if source.header.is_none() && source.query.is_none() && source.cookie.is_none() {
        let reason = format!(
            "all auth sources are disabled for {method}, \
             at least one of header/cookie/query must be enabled"
        );
        return Err(field.invalid(reason));
    }
    Ok(())
}

/// Grant types by wire name. Refresh tokens alone grant nothing, so at least
/// one other grant is required.
pub(super) fn grant_types<'a>(
    names: impl IntoIterator<Item = &'a str>,
    field: &Field<'_>,
) -> Result<BTreeSet<GrantType>, DefinitionError> {
    let mut grants = BTreeSet::new();
    for name in names {
        let grant = GrantType::from_wire(name)
            .ok_or_else(|| field.invalid(format!("unknown grant type {name}")))?;
        grants.insert(grant);
    }
    if grants.iter().all(|g| *g == GrantType::RefreshToken) {
        return Err(field.invalid("at least one grant type besides refresh_token is required"));
    }
    Ok(grants)
}

pub(super) fn authorize_types(
    field: &Field<'_>,
) -> Result<BTreeSet<ResponseType>, DefinitionError> {
    let mut types = BTreeSet::new();
    for name in field.strings()? {
        let kind = ResponseType::from_wire(name)
            .ok_or_else(|| field.invalid(format!("unknown authorize type {name}")))?;
        types.insert(kind);
    }
    Ok(types)
}

/// An absolute `http(s)://` URL, or `None` when the field is empty.
pub(super) fn optional_url(field: &Field<'_>) -> Result<Option<String>, DefinitionError> {
    let Some(url) = field.str()? else {
        return Ok(None);
    };
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(field.invalid("must be an absolute http:// or https:// url"));
    }
    Ok(Some(url.to_string()))
}

/// The token webhook; Tyk exports carry an empty URL when it is off.
pub(super) fn notifications(
    url: &Field<'_>,
    secret: &Field<'_>,
) -> Result<Option<Notifications>, DefinitionError> {
    let Some(url) = optional_url(url)? else {
        return Ok(None);
    };
    let shared_secret = secret.str()?.unwrap_or_default().to_string();
    Ok(Some(Notifications { url, shared_secret }))
}

#[cfg(test)]
#[path = "tests_definition.rs"]
mod tests;

//! Responses of the control plane: Tyk's `{"status","message"}` envelope,
//! the admin check and the health answer.

use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::Call;
use crate::app::Gateway;
use crate::http::{self as web, Body, BodyError, Params};

/// A refused management call.
#[derive(Debug)]
pub(crate) struct AdminError {
    pub status: StatusCode,
    pub message: String,
    /// The `Allow` header of a 405.
    allow: Option<String>,
}

// === impl AdminError ===

impl AdminError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            allow: None,
        }
    }

    pub fn method_not_allowed(method: &Method, allowed: &[Method]) -> Self {
        let allow = super::methods::allow_header(allowed);
        Self {
            allow: Some(allow.clone()),
            ..Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{method} is not allowed here; use {allow}"),
            )
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "Attempted administrative access with invalid or missing key!",
        )
    }

    pub fn into_response(self) -> Response<Body> {
        let body = json!({"status": "error", "message": self.message});
        let mut response = web::json(self.status, &body);
        if let Some(allow) = self.allow.and_then(|a| HeaderValue::from_str(&a).ok()) {
            response.headers_mut().insert(http::header::ALLOW, allow);
        }
        response
    }
}

impl From<crate::storage::StorageError> for AdminError {
    fn from(error: crate::storage::StorageError) -> Self {
        tracing::warn!(%error, "management call failed on storage");
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "storage is unavailable")
    }
}

impl From<crate::oauth::OAuthError> for AdminError {
    fn from(error: crate::oauth::OAuthError) -> Self {
        Self::new(error.code.status(), error.description.into_owned())
    }
}

/// Whether the request carries the admin secret.
pub(crate) fn authorized(gateway: &Gateway, headers: &HeaderMap) -> bool {
    let Some(secret) = &gateway.config.secret else {
        return false;
    };
    // `X-Tyk-Authorization` wins when both are sent, so a wrong value in it
    // is not rescued by a right one elsewhere.
    let presented = headers
        .get("x-tyk-authorization")
        .or_else(|| headers.get(http::header::AUTHORIZATION));
    presented.is_some_and(|value| secret.matches(value.as_bytes()))
}

pub(crate) fn ok(value: serde_json::Value) -> Response<Body> {
    web::json(StatusCode::OK, &value)
}

/// Tyk's `{"key","status":"ok","action"}` answer.
pub(crate) fn action(key: &str, action: &str) -> Response<Body> {
    ok(json!({"key": key, "status": "ok", "action": action}))
}

pub(crate) fn message(text: &str) -> Response<Body> {
    ok(json!({"status": "ok", "message": text}))
}

/// Reads the body, bounded by the configured limit.
pub(crate) async fn body(call: Call<'_>) -> Result<bytes::Bytes, AdminError> {
    let limit = call.gateway.config.proxy.body_limit();
    web::read_body(call.request.into_body(), limit)
        .await
        .map_err(|error| match error {
            BodyError::TooLarge { .. } => {
                AdminError::new(StatusCode::PAYLOAD_TOO_LARGE, error.to_string())
            }
            BodyError::TimedOut => AdminError::new(StatusCode::REQUEST_TIMEOUT, error.to_string()),
            BodyError::Read => AdminError::bad_request(error.to_string()),
        })
}

pub(crate) async fn json_body<T: DeserializeOwned>(call: Call<'_>) -> Result<T, AdminError> {
    let bytes = body(call).await?;
    serde_json::from_slice(&bytes)
        .map_err(|error| AdminError::bad_request(format!("invalid JSON body: {error}")))
}

/// Form parameters from the body, plus the query string.
pub(crate) async fn form(call: Call<'_>) -> Result<Params, AdminError> {
    let query = call.query.clone().unwrap_or_default();
    let mut params =
        web::parse_params(query.as_bytes()).map_err(|e| AdminError::bad_request(e.to_string()))?;
    let headers = call.request.headers().clone();
    let bytes = body(call).await?;
    let form = form_params(&headers, &bytes)?;
    params
        .merge(form)
        .map_err(|e| AdminError::bad_request(e.to_string()))?;
    Ok(params)
}

/// Decodes a form body. Another body is refused with 415: read as a form,
/// a JSON body would only lose its fields and be answered "token is
/// required". Without a `Content-Type`, a body that opens like JSON is
/// taken for JSON.
pub(crate) fn form_params(headers: &HeaderMap, body: &[u8]) -> Result<Params, AdminError> {
    let media_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    let declared_other = media_type
        .as_deref()
        .is_some_and(|m| m != "application/x-www-form-urlencoded");
    let opens_like_json = media_type.is_none()
        && body
            .trim_ascii_start()
            .first()
            .is_some_and(|b| b"{[".contains(b));
    if !body.is_empty() && (declared_other || opens_like_json) {
        return Err(AdminError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be a form (Content-Type: application/x-www-form-urlencoded)",
        ));
    }
    web::parse_params(body).map_err(|e| AdminError::bad_request(e.to_string()))
}

/// `GET /hello`: 200 while Redis answers and the node is not draining,
/// 503 otherwise.
pub(crate) async fn hello(gateway: &Gateway) -> Response<Body> {
    let started = tokio::time::Instant::now();
    let redis_ok = gateway.store().ping().await.is_ok();
    let redis_status = if redis_ok { "pass" } else { "fail" };
    let draining = gateway.is_draining();
    let status = if draining { "draining" } else { redis_status };
    let body = json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "description": "tollgate",
        "details": {
            "redis": {
                "status": redis_status,
                "componentType": "datastore",
                "time_ms": started.elapsed().as_millis() as u64,
            }
        }
    });
    let code = if redis_ok && !draining {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    web::json(code, &body)
}

/// `GET /live`: 200 whenever the node answers at all. A liveness probe
/// built on `/hello` would restart every node while Redis is down, which
/// cures nothing; this one restarts only a node that stopped serving.
pub(crate) fn live() -> Response<Body> {
    web::json(StatusCode::OK, &json!({ "status": "pass" }))
}

/// `GET /metrics`: the Prometheus text format.
pub(crate) fn metrics(gateway: &Gateway) -> Response<Body> {
    let mut response = Response::new(web::full(gateway.metrics.render()));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

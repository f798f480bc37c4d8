//! The control plane: health and the management API, in Tyk's shapes.
//!
//! Every route but `/hello`, `/live` and `/metrics` needs the admin secret in
//! `X-Tyk-Authorization` or `Authorization`; anything else is `403` and
//! changes nothing. A route answers a method it does not take with `405`
//! and `Allow` (see `methods`).
//!
//! | route | what |
//! | --- | --- |
//! | `GET /hello` | health, with Redis reachability |
//! | `GET /metrics` | Prometheus metrics, no secret needed |
//! | `GET/POST /tyk/apis`, `GET/PUT/DELETE /tyk/apis/{id}` | API definitions |
//! | `GET/POST /tyk/policies`, `GET/PUT/DELETE /tyk/policies/{id}` | policies |
//! | `POST/GET/DELETE /tyk/keys/{username}` | password-grant users |
//! | `POST /tyk/oauth/clients/create`, `POST /api/apis/oauth/{api}` | create a client app |
//! | `GET /tyk/oauth/clients/{api}[/{client}]` (and `/api/apis/oauth/...`) | read |
//! | `PUT`, `DELETE` on a client; `PUT .../rotate` | update, delete, new secret |
//! | `GET .../{client}/tokens[?page=N]` | live tokens of a client |
//! | `POST /tyk/oauth/authorize-client` (and dashboard aliases) | mint a code |
//! | `POST /tyk/oauth/revoke`, `/tyk/oauth/revoke_all` (and aliases) | revoke |
//! | `DELETE /tyk/oauth/refresh/{token}?api_id=` | revoke a refresh token |
//! | `DELETE /tyk/oauth/tokens?scope=lapsed` | purge lapsed index entries |
//! | `GET /tyk/reload`, `GET /tyk/reload/group` | reload this node, every node |

mod apis;
mod client_request;
mod clients;
mod documents;
mod keys;
mod methods;
mod policies;
mod respond;
mod routes;
mod tokens;

use std::sync::Arc;

use http::{Method, Request, Response};
use hyper::body::Incoming;

pub use tokens::authorize_client_for;

use crate::app::{Gateway, Trigger};
use crate::http::{Body, Handler, Peer};
use respond::AdminError;

/// The control-plane request handler.
pub struct ControlPlane {
    gateway: Arc<Gateway>,
}

/// What a route handler gets.
pub(crate) struct Call<'a> {
    gateway: &'a Gateway,
    method: Method,
    segments: Vec<String>,
    query: Option<String>,
    request: Request<Incoming>,
}

// === impl ControlPlane ===

impl ControlPlane {
    pub fn new(gateway: Arc<Gateway>) -> Self {
        Self { gateway }
    }

    async fn handle(&self, request: Request<Incoming>) -> Response<Body> {
        let path = request.uri().path().trim_end_matches('/').to_string();
        let public = matches!(path.as_str(), "/hello" | "/live" | "/metrics");
        if !public && !respond::authorized(&self.gateway, request.headers()) {
            return AdminError::forbidden().into_response();
        }
        let segments: Vec<String> = path.split('/').skip(1).map(percent_decode).collect();
        let names: Vec<&str> = segments.iter().map(String::as_str).collect();
        let method = request.method().clone();
        match methods::allowed(&names) {
            None => return AdminError::not_found("no such route").into_response(),
            Some(allowed) if !allowed.contains(&method) => {
                return AdminError::method_not_allowed(&method, allowed).into_response()
            }
            Some(_) => {}
        }
        match path.as_str() {
            "/hello" => return respond::hello(&self.gateway).await,
            "/live" => return respond::live(),
            "/metrics" => return respond::metrics(&self.gateway),
            _ => {}
        }
        let call = Call {
            gateway: &self.gateway,
            method,
            segments,
            query: request.uri().query().map(str::to_string),
            request,
        };
        match route(call).await {
            Ok(response) => response,
            Err(error) => error.into_response(),
        }
    }
}

impl Handler for ControlPlane {
    async fn call(self: Arc<Self>, request: Request<Incoming>, _: Peer) -> Response<Body> {
        self.handle(request).await
    }

    fn refusal(&self, status: http::StatusCode, message: &str) -> Response<Body> {
        AdminError::new(status, message).into_response()
    }
}

async fn route(call: Call<'_>) -> Result<Response<Body>, AdminError> {
    let segments = call.segments.clone();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match segments.as_slice() {
        ["tyk", "apis", rest @ ..] => apis::route(call, rest).await,
        ["tyk", "policies", rest @ ..] => policies::route(call, rest).await,
        ["tyk", "keys", rest @ ..] => keys::route(call, rest).await,
        ["tyk", "reload"] => reload_node(&call, false).await,
        ["tyk", "reload", "group"] => reload_node(&call, true).await,
        ["tyk", "oauth", rest @ ..] => tyk_oauth(call, &owned(rest)).await,
        ["api", "apis", "oauth", rest @ ..] => dashboard_oauth(call, &owned(rest)).await,
        ["api", "apis", api_id, "authorize-client"] => {
            let api_id = api_id.to_string();
            tokens::authorize_client(call, Some(api_id)).await
        }
        _ => Err(AdminError::not_found("no such route")),
    }
}

/// Gateway-style OAuth routes under `/tyk/oauth`.
async fn tyk_oauth(call: Call<'_>, rest: &[String]) -> Result<Response<Body>, AdminError> {
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    match (call.method.clone(), rest.as_slice()) {
        (Method::POST, ["clients", "create"]) => clients::create(call, None).await,
        (_, ["clients", api, client, "tokens"]) => clients::tokens(&call, api, client).await,
        (Method::PUT, ["clients", api, client, "rotate"]) => {
            clients::rotate(&call, api, client).await
        }
        (_, ["clients", api, tail @ ..]) => clients::route(call, api, tail).await,
        (Method::POST, ["authorize-client"]) => tokens::authorize_client(call, None).await,
        (Method::POST, ["revoke"]) => tokens::revoke(call, None).await,
        (Method::POST, ["revoke_all"]) => tokens::revoke_all(call, None).await,
        (Method::DELETE, ["refresh", token]) => tokens::delete_refresh(&call, token).await,
        (Method::DELETE, ["tokens"]) => tokens::purge(&call).await,
        _ => Err(AdminError::not_found("no such route")),
    }
}

/// Dashboard-style OAuth routes under `/api/apis/oauth`.
async fn dashboard_oauth(call: Call<'_>, rest: &[String]) -> Result<Response<Body>, AdminError> {
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    match (call.method.clone(), rest.as_slice()) {
        (Method::POST, [api, "authorize-client"]) => {
            let api = api.to_string();
            tokens::authorize_client(call, Some(api)).await
        }
        (Method::POST, [client, "revoke"]) => {
            let client = client.to_string();
            tokens::revoke(call, Some(client)).await
        }
        (Method::POST, [client, "revoke_all"]) => {
            let client = client.to_string();
            tokens::revoke_all(call, Some(client)).await
        }
        (Method::POST, [api]) => {
            let api = api.to_string();
            clients::create(call, Some(api)).await
        }
        (_, [api, client, "tokens"]) => clients::tokens(&call, api, client).await,
        (Method::PUT, [api, client, "rotate"]) => clients::rotate(&call, api, client).await,
        (_, [api, tail @ ..]) => clients::route(call, api, tail).await,
        _ => Err(AdminError::not_found("no such route")),
    }
}

/// `GET /tyk/reload` (this node) and `GET /tyk/reload/group` (every node).
async fn reload_node(call: &Call<'_>, group: bool) -> Result<Response<Body>, AdminError> {
    let why = if group {
        call.gateway
            .oauth
            .cluster
            .publish(&crate::cluster::Event::Reload);
        Trigger::GroupReloadCall
    } else {
        Trigger::ReloadCall
    };
    documents::reload_here(call.gateway, why).await?;
    Ok(respond::message("reload done"))
}

fn owned(segments: &[&str]) -> Vec<String> {
    segments.iter().map(|s| s.to_string()).collect()
}

fn percent_decode(segment: &str) -> String {
    form_urlencoded::parse(format!("s={}", segment.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

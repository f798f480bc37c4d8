//! The data plane: match the API, answer its OAuth endpoints, authenticate,
//! authorize and forward to the upstream.

mod auth;
mod error;
mod forward;
mod limits;

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;

pub use error::ProxyError;
pub use forward::Upstreams;

use crate::api::{AuthMode, LoadedApi};
use crate::app::Gateway;
use crate::http::{Body, Handler};
use crate::oauth::Endpoint;

/// The data-plane request handler.
pub struct DataPlane {
    gateway: Arc<Gateway>,
}

// === impl DataPlane ===

impl DataPlane {
    pub fn new(gateway: Arc<Gateway>) -> Self {
        Self { gateway }
    }

    async fn route(&self, request: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let snapshot = self.gateway.registry.snapshot();
        let host = request
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| request.uri().host())
            .map(str::to_string);
        let path = request.uri().path().to_string();
        let Some((api, rest)) = snapshot.find(host.as_deref(), &path) else {
            return ProxyError::NoApi.into_response();
        };
        let api = api.clone();
        let rest = rest.to_string();

        if api.definition.is_oauth() {
            if let Some(endpoint) = Endpoint::from_rest(&rest) {
                return self.oauth_endpoint(&api, endpoint, request).await;
            }
        }
        match self.protected(&api, rest, request, peer).await {
            Ok(response) => response,
            Err(error) => {
                tracing::debug!(api.id = %api.definition.id, %error, "request refused");
                error.into_response()
            }
        }
    }

    async fn oauth_endpoint(
        &self,
        api: &LoadedApi,
        endpoint: Endpoint,
        request: Request<Incoming>,
    ) -> Response<Body> {
        let oauth = &self.gateway.oauth;
        let definition = &api.definition;
        match endpoint {
            Endpoint::Authorize => oauth.authorize(definition, request).await,
            Endpoint::Token => oauth.token(definition, request).await,
            Endpoint::Revoke => oauth.revoke(definition, request).await,
            Endpoint::RevokeAll => oauth.revoke_all(definition, request).await,
            Endpoint::AuthorizeClient => {
                crate::admin::authorize_client_for(&self.gateway, definition, request).await
            }
        }
    }

    async fn protected(
        &self,
        api: &LoadedApi,
        rest: String,
        mut request: Request<Incoming>,
        peer: SocketAddr,
    ) -> Result<Response<Body>, ProxyError> {
        let definition = &api.definition;
        let mut quota = None;
        if definition.auth != AuthMode::Keyless {
            let (session, hash) = auth::authenticate(&self.gateway, definition, &request).await?;
            let method = request.method().as_str();
            let admission =
                limits::admit(&self.gateway, definition, &session, &hash, method, &rest)?;
            quota = limits::count(&self.gateway, &admission).await?;
            if definition.strip_auth_data {
                auth::strip_credential(&definition.credential, &mut request);
            }
        }
        let mut response = self
            .gateway
            .upstreams
            .forward(definition, &rest, request, peer)
            .await?;
        if let Some(quota) = quota {
            quota.apply(response.headers_mut());
        }
        Ok(response)
    }
}

impl Handler for DataPlane {
    async fn call(self: Arc<Self>, request: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        self.route(request, peer).await
    }
}

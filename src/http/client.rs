//! The connector of outbound requests (upstreams, notification URLs):
//! plain HTTP, or HTTPS verified against the system's CA certificates and
//! those of the operator's CA file.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tracing::warn;

/// Connects to `http://` and `https://` URLs alike.
pub type Connector = HttpsConnector<HttpConnector>;

/// Why the TLS settings could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("ca file {path}: {reason}")]
    CaFile { path: String, reason: String },
    #[error("tls setup failed: {0}")]
    Config(#[from] rustls::Error),
}

/// The TLS settings of outbound connections: the system's CA certificates
/// plus those in `ca_file`. Built once; reading the system store is slow.
pub fn tls_config(ca_file: Option<&Path>) -> Result<ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(trusted_roots(ca_file)?)
        .with_no_client_auth())
}

/// A connector that gives up connecting after `connect_timeout`.
pub fn connector(tls: ClientConfig, connect_timeout: Duration) -> Connector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http)
}

fn trusted_roots(ca_file: Option<&Path>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    // Certificates of the system store that rustls cannot use are skipped,
    // as any TLS client does.
    let (added, _) =
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(path) = ca_file {
        let fail = |reason: String| TlsError::CaFile {
            path: path.display().to_string(),
            reason,
        };
        let certificates = CertificateDer::pem_file_iter(path)
            .map_err(|e| fail(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| fail(e.to_string()))?;
        if certificates.is_empty() {
            return Err(fail("holds no PEM certificate".into()));
        }
        for certificate in certificates {
            roots.add(certificate).map_err(|e| fail(e.to_string()))?;
        }
    } else if added == 0 {
        warn!("no CA certificates found: https upstreams and webhooks will fail verification");
    }
    Ok(roots)
}

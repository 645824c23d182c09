//! TLS to the MQTT broker: the rustls client configuration built from `[mqtt]`.
//!
//! The broker is verified against the CAs of `mqtt.ca_file` (a PEM bundle; a private or
//! self-signed CA) or, without it, the system's store (`/etc/ssl/certs`, the
//! `ca-certificates` package). `client_cert_file` + `client_key_file` add a client
//! certificate for brokers that require one (`require_certificate true` in mosquitto).
//! Everything is read and checked here, at start-up, so a bad file is a config error naming
//! the key, not a handshake failure later. The crypto provider is `ring` (Cargo.toml says
//! why).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

/// The TLS files of `[mqtt]`, paths already resolved.
#[derive(Clone, Debug, Default)]
pub struct Files {
    pub ca: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

/// Builds the client configuration.
///
/// # Errors
/// One line naming the key and the file: unreadable, not PEM, no certificate in it, a key
/// that does not match, or an empty system store.
pub fn client_config(files: &Files) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("mqtt.tls: {e}"))?
        .with_root_certificates(roots(files.ca.as_deref())?);
    let config = match (&files.client_cert, &files.client_key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let chain = certificates("mqtt.client_cert_file", cert)?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                format!(
                    "mqtt.client_key_file: cannot read a PEM private key from {:?} ({e})",
                    key.display().to_string()
                )
            })?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                format!(
                    "mqtt.client_cert_file and mqtt.client_key_file: {e}; expected the \
                     certificate and the private key of one client"
                )
            })?
        }
        _ => {
            return Err("mqtt.client_cert_file and mqtt.client_key_file: set both or neither".into())
        }
    };
    Ok(Arc::new(config))
}

/// The trusted CAs: those in `ca_file`, or the system's.
fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(file) => {
            for cert in certificates("mqtt.ca_file", file)? {
                roots.add(cert).map_err(|e| {
                    format!(
                        "mqtt.ca_file: {:?} holds a certificate that is not a usable CA ({e})",
                        file.display().to_string()
                    )
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(
                    "mqtt.tls = true: no CA certificates in the system store; install the \
                     ca-certificates package or set mqtt.ca_file to the broker's CA (PEM)"
                        .into(),
                );
            }
        }
    }
    Ok(roots)
}

/// Every certificate in a PEM file; an error if there is none.
fn certificates(key: &str, file: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let shown = file.display().to_string();
    let certs = CertificateDer::pem_file_iter(file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{key}: cannot read PEM certificates from {shown:?} ({e})"))?;
    if certs.is_empty() {
        return Err(format!(
            "{key}: {shown:?} holds no certificate; expected PEM (-----BEGIN CERTIFICATE-----)"
        ));
    }
    Ok(certs)
}

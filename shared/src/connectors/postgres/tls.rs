//! PostgreSQL connections with TLS, with libpq's `sslmode` semantics: `disable` never uses TLS,
//! `prefer` (the default) uses it when the server offers it, `require` insists on it. As with
//! libpq, the server certificate is verified only when a root certificate file is given
//! (`PGSSLROOTCERT`, e.g. the Amazon RDS CA bundle); otherwise the connection is encrypted
//! without verifying who answers, which is what `sslmode=require` means to libpq too.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::Client;
use tokio_postgres_rustls::MakeRustlsConnect;

/// Accepts any certificate but still checks the handshake signatures (libpq `require`).
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_config() -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    match std::env::var_os("PGSSLROOTCERT") {
        Some(path) => {
            let pem = std::fs::read(&path).map_err(|e| {
                format!("cannot read PGSSLROOTCERT {}: {e}", path.to_string_lossy())
            })?;
            let mut roots = RootCertStore::empty();
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|e| format!("PGSSLROOTCERT is not a PEM file: {e}"))?;
                roots.add(cert).map_err(|e| e.to_string())?;
            }
            Ok(builder.with_root_certificates(roots).with_no_client_auth())
        }
        None => Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
            .with_no_client_auth()),
    }
}

/// A PostgreSQL error or a TLS setup problem.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    /// The database refused or could not be reached.
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    /// TLS could not be set up.
    #[error("TLS setup: {0}")]
    Tls(String),
}

/// Connects to `url`; the connection task runs in the background and logs how it ended.
pub(crate) async fn connect(url: &str, connection: &str) -> Result<Client, ConnectError> {
    let tls = MakeRustlsConnect::new(tls_config().map_err(ConnectError::Tls)?);
    let (client, conn) = tokio_postgres::connect(url, tls).await?;
    let name = connection.to_string();
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::warn!(connection = %name, error = %e, "postgres connection ended");
        }
    });
    Ok(client)
}

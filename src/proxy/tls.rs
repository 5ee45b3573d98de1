//! TLS for the proxy: the upstream client's trust (the system roots plus `--cacert`, or no
//! verification at all behind `--insecure-upstream`), and interception of CONNECT tunnels
//! with a certificate per host signed by a CA (`--intercept-ca`/`--intercept-key`, or one made
//! at start with `--intercept-self-signed`), minted on first use and kept.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow};
use rcgen::{Issuer, KeyPair};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;

use crate::server::tls::provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The client configuration for upstream connections.
pub fn upstream_config(cacert: Option<&Path>, insecure: bool) -> Result<rustls::ClientConfig> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow!("TLS set-up: {e}"))?;
    let config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider())))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        if let Some(path) = cacert {
            let pem = crate::input::read_regular_file(path, "--cacert", 16 << 20)?;
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert =
                    cert.map_err(|e| anyhow!("--cacert {}: not PEM ({e})", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| anyhow!("--cacert {}: {e}", path.display()))?;
                added += 1;
            }
            if added == 0 {
                anyhow::bail!("--cacert {} holds no PEM certificate", path.display());
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    // ALPN is the connector's to set (http/1.1).
    Ok(config)
}

/// `--insecure-upstream`: any certificate is accepted (signatures are still checked, so the
/// handshake itself is real).
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
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
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
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
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The interception CA and the certificates it made, one per host.
pub struct Intercept {
    issuer: Issuer<'static, KeyPair>,
    ca_der: CertificateDer<'static>,
    minted: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl std::fmt::Debug for Intercept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Intercept")
    }
}

/// Hosts an interception CA mints certificates for, at most (then it starts over).
const MAX_MINTED: usize = 4096;

impl Intercept {
    /// A CA from PEM files (the certificate and its private key).
    pub fn from_files(cert: &Path, key: &Path) -> Result<Intercept> {
        let cert_pem = crate::input::read_regular_file(cert, "--intercept-ca", 1 << 20)?;
        let key_pem = crate::input::read_regular_file(key, "--intercept-key", 1 << 20)?;
        let key_text = String::from_utf8(key_pem)
            .map_err(|_| anyhow!("--intercept-key {}: not PEM", key.display()))?;
        let key_pair = KeyPair::from_pem(&key_text)
            .map_err(|e| anyhow!("--intercept-key {}: not a usable key ({e})", key.display()))?;
        let ca_der = CertificateDer::pem_slice_iter(&cert_pem)
            .next()
            .ok_or_else(|| anyhow!("--intercept-ca {}: holds no certificate", cert.display()))?
            .map_err(|e| anyhow!("--intercept-ca {}: not PEM ({e})", cert.display()))?;
        let issuer = Issuer::from_ca_cert_der(&ca_der, key_pair)
            .map_err(|e| anyhow!("--intercept-ca {}: {e}", cert.display()))?;
        Ok(Intercept {
            issuer,
            ca_der,
            minted: Mutex::default(),
        })
    }

    /// A throwaway CA, and its certificate as PEM for clients to trust.
    pub fn self_signed() -> Result<(Intercept, String)> {
        let (issuer, ca_der, pem) = crate::server::tls::new_ca("jwkit proxy interception CA")?;
        Ok((
            Intercept {
                issuer,
                ca_der,
                minted: Mutex::default(),
            },
            pem,
        ))
    }

    /// The certificate for `host`, made on first use.
    fn certified(&self, host: &str) -> Result<Arc<CertifiedKey>> {
        let mut minted = self.minted.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = minted.get(host) {
            return Ok(Arc::clone(c));
        }
        let certified = crate::server::tls::mint(&[host.to_string()], &self.issuer, &self.ca_der)?;
        if minted.len() >= MAX_MINTED {
            minted.clear();
        }
        minted.insert(host.to_string(), Arc::clone(&certified));
        Ok(certified)
    }

    /// A TLS acceptor presenting a certificate for the SNI name, or for `host` (the CONNECT
    /// target) when the client sends none.
    pub fn acceptor(self: &Arc<Self>, host: &str) -> Result<tokio_rustls::TlsAcceptor> {
        crate::server::tls::acceptor(Arc::new(PerHost {
            intercept: Arc::clone(self),
            fallback: host.to_string(),
        }))
    }
}

#[derive(Debug)]
struct PerHost {
    intercept: Arc<Intercept>,
    fallback: String,
}

impl ResolvesServerCert for PerHost {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let host = hello.server_name().unwrap_or(&self.fallback).to_string();
        self.intercept.certified(&host).ok()
    }
}

/// Writes the CA certificate for clients (0644; atomically, never over a file without
/// `force`).
pub fn write_ca(path: &Path, pem: &str) -> Result<()> {
    crate::atomic::commit(
        vec![crate::atomic::stage(path, pem.as_bytes(), 0o644)?],
        true,
    )
    .with_context(|| format!("writing the CA certificate to {}", path.display()))
}

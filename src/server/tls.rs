//! TLS for `serve` (rustls on the aws-lc provider): a certificate chain and key from PEM files,
//! checked at start (readable, the key matching the certificate, within its validity) and read
//! again on SIGHUP without dropping the listener; or, with --tls-self-signed, a throwaway CA and
//! a certificate for the server's host names, the CA written out for clients (`verify-jwt
//! --cacert`, an application's CA bundle).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::{Context, Result, anyhow, bail};
use der::Decode;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The one crypto provider: rustls on aws-lc.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The certificate being served, replaced whole on reload.
#[derive(Debug)]
pub struct Reloadable {
    current: RwLock<Arc<CertifiedKey>>,
    /// The files it came from (None: self-signed, nothing to reload).
    files: Option<(PathBuf, PathBuf)>,
}

impl ResolvesServerCert for Reloadable {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| Arc::clone(&c))
    }
}

impl Reloadable {
    /// Reads the files again; on any fault the certificate in use stays, and the fault is
    /// returned.
    pub fn reload(&self) -> Result<bool> {
        let Some((cert, key)) = &self.files else {
            return Ok(false);
        };
        let fresh = load_pair(cert, key)?;
        if let Ok(mut c) = self.current.write() {
            *c = fresh;
        }
        Ok(true)
    }
}

/// A TLS acceptor for HTTP/1.1 whose certificate comes from `cert` (a reloadable pair, or a
/// certificate per host).
pub fn acceptor(cert: Arc<dyn ResolvesServerCert>) -> Result<tokio_rustls::TlsAcceptor> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow!("TLS set-up: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// The served certificate from PEM files.
pub fn from_files(cert: &Path, key: &Path) -> Result<Arc<Reloadable>> {
    Ok(Arc::new(Reloadable {
        current: RwLock::new(load_pair(cert, key)?),
        files: Some((cert.to_path_buf(), key.to_path_buf())),
    }))
}

/// Certificate chains and keys beyond this are not certificates.
const MAX_PEM_BYTES: u64 = 1 << 20;

/// Reads and checks a certificate chain and its key.
fn load_pair(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>> {
    let cert_pem = crate::input::read_regular_file(cert, "--tls-cert", MAX_PEM_BYTES)?;
    let key_pem = zeroize::Zeroizing::new(crate::input::read_regular_file(
        key,
        "--tls-key",
        MAX_PEM_BYTES,
    )?);
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow!("--tls-cert {}: not PEM certificates ({e})", cert.display()))?;
    let Some(leaf) = chain.first() else {
        bail!("--tls-cert {}: holds no certificate", cert.display());
    };
    check_validity(leaf).with_context(|| format!("--tls-cert {}", cert.display()))?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        anyhow!(
            "--tls-key {}: no PEM private key in it ({e})",
            key.display()
        )
    })?;
    let signing = provider()
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| {
            anyhow!(
                "--tls-key {}: not a usable private key ({e})",
                key.display()
            )
        })?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| {
        anyhow!(
            "--tls-key {} does not match the certificate in --tls-cert {} ({e})",
            key.display(),
            cert.display()
        )
    })?;
    Ok(Arc::new(certified))
}

/// Refuses a certificate that has expired or is not valid yet.
fn check_validity(leaf: &CertificateDer<'_>) -> Result<()> {
    let cert = x509_cert::Certificate::from_der(leaf.as_ref())
        .map_err(|e| anyhow!("the certificate does not parse ({e})"))?;
    let validity = &cert.tbs_certificate.validity;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let (from, until) = (
        validity.not_before.to_unix_duration(),
        validity.not_after.to_unix_duration(),
    );
    if now > until {
        bail!(
            "the certificate expired on {}",
            crate::when::rfc3339(until.as_secs() as i64)
        );
    }
    if now < from {
        bail!(
            "the certificate is not valid before {}",
            crate::when::rfc3339(from.as_secs() as i64)
        );
    }
    Ok(())
}

/// A throwaway CA named `name`: the issuer that signs with it, its certificate, and that
/// certificate as PEM for clients to trust.
pub fn new_ca(
    name: &str,
) -> Result<(
    rcgen::Issuer<'static, rcgen::KeyPair>,
    CertificateDer<'static>,
    String,
)> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose,
        PKCS_ECDSA_P256_SHA256,
    };
    let failed = |e: rcgen::Error| anyhow!("making the CA: {e}");
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(failed)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = params.self_signed(&key).map_err(failed)?;
    Ok((
        rcgen::Issuer::new(params, key),
        cert.der().clone(),
        cert.pem(),
    ))
}

/// A certificate for `hosts` (names or IP addresses; the first is its common name) signed by
/// `issuer`, ready to serve with the CA's certificate `ca` in its chain.
pub fn mint(
    hosts: &[String],
    issuer: &rcgen::Issuer<'_, rcgen::KeyPair>,
    ca: &CertificateDer<'static>,
) -> Result<Arc<CertifiedKey>> {
    use rcgen::{
        CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, PKCS_ECDSA_P256_SHA256,
    };
    let name = hosts.first().cloned().unwrap_or_else(|| "localhost".into());
    let failed = |e: rcgen::Error| anyhow!("making a certificate for {name}: {e}");
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(failed)?;
    let mut params = CertificateParams::new(hosts.to_vec()).map_err(failed)?;
    params
        .distinguished_name
        .push(DnType::CommonName, name.as_str());
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, issuer).map_err(failed)?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing = provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| anyhow!("loading the key for {name}: {e}"))?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone(), ca.clone()],
        signing,
    )))
}

/// A throwaway CA and a certificate it signed for `hosts` (names or IP addresses). Returns
/// what to serve and the CA certificate as PEM, for clients to trust.
pub fn self_signed(hosts: &[String]) -> Result<(Arc<Reloadable>, String)> {
    let (issuer, ca, pem) = new_ca("jwkit serve throwaway CA")?;
    let served = Arc::new(Reloadable {
        current: RwLock::new(mint(hosts, &issuer, &ca)?),
        files: None,
    });
    Ok((served, pem))
}

//! The rustls server configuration of `tls_server_config`: versions, cipher suites, key
//! exchange groups and client certificates as the web config format defines them. Errors
//! name the key whose value cannot be honoured.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, aws_lc_rs};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, NoClientAuth, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
    SupportedProtocolVersion,
};

use super::web_config::TlsServerConfig;

/// A version name of the format, or why it cannot be honoured.
fn version(key: &str, name: &str) -> Result<&'static SupportedProtocolVersion, String> {
    match name {
        "TLS13" => Ok(&rustls::version::TLS13),
        "TLS12" => Ok(&rustls::version::TLS12),
        "TLS10" | "TLS11" => Err(format!(
            "tls_server_config.{key}: {name} is not supported (rustls speaks TLS12 and TLS13)"
        )),
        _ => Err(format!(
            "tls_server_config.{key}: {name} is not a TLS version (TLS12 or TLS13)"
        )),
    }
}

/// Go's names of key exchange groups to rustls' (IANA) names.
const CURVES: &[(&str, &str)] = &[
    ("X25519", "X25519"),
    ("CurveP256", "secp256r1"),
    ("CurveP384", "secp384r1"),
    ("CurveP521", "secp521r1"),
    ("X25519MLKEM768", "X25519MLKEM768"),
];

/// The provider with the cipher suites and groups the configuration asks for.
fn provider(tls: &TlsServerConfig) -> Result<CryptoProvider, String> {
    let mut provider = aws_lc_rs::default_provider();
    if !tls.cipher_suites.is_empty() {
        let available = aws_lc_rs::ALL_CIPHER_SUITES;
        let name_of = |s: &rustls::SupportedCipherSuite| format!("{:?}", s.suite());
        // As in Go, the list orders TLS 1.2 suites; TLS 1.3 suites are always on.
        let mut chosen: Vec<_> = available
            .iter()
            .filter(|s| s.version() == &rustls::version::TLS13)
            .copied()
            .collect();
        for name in &tls.cipher_suites {
            // Go also knows the ChaCha20 suites without their `_SHA256`.
            let found = available.iter().find(|s| {
                let n = name_of(s);
                n == *name
                    || n == format!("{name}_SHA256")
                    || n == format!("TLS13_{}", name.trim_start_matches("TLS_"))
            });
            match found {
                Some(s) if !chosen.contains(s) => chosen.push(*s),
                Some(_) => {}
                None => {
                    let names: Vec<String> = available
                        .iter()
                        .filter(|s| s.version() == &rustls::version::TLS12)
                        .map(name_of)
                        .collect();
                    return Err(format!(
                        "tls_server_config.cipher_suites: {name} is not supported (supported: {})",
                        names.join(", ")
                    ));
                }
            }
        }
        provider.cipher_suites = chosen;
    }
    if !tls.curve_preferences.is_empty() {
        let mut groups = Vec::new();
        for name in &tls.curve_preferences {
            let iana = CURVES
                .iter()
                .find(|(go, _)| go == name)
                .map(|(_, iana)| *iana);
            let group = aws_lc_rs::ALL_KX_GROUPS
                .iter()
                .find(|g| iana.is_some_and(|i| format!("{:?}", g.name()) == i));
            match group {
                Some(g) => groups.push(*g),
                None => {
                    return Err(format!(
                        "tls_server_config.curve_preferences: {name} is not supported (supported: X25519, CurveP256, CurveP384, X25519MLKEM768)"
                    ));
                }
            }
        }
        provider.kx_groups = groups;
    }
    Ok(provider)
}

/// PEM certificates from the inline `key` or from `{key}_file`; `None` when neither is set.
fn certificates(
    inline: Option<&str>,
    file: Option<&std::path::Path>,
    key: &str,
) -> Result<Option<Vec<CertificateDer<'static>>>, String> {
    let (certs, key) = match (inline, file) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "tls_server_config.{key}: set together with {key}_file: use one"
            ));
        }
        (Some(pem), None) => (
            CertificateDer::pem_slice_iter(pem.as_bytes()).collect::<Result<Vec<_>, _>>(),
            key.to_string(),
        ),
        (None, Some(path)) => (
            CertificateDer::pem_file_iter(path).and_then(|i| i.collect()),
            format!("{key}_file"),
        ),
        (None, None) => return Ok(None),
    };
    let certs = certs.map_err(|e| format!("tls_server_config.{key}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("tls_server_config.{key}: no certificate in it"));
    }
    Ok(Some(certs))
}

fn client_roots(tls: &TlsServerConfig, mode: &str) -> Result<Arc<RootCertStore>, String> {
    let certs = certificates(
        tls.client_ca.as_deref(),
        tls.client_ca_file.as_deref(),
        "client_ca",
    )?
    .ok_or_else(|| {
        format!("tls_server_config.client_ca_file: required with client_auth_type {mode}")
    })?;
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?;
    }
    Ok(Arc::new(roots))
}

/// The verifier of client certificates for `client_auth_type`.
fn client_verifier(
    tls: &TlsServerConfig,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, String> {
    let mode = tls.client_auth_type.as_deref().unwrap_or("NoClientCert");
    let built = |b: rustls::server::ClientCertVerifierBuilder| {
        b.build()
            .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))
    };
    let verifier: Arc<dyn ClientCertVerifier> = match mode {
        "NoClientCert" | "" => {
            if tls.client_ca_file.is_some() || tls.client_ca.is_some() {
                return Err("tls_server_config.client_ca_file: set, but client_auth_type is NoClientCert: choose a client_auth_type".to_string());
            }
            Arc::new(NoClientAuth)
        }
        "RequestClientCert" | "RequireAnyClientCert" | "RequireClientCert" => {
            Arc::new(AnyClientCert {
                mandatory: mode != "RequestClientCert",
                provider: Arc::clone(provider),
            })
        }
        "VerifyClientCertIfGiven" => built(
            WebPkiClientVerifier::builder_with_provider(
                client_roots(tls, mode)?,
                Arc::clone(provider),
            )
            .allow_unauthenticated(),
        )?,
        "RequireAndVerifyClientCert" => built(WebPkiClientVerifier::builder_with_provider(
            client_roots(tls, mode)?,
            Arc::clone(provider),
        ))?,
        other => {
            return Err(format!(
                "tls_server_config.client_auth_type: {other} is not one of NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert"
            ));
        }
    };
    if tls.client_allowed_sans.is_empty() {
        return Ok(verifier);
    }
    if !matches!(
        mode,
        "RequireAnyClientCert" | "RequireClientCert" | "RequireAndVerifyClientCert"
    ) {
        // Other modes let a client in without a certificate, so without a SAN to check.
        return Err(
            "tls_server_config.client_allowed_sans: needs client_auth_type RequireAnyClientCert or RequireAndVerifyClientCert"
                .to_string(),
        );
    }
    Ok(Arc::new(AllowedSans {
        inner: verifier,
        allowed: tls.client_allowed_sans.clone(),
    }))
}

/// The subject alternative names of a certificate as Go prints them: DNS names, IP
/// addresses, e-mail addresses and URIs.
fn subject_alt_names(der: &[u8]) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => {
                Some(s.to_string())
            }
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => <[u8; 4]>::try_from(*bytes)
                    .ok()
                    .map(|b| std::net::IpAddr::from(b).to_string()),
                16 => <[u8; 16]>::try_from(*bytes)
                    .ok()
                    .map(|b| std::net::IpAddr::from(b).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// The rustls configuration of `tls` (files already resolved); `http2` decides ALPN.
pub fn server_config(tls: &TlsServerConfig, http2: bool) -> Result<Arc<ServerConfig>, String> {
    let min = version("min_version", tls.min_version.as_deref().unwrap_or("TLS12"))?;
    let max = version("max_version", tls.max_version.as_deref().unwrap_or("TLS13"))?;
    let rank = |v: &SupportedProtocolVersion| u16::from(v.version);
    if rank(min) > rank(max) {
        return Err("tls_server_config.min_version: above max_version".to_string());
    }
    let versions: Vec<&'static SupportedProtocolVersion> =
        [&rustls::version::TLS12, &rustls::version::TLS13]
            .into_iter()
            .filter(|v| rank(v) >= rank(min) && rank(v) <= rank(max))
            .collect();
    let provider = Arc::new(provider(tls)?);
    let verifier = client_verifier(tls, &provider)?;
    let server_cert = ServerCert::new(tls, &provider)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(server_cert));
    config.ignore_client_order = tls.prefer_server_cipher_suites.unwrap_or(true);
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(Arc::new(config))
}

/// The certificate chain and key of `tls`, checked to belong together.
fn certified_key(tls: &TlsServerConfig, provider: &CryptoProvider) -> Result<CertifiedKey, String> {
    let certs = certificates(tls.cert.as_deref(), tls.cert_file.as_deref(), "cert")?
        .ok_or("tls_server_config.cert_file: required (or cert, inline)")?;
    let (key, name) = match (tls.key.as_ref(), tls.key_file.as_deref()) {
        (Some(_), Some(_)) => {
            return Err("tls_server_config.key: set together with key_file: use one".to_string());
        }
        (Some(inline), None) => (
            PrivateKeyDer::from_pem_slice(inline.expose().as_bytes()),
            "key",
        ),
        (None, Some(file)) => (PrivateKeyDer::from_pem_file(file), "key_file"),
        (None, None) => {
            return Err("tls_server_config.key_file: required (or key, inline)".to_string());
        }
    };
    let key = key.map_err(|e| format!("tls_server_config.{name}: {e}"))?;
    CertifiedKey::from_der(certs, key, provider)
        .map_err(|e| format!("tls_server_config.{name}: {e}"))
}

/// Size and modification time of a file, to notice that it changed.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// The server's certificate, read again from its files when they change: a renewed
/// certificate needs no restart (exporter-toolkit, too, re-reads them).
#[derive(Debug)]
struct ServerCert {
    tls: TlsServerConfig,
    provider: Arc<CryptoProvider>,
    current: Mutex<([Stamp; 2], Arc<CertifiedKey>)>,
}

impl ServerCert {
    fn new(tls: &TlsServerConfig, provider: &Arc<CryptoProvider>) -> Result<Self, String> {
        let stamps = ServerCert::stamps(tls);
        let key = certified_key(tls, provider)?;
        Ok(ServerCert {
            tls: tls.clone(),
            provider: Arc::clone(provider),
            current: Mutex::new((stamps, Arc::new(key))),
        })
    }

    fn stamps(tls: &TlsServerConfig) -> [Stamp; 2] {
        [
            tls.cert_file.as_deref().and_then(stamp),
            tls.key_file.as_deref().and_then(stamp),
        ]
    }
}

impl ResolvesServerCert for ServerCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let now = ServerCert::stamps(&self.tls);
        if now != current.0 {
            // Remembered even when the new files do not load (half-written, key and
            // certificate from different pairs): they are tried again when they change.
            current.0 = now;
            match certified_key(&self.tls, &self.provider) {
                Ok(key) => {
                    tracing::info!("TLS certificate files changed; serving the new certificate");
                    current.1 = Arc::new(key);
                }
                Err(e) => tracing::warn!("{e}; keeping the previous certificate"),
            }
        }
        Some(Arc::clone(&current.1))
    }
}

/// RequestClientCert and RequireAnyClientCert: a certificate is asked for (or required) but
/// not verified against a CA; the handshake signature still proves the client holds its key.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `client_allowed_sans`: after `inner` accepts a certificate, one of its subject alternative
/// names must equal one of the allowed ones exactly.
#[derive(Debug)]
struct AllowedSans {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: Vec<String>,
}

impl ClientCertVerifier for AllowedSans {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if subject_alt_names(end_entity)
            .iter()
            .any(|san| self.allowed.contains(san))
        {
            Ok(verified)
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

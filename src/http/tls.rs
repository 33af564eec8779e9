//! `tls_server_config` of the web config format: its settings, decoded when the file is
//! read, and the rustls server configuration built from them (versions, cipher suites, key
//! exchange groups, client certificates). Errors name the key whose value cannot be honoured.

mod verify;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rustls::crypto::{CryptoProvider, SupportedKxGroup, aws_lc_rs};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, NoClientAuth, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{NamedGroup, RootCertStore, ServerConfig, SupportedProtocolVersion};
use serde::Deserialize;

use crate::config::Secret;
use crate::lock::Locked;
use crate::watch::FileWatch;

use verify::{AllowedSans, AnyClientCert};

/// An inline private key, kept out of `Debug` output.
fn secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(Secret::new))
}

/// `tls_server_config`; relative paths are relative to the web config file.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsServerConfig {
    /// PEM certificate chain file.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key file.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// PEM certificate chain inline, instead of `cert_file`.
    #[serde(default)]
    pub cert: Option<String>,
    /// PEM private key inline, instead of `key_file`.
    #[serde(default, deserialize_with = "secret")]
    pub key: Option<Secret>,
    /// PEM client CA certificates inline, instead of `client_ca_file`.
    #[serde(default)]
    pub client_ca: Option<String>,
    /// Whether client certificates are asked for, required and verified (default
    /// NoClientCert).
    #[serde(default)]
    pub client_auth_type: Option<ClientAuth>,
    /// PEM CA certificates that client certificates are verified against.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// A client certificate must be valid for one of these DNS names or IP addresses.
    #[serde(default)]
    pub client_allowed_sans: Vec<String>,
    /// Lowest version offered (default TLS12).
    #[serde(default)]
    pub min_version: Option<TlsVersion>,
    /// Highest version offered (default TLS13).
    #[serde(default)]
    pub max_version: Option<TlsVersion>,
    /// TLS 1.2 cipher suites by their IANA names, in order of preference.
    #[serde(default)]
    pub cipher_suites: Vec<String>,
    /// Key exchange groups by their Go names (X25519, CurveP256, ...), in order of preference.
    #[serde(default)]
    pub curve_preferences: Vec<String>,
    /// The server's order of cipher suites wins over the client's (default true).
    #[serde(default)]
    pub prefer_server_cipher_suites: Option<bool>,
}

/// `client_auth_type`, by Go's `tls.ClientAuthType` names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ClientAuth {
    /// No certificate is asked for.
    #[default]
    NoClientCert,
    /// A certificate is asked for, not required, not verified.
    RequestClientCert,
    /// A certificate is required, not verified against a CA.
    RequireAnyClientCert,
    /// A certificate is asked for and, when sent, verified against `client_ca_file`.
    VerifyClientCertIfGiven,
    /// A certificate is required and verified against `client_ca_file`.
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    /// Every value with its name in the format.
    const NAMES: [(&'static str, ClientAuth); 5] = [
        ("NoClientCert", ClientAuth::NoClientCert),
        ("RequestClientCert", ClientAuth::RequestClientCert),
        ("RequireAnyClientCert", ClientAuth::RequireAnyClientCert),
        (
            "VerifyClientCertIfGiven",
            ClientAuth::VerifyClientCertIfGiven,
        ),
        (
            "RequireAndVerifyClientCert",
            ClientAuth::RequireAndVerifyClientCert,
        ),
    ];

    /// The name of the value in the format.
    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, v)| *v == self)
            .map_or("", |(n, _)| n)
    }

    /// Whether a client without a certificate is refused (so a SAN can always be checked).
    fn mandatory(self) -> bool {
        matches!(
            self,
            ClientAuth::RequireAnyClientCert | ClientAuth::RequireAndVerifyClientCert
        )
    }

    /// The value `name` names in the format.
    fn from_name(name: &str) -> Result<Self, String> {
        // Accepted as they were before the names were checked: an empty value is the
        // default, and RequireClientCert an old spelling of RequireAnyClientCert.
        match name {
            "" => return Ok(ClientAuth::NoClientCert),
            "RequireClientCert" => return Ok(ClientAuth::RequireAnyClientCert),
            _ => {}
        }
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::NAMES.iter().map(|(n, _)| *n).collect();
                format!("{name} is not one of {}", names.join(", "))
            })
    }
}

/// `min_version` and `max_version`, by the format's names, in protocol order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.0: a name of the format that rustls does not speak.
    Tls10,
    /// TLS 1.1: a name of the format that rustls does not speak.
    Tls11,
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

/// Every version with its name in the format and rustls' version, if rustls speaks it.
static VERSIONS: [(&str, TlsVersion, Option<&SupportedProtocolVersion>); 4] = [
    ("TLS10", TlsVersion::Tls10, None),
    ("TLS11", TlsVersion::Tls11, None),
    ("TLS12", TlsVersion::Tls12, Some(&rustls::version::TLS12)),
    ("TLS13", TlsVersion::Tls13, Some(&rustls::version::TLS13)),
];

/// The names of the versions rustls speaks, joined by `sep`.
fn spoken_versions(sep: &str) -> String {
    let names: Vec<&str> = VERSIONS
        .iter()
        .filter(|(_, _, v)| v.is_some())
        .map(|(n, _, _)| *n)
        .collect();
    names.join(sep)
}

impl TlsVersion {
    /// The name of the version in the format.
    pub fn name(self) -> &'static str {
        VERSIONS
            .iter()
            .find(|(_, v, _)| *v == self)
            .map_or("", |(n, _, _)| n)
    }

    /// rustls' version, or why it cannot be honoured as `key`.
    fn rustls(self, key: &str) -> Result<&'static SupportedProtocolVersion, String> {
        VERSIONS
            .iter()
            .find(|(_, v, _)| *v == self)
            .and_then(|(_, _, r)| *r)
            .ok_or_else(|| {
                format!(
                    "tls_server_config.{key}: {} is not supported (rustls speaks {})",
                    self.name(),
                    spoken_versions(" and ")
                )
            })
    }

    /// The version `name` names in the format.
    fn from_name(name: &str) -> Result<Self, String> {
        VERSIONS
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, v, _)| *v)
            .ok_or_else(|| format!("{name} is not a TLS version ({})", spoken_versions(" or ")))
    }
}

/// Reads a value by its name with `parse`. The error is raised while the scalar is read, so
/// that serde_yaml_ng puts the key and the line of the value in front of it (a `try_from`
/// conversion fails after the read, at the enclosing mapping).
struct ByName<T>(fn(&str) -> Result<T, String>);

impl<T> serde::de::Visitor<'_> for ByName<T> {
    type Value = T;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a name")
    }

    fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<T, E> {
        (self.0)(name).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for ClientAuth {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(ByName(ClientAuth::from_name))
    }
}

impl<'de> Deserialize<'de> for TlsVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(ByName(TlsVersion::from_name))
    }
}

/// Go's names of key exchange groups, with rustls' groups.
const CURVES: [(&str, NamedGroup); 5] = [
    ("X25519", NamedGroup::X25519),
    ("CurveP256", NamedGroup::secp256r1),
    ("CurveP384", NamedGroup::secp384r1),
    ("CurveP521", NamedGroup::secp521r1),
    ("X25519MLKEM768", NamedGroup::X25519MLKEM768),
];

/// The provider's implementation of the group `name` names, if it has one.
fn curve(name: &str) -> Option<&'static dyn SupportedKxGroup> {
    let (_, group) = CURVES.iter().find(|(go, _)| *go == name)?;
    aws_lc_rs::ALL_KX_GROUPS
        .iter()
        .find(|g| g.name() == *group)
        .copied()
}

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
            let Some(group) = curve(name) else {
                let names: Vec<&str> = CURVES
                    .iter()
                    .map(|(go, _)| *go)
                    .filter(|go| curve(go).is_some())
                    .collect();
                return Err(format!(
                    "tls_server_config.curve_preferences: {name} is not supported (supported: {})",
                    names.join(", ")
                ));
            };
            groups.push(group);
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

fn client_roots(tls: &TlsServerConfig, mode: ClientAuth) -> Result<Arc<RootCertStore>, String> {
    let certs = certificates(
        tls.client_ca.as_deref(),
        tls.client_ca_file.as_deref(),
        "client_ca",
    )?
    .ok_or_else(|| {
        format!(
            "tls_server_config.client_ca_file: required with client_auth_type {}",
            mode.name()
        )
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
    let mode = tls.client_auth_type.unwrap_or_default();
    let built = |b: rustls::server::ClientCertVerifierBuilder| {
        b.build()
            .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))
    };
    let verifier: Arc<dyn ClientCertVerifier> = match mode {
        ClientAuth::NoClientCert => {
            if tls.client_ca_file.is_some() || tls.client_ca.is_some() {
                return Err("tls_server_config.client_ca_file: set, but client_auth_type is NoClientCert: choose a client_auth_type".to_string());
            }
            Arc::new(NoClientAuth)
        }
        ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert => {
            Arc::new(AnyClientCert {
                mandatory: mode.mandatory(),
                provider: Arc::clone(provider),
            })
        }
        ClientAuth::VerifyClientCertIfGiven => built(
            WebPkiClientVerifier::builder_with_provider(
                client_roots(tls, mode)?,
                Arc::clone(provider),
            )
            .allow_unauthenticated(),
        )?,
        ClientAuth::RequireAndVerifyClientCert => {
            built(WebPkiClientVerifier::builder_with_provider(
                client_roots(tls, mode)?,
                Arc::clone(provider),
            ))?
        }
    };
    if tls.client_allowed_sans.is_empty() {
        return Ok(verifier);
    }
    if !mode.mandatory() {
        // Other modes let a client in without a certificate, so without a SAN to check.
        let modes: Vec<&str> = ClientAuth::NAMES
            .iter()
            .filter(|(_, m)| m.mandatory())
            .map(|(n, _)| *n)
            .collect();
        return Err(format!(
            "tls_server_config.client_allowed_sans: needs client_auth_type {}",
            modes.join(" or ")
        ));
    }
    Ok(Arc::new(AllowedSans {
        inner: verifier,
        allowed: tls.client_allowed_sans.clone(),
    }))
}

/// The rustls configuration of `tls` (files already resolved); `http2` decides ALPN.
pub fn server_config(tls: &TlsServerConfig, http2: bool) -> Result<Arc<ServerConfig>, String> {
    let min = tls.min_version.unwrap_or(TlsVersion::Tls12);
    let max = tls.max_version.unwrap_or(TlsVersion::Tls13);
    min.rustls("min_version")?;
    max.rustls("max_version")?;
    if min > max {
        return Err("tls_server_config.min_version: above max_version".to_string());
    }
    let versions: Vec<&'static SupportedProtocolVersion> = VERSIONS
        .iter()
        .filter(|(_, v, _)| (min..=max).contains(v))
        .filter_map(|(_, _, rustls)| *rustls)
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

/// The server's certificate, read again from its files when they change: a renewed
/// certificate needs no restart (exporter-toolkit, too, re-reads them).
#[derive(Debug)]
struct ServerCert {
    tls: TlsServerConfig,
    provider: Arc<CryptoProvider>,
    files: FileWatch,
    current: Mutex<Arc<CertifiedKey>>,
}

impl ServerCert {
    fn new(tls: &TlsServerConfig, provider: &Arc<CryptoProvider>) -> Result<Self, String> {
        let files = [&tls.cert_file, &tls.key_file]
            .into_iter()
            .flatten()
            .cloned();
        let files = FileWatch::new(files);
        let key = certified_key(tls, provider)?;
        Ok(ServerCert {
            tls: tls.clone(),
            provider: Arc::clone(provider),
            files,
            current: Mutex::new(Arc::new(key)),
        })
    }
}

impl ResolvesServerCert for ServerCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let mut current = self.current.locked();
        // A change is taken once, even when the new files do not load (half-written, key and
        // certificate from different pairs): they are tried again when they change again.
        if self.files.changed() {
            match certified_key(&self.tls, &self.provider) {
                Ok(key) => {
                    tracing::info!("TLS certificate files changed; serving the new certificate");
                    *current = Arc::new(key);
                }
                Err(e) => tracing::warn!("{e}; keeping the previous certificate"),
            }
        }
        Some(Arc::clone(&current))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_reads_back_as_its_value() {
        for (name, mode) in ClientAuth::NAMES {
            assert_eq!(ClientAuth::from_name(name), Ok(mode));
            assert_eq!(mode.name(), name);
        }
        for (name, version, _) in &VERSIONS {
            assert_eq!(TlsVersion::from_name(name), Ok(*version));
            assert_eq!(version.name(), *name);
        }
        let mut versions: Vec<TlsVersion> = VERSIONS.iter().map(|(_, v, _)| *v).collect();
        versions.sort();
        // In protocol order, which min_version and max_version compare by.
        assert!(
            versions
                .iter()
                .zip(VERSIONS.iter())
                .all(|(a, (_, b, _))| a == b)
        );
    }
}

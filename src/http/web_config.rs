//! Optional protection of the HTTP endpoints, in the web config format of Prometheus' own
//! exporters (exporter-toolkit): TLS with optional client certificates, HTTP server options
//! and basic auth with bcrypt-hashed passwords.
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: /etc/devin-exporter/tls.crt
//!   key_file: /etc/devin-exporter/tls.key
//!   client_auth_type: RequireAndVerifyClientCert
//!   client_ca_file: /etc/devin-exporter/ca.crt
//!   min_version: TLS13
//! http_server_config:
//!   headers:
//!     Strict-Transport-Security: max-age=31536000
//! basic_auth_users:
//!   prometheus: $2y$10$...   # htpasswd -nBC 10 "" | tr -d ':\n'
//! ```
//!
//! A value rustls cannot honour is refused with the key that holds it, never ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// `tls_server_config`; relative paths are relative to the web config file.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsServerConfig {
    /// PEM certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
    /// NoClientCert (default), RequestClientCert, RequireAnyClientCert,
    /// VerifyClientCertIfGiven or RequireAndVerifyClientCert.
    #[serde(default)]
    pub client_auth_type: Option<String>,
    /// PEM CA certificates that client certificates are verified against.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// A client certificate must be valid for one of these DNS names or IP addresses.
    #[serde(default)]
    pub client_allowed_sans: Vec<String>,
    /// TLS12 (default) or TLS13.
    #[serde(default)]
    pub min_version: Option<String>,
    /// TLS12 or TLS13 (default).
    #[serde(default)]
    pub max_version: Option<String>,
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

/// `http_server_config`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HttpServerConfig {
    /// Offer HTTP/2 (default true); false serves HTTP/1.1 only.
    #[serde(default = "enabled")]
    pub http2: bool,
    /// Headers added to every response.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn enabled() -> bool {
    true
}

impl Default for HttpServerConfig {
    fn default() -> Self {
        HttpServerConfig {
            http2: true,
            headers: BTreeMap::new(),
        }
    }
}

/// The headers the format allows, with the values it allows (any when empty), as in
/// exporter-toolkit: these are security headers, not a way to rewrite responses.
const ALLOWED_HEADERS: &[(&str, &[&str])] = &[
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

impl HttpServerConfig {
    fn validate(&self) -> Result<(), String> {
        for (name, value) in &self.headers {
            let key = format!("http_server_config.headers.{name}");
            let Some((_, values)) = ALLOWED_HEADERS
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
            else {
                let names: Vec<&str> = ALLOWED_HEADERS.iter().map(|(n, _)| *n).collect();
                return Err(format!(
                    "{key}: this header cannot be set (allowed: {})",
                    names.join(", ")
                ));
            };
            if !values.is_empty() && !values.iter().any(|v| v.eq_ignore_ascii_case(value)) {
                return Err(format!("{key}: must be one of {}", values.join(", ")));
            }
            if axum::http::HeaderValue::from_str(value).is_err() {
                return Err(format!("{key}: not a valid header value"));
            }
        }
        Ok(())
    }

    /// Adds the configured headers to every response of `router`.
    pub fn apply(&self, router: axum::Router) -> axum::Router {
        let headers: Vec<(axum::http::HeaderName, axum::http::HeaderValue)> = self
            .headers
            .iter()
            .filter_map(|(n, v)| Some((n.parse().ok()?, v.parse().ok()?)))
            .collect();
        if headers.is_empty() {
            return router;
        }
        let headers = std::sync::Arc::new(headers);
        router.layer(axum::middleware::map_response(
            move |mut response: axum::response::Response| {
                let headers = std::sync::Arc::clone(&headers);
                async move {
                    for (name, value) in headers.iter() {
                        response.headers_mut().insert(name.clone(), value.clone());
                    }
                    response
                }
            },
        ))
    }
}

/// The web config file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// Serve HTTPS with these settings.
    #[serde(default)]
    pub tls_server_config: Option<TlsServerConfig>,
    /// HTTP options and extra headers.
    #[serde(default)]
    pub http_server_config: HttpServerConfig,
    /// User name to bcrypt hash; empty means no authentication.
    #[serde(default)]
    pub basic_auth_users: BTreeMap<String, String>,
}

impl WebConfig {
    /// Reads and checks the file named by `DEVIN_WEB_CONFIG_FILE`, TLS settings included.
    /// Errors are one line that names the variable and the key.
    pub fn load(path: &Path) -> Result<Self, String> {
        let fail = |why: String| format!("DEVIN_WEB_CONFIG_FILE={}: {why}", path.display());
        let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read ({e})")))?;
        let mut config: WebConfig = if text.trim().is_empty() {
            WebConfig::default()
        } else {
            serde_yaml_ng::from_str(&text).map_err(|e| fail(e.to_string().replace('\n', " ")))?
        };
        let base = path.parent().unwrap_or(Path::new("."));
        if let Some(tls) = &mut config.tls_server_config {
            let files = [
                ("cert_file", Some(&mut tls.cert_file)),
                ("key_file", Some(&mut tls.key_file)),
                ("client_ca_file", tls.client_ca_file.as_mut()),
            ];
            for (key, file) in files {
                let Some(file) = file else { continue };
                if file.is_relative() {
                    *file = base.join(&*file);
                }
                if !file.is_file() {
                    return Err(fail(format!(
                        "tls_server_config.{key}: {} does not exist",
                        file.display()
                    )));
                }
            }
            super::tls::server_config(tls, config.http_server_config.http2).map_err(fail)?;
        }
        config.http_server_config.validate().map_err(fail)?;
        for (user, hash) in &config.basic_auth_users {
            // A malformed hash would lock everybody out at the first scrape: refuse it now.
            if bcrypt::verify("", hash).is_err() {
                return Err(fail(format!("basic_auth_users.{user}: not a bcrypt hash")));
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_relative_tls_paths_and_checks_hashes() {
        let dir = tempfile::tempdir().unwrap();
        write_cert(dir.path());
        let hash = bcrypt::hash("secret", 4).unwrap();
        let path = dir.path().join("web.yml");
        std::fs::write(
            &path,
            format!("tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\nbasic_auth_users:\n  alice: '{hash}'\n"),
        )
        .unwrap();
        let c = WebConfig::load(&path).unwrap();
        assert_eq!(
            c.tls_server_config.unwrap().cert_file,
            dir.path().join("c.pem")
        );
        assert_eq!(c.basic_auth_users["alice"], hash);

        std::fs::write(&path, "basic_auth_users:\n  bob: plaintext\n").unwrap();
        let err = WebConfig::load(&path).unwrap_err();
        assert!(err.starts_with("DEVIN_WEB_CONFIG_FILE="), "{err}");
        assert!(
            err.ends_with("basic_auth_users.bob: not a bcrypt hash"),
            "{err}"
        );

        std::fs::write(
            &path,
            "tls_server_config:\n  cert_file: nope.pem\n  key_file: k.pem\n",
        )
        .unwrap();
        assert!(
            WebConfig::load(&path)
                .unwrap_err()
                .contains("nope.pem does not exist")
        );

        std::fs::write(&path, "unknown_key: 1\n").unwrap();
        assert!(
            WebConfig::load(&path)
                .unwrap_err()
                .contains("unknown field")
        );
    }

    /// A self-signed certificate as c.pem and its key as k.pem.
    fn write_cert(dir: &Path) {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        std::fs::write(dir.join("c.pem"), cert.cert.pem()).unwrap();
        std::fs::write(dir.join("k.pem"), cert.signing_key.serialize_pem()).unwrap();
    }

    fn load(dir: &Path, yaml: &str) -> Result<WebConfig, String> {
        let path = dir.join("web.yml");
        std::fs::write(&path, yaml).unwrap();
        WebConfig::load(&path)
    }

    #[test]
    fn accepts_every_key_of_the_format() {
        let dir = tempfile::tempdir().unwrap();
        write_cert(dir.path());
        let c = load(
            dir.path(),
            "tls_server_config:
  cert_file: c.pem
  key_file: k.pem
  client_auth_type: VerifyClientCertIfGiven
  client_ca_file: c.pem
  client_allowed_sans: [prometheus.example, 10.0.0.1]
  min_version: TLS12
  max_version: TLS13
  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305]
  curve_preferences: [X25519, CurveP256, CurveP384]
  prefer_server_cipher_suites: false
http_server_config:
  http2: false
  headers:
    X-Content-Type-Options: nosniff
    Content-Security-Policy: default-src 'none'
basic_auth_users: {}
",
        )
        .unwrap();
        let tls = c.tls_server_config.unwrap();
        assert_eq!(tls.client_ca_file, Some(dir.path().join("c.pem")));
        assert!(!c.http_server_config.http2);
        let rustls = super::super::tls::server_config(&tls, false).unwrap();
        assert!(!rustls.ignore_client_order);
        assert_eq!(rustls.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    #[test]
    fn refuses_what_cannot_be_honoured_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        write_cert(dir.path());
        let tls = "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n";
        for (extra, want) in [
            (
                "  min_version: TLS10\n",
                "tls_server_config.min_version: TLS10 is not supported",
            ),
            (
                "  max_version: TLS11\n",
                "tls_server_config.max_version: TLS11 is not supported",
            ),
            (
                "  min_version: TLS13\n  max_version: TLS12\n",
                "tls_server_config.min_version: above max_version",
            ),
            (
                "  cipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA]\n",
                "tls_server_config.cipher_suites: TLS_RSA_WITH_AES_128_CBC_SHA is not supported",
            ),
            (
                "  curve_preferences: [CurveP521]\n",
                "tls_server_config.curve_preferences: CurveP521 is not supported",
            ),
            (
                "  client_auth_type: Sometimes\n",
                "tls_server_config.client_auth_type: Sometimes is not one of",
            ),
            (
                "  client_auth_type: RequireAndVerifyClientCert\n",
                "tls_server_config.client_ca_file: required with client_auth_type RequireAndVerifyClientCert",
            ),
            (
                "  client_ca_file: c.pem\n",
                "tls_server_config.client_ca_file: set, but client_auth_type is NoClientCert",
            ),
            (
                "  client_auth_type: RequireAnyClientCert\n  client_allowed_sans: [mailto:a@b.c]\n",
                "tls_server_config.client_allowed_sans: mailto:a@b.c: only DNS names and IP addresses",
            ),
            (
                "  client_ca_file: nope.pem\n",
                "tls_server_config.client_ca_file: ",
            ),
            (
                "  session_tickets: true\n",
                "unknown field `session_tickets`",
            ),
        ] {
            let err = load(dir.path(), &format!("{tls}{extra}")).unwrap_err();
            assert!(err.starts_with("DEVIN_WEB_CONFIG_FILE="), "{err}");
            assert!(err.contains(want), "{extra}: {err}");
            assert_eq!(err.lines().count(), 1, "{err}");
        }
        for (yaml, want) in [
            (
                "http_server_config:\n  headers:\n    Server: devin\n",
                "http_server_config.headers.Server: this header cannot be set",
            ),
            (
                "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
                "http_server_config.headers.X-Frame-Options: must be one of deny, sameorigin",
            ),
            (
                "http_server_config:\n  http3: true\n",
                "unknown field `http3`",
            ),
        ] {
            let err = load(dir.path(), yaml).unwrap_err();
            assert!(err.contains(want), "{yaml}: {err}");
        }
    }
}

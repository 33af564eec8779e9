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

use super::tls::{self, TlsServerConfig};

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

/// `rate_limit`: a token bucket over every request to the server.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Time between two requests (`100ms`, `1s`); 0 turns the limit off.
    pub interval: String,
    /// Requests allowed at once beyond the steady rate.
    pub burst: u32,
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
    /// Requests beyond this rate are answered 429.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
}

impl RateLimit {
    /// The interval, or why it is not one; `None` when the limit is off.
    pub fn period(&self) -> Result<Option<std::time::Duration>, String> {
        let text = self.interval.trim();
        if text == "0" {
            return Ok(None);
        }
        let d = humantime::parse_duration(text).map_err(|_| {
            format!("rate_limit.interval: {text:?} is not a duration such as 100ms or 1s")
        })?;
        if d.is_zero() {
            return Ok(None);
        }
        if self.burst == 0 {
            return Err("rate_limit.burst: must be at least 1".to_string());
        }
        Ok(Some(d))
    }

    /// Answers 429 to requests of `router` beyond the configured rate.
    pub fn apply(&self, router: axum::Router) -> axum::Router {
        let Ok(Some(period)) = self.period() else {
            return router;
        };
        let burst = std::num::NonZeroU32::new(self.burst).unwrap_or(std::num::NonZeroU32::MIN);
        let Some(quota) = governor::Quota::with_period(period) else {
            return router;
        };
        let limiter = std::sync::Arc::new(governor::RateLimiter::direct(quota.allow_burst(burst)));
        router.layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let limiter = std::sync::Arc::clone(&limiter);
                async move {
                    if limiter.check().is_err() {
                        return axum::response::IntoResponse::into_response((
                            axum::http::StatusCode::TOO_MANY_REQUESTS,
                            "too many requests\n",
                        ));
                    }
                    next.run(request).await
                }
            },
        ))
    }
}

/// Why the web config file cannot be used: one line that names the variable, the file and
/// the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    /// The file cannot be read.
    #[error("DEVIN_WEB_CONFIG_FILE={}: cannot read ({source})", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The file is not YAML of the format (an unknown key, an unknown name).
    #[error("DEVIN_WEB_CONFIG_FILE={}: {}", path.display(), source.to_string().replace('\n', " "))]
    Yaml {
        /// The file.
        path: PathBuf,
        /// What the parser said, with the key and line.
        source: serde_yaml_ng::Error,
    },
    /// A value cannot be honoured: a missing file, a bad hash, a setting rustls refuses.
    #[error("DEVIN_WEB_CONFIG_FILE={}: {why}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key and what is wrong with its value.
        why: String,
    },
}

impl WebConfig {
    /// Reads and checks the file named by `DEVIN_WEB_CONFIG_FILE`, TLS settings included.
    pub fn load(path: &Path) -> Result<Self, WebConfigError> {
        let path_buf = || path.to_path_buf();
        let fail = |why: String| WebConfigError::Invalid {
            path: path_buf(),
            why,
        };
        let text = std::fs::read_to_string(path).map_err(|source| WebConfigError::Read {
            path: path_buf(),
            source,
        })?;
        let mut config: WebConfig = if text.trim().is_empty() {
            WebConfig::default()
        } else {
            serde_yaml_ng::from_str(&text).map_err(|source| WebConfigError::Yaml {
                path: path_buf(),
                source,
            })?
        };
        let base = path.parent().unwrap_or(Path::new("."));
        if let Some(tls) = &mut config.tls_server_config {
            let files = [
                ("cert_file", tls.cert_file.as_mut()),
                ("key_file", tls.key_file.as_mut()),
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
            tls::server_config(tls, config.http_server_config.http2).map_err(fail)?;
        }
        config.http_server_config.validate().map_err(fail)?;
        if let Some(limit) = &config.rate_limit {
            limit.period().map_err(fail)?;
        }
        for (user, hash) in &config.basic_auth_users {
            // A malformed hash would lock everybody out at the first scrape, and a costly one
            // hang each check: refuse them now, by reading the hash rather than running it.
            super::auth::hash::cost(hash)
                .map_err(|why| fail(format!("basic_auth_users.{user}: {why}")))?;
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
            Some(dir.path().join("c.pem"))
        );
        assert_eq!(c.basic_auth_users["alice"], hash);

        std::fs::write(&path, "basic_auth_users:\n  bob: plaintext\n").unwrap();
        let err = WebConfig::load(&path).unwrap_err().to_string();
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
                .to_string()
                .contains("nope.pem does not exist")
        );

        std::fs::write(&path, "unknown_key: 1\n").unwrap();
        assert!(
            WebConfig::load(&path)
                .unwrap_err()
                .to_string()
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
        WebConfig::load(&path).map_err(|e| e.to_string())
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
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: c.pem
  client_allowed_sans: [prometheus.example, 10.0.0.1, ops@example.com, spiffe://example/prometheus]
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
rate_limit:
  interval: 100ms
  burst: 20
",
        )
        .unwrap();
        let tls = c.tls_server_config.unwrap();
        assert_eq!(tls.client_ca_file, Some(dir.path().join("c.pem")));
        assert!(!c.http_server_config.http2);
        let rustls = tls::server_config(&tls, false).unwrap();
        assert!(!rustls.ignore_client_order);
        assert_eq!(rustls.alpn_protocols, vec![b"http/1.1".to_vec()]);
        let limit = c.rate_limit.unwrap();
        assert_eq!(
            limit.period(),
            Ok(Some(std::time::Duration::from_millis(100)))
        );

        // Certificate, key and client CA inline instead of files; the key stays out of Debug.
        let cert = std::fs::read_to_string(dir.path().join("c.pem")).unwrap();
        let key = std::fs::read_to_string(dir.path().join("k.pem")).unwrap();
        let indent = |pem: &str| {
            pem.lines()
                .map(|l| format!("    {l}\n"))
                .collect::<String>()
        };
        let c = load(
            dir.path(),
            &format!(
                "tls_server_config:\n  cert: |\n{}  key: |\n{}  client_ca: |\n{}  client_auth_type: RequireAndVerifyClientCert\n",
                indent(&cert),
                indent(&key),
                indent(&cert)
            ),
        )
        .unwrap();
        let tls = c.tls_server_config.unwrap();
        assert!(!format!("{tls:?}").contains("PRIVATE KEY"));
        assert!(tls::server_config(&tls, true).is_ok());
    }
}

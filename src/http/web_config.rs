//! Optional protection of the HTTP endpoints, configured like Prometheus' own exporters'
//! web config file: TLS from cert and key files, and basic auth with bcrypt-hashed passwords.
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: /etc/devin-exporter/tls.crt
//!   key_file: /etc/devin-exporter/tls.key
//! basic_auth_users:
//!   prometheus: $2y$10$...   # htpasswd -nBC 10 "" | tr -d ':\n'
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// TLS files; relative paths are relative to the web config file.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsServerConfig {
    /// PEM certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
}

/// The web config file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// Serve HTTPS with these files.
    #[serde(default)]
    pub tls_server_config: Option<TlsServerConfig>,
    /// User name to bcrypt hash; empty means no authentication.
    #[serde(default)]
    pub basic_auth_users: BTreeMap<String, String>,
}

impl WebConfig {
    /// Reads and checks the file named by `DEVIN_WEB_CONFIG_FILE`. Errors are one line that
    /// names the variable.
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
            for file in [&mut tls.cert_file, &mut tls.key_file] {
                if file.is_relative() {
                    *file = base.join(&*file);
                }
                if !file.is_file() {
                    return Err(fail(format!("{} does not exist", file.display())));
                }
            }
        }
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
        std::fs::write(dir.path().join("c.pem"), "x").unwrap();
        std::fs::write(dir.path().join("k.pem"), "x").unwrap();
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
}

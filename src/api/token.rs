//! The API token, from the environment or from a file that is re-read when it changes.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::config::{Secret, TokenSource};
use crate::lock::Locked;
use crate::watch::FileWatch;

/// Supplies the current token; rotation of a token file needs no restart.
pub struct TokenProvider {
    file: Option<(PathBuf, FileWatch)>,
    token: Mutex<Secret>,
}

fn read_token(path: &Path) -> Result<Secret, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("DEVIN_API_TOKEN_FILE={}: cannot read ({e})", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!(
            "DEVIN_API_TOKEN_FILE={}: file is empty",
            path.display()
        ));
    }
    Ok(Secret::new(token))
}

impl TokenProvider {
    /// Loads the token once; a missing or empty token file is a start-up error.
    pub fn new(source: &TokenSource) -> Result<Self, String> {
        let (token, file) = match source {
            TokenSource::Value(s) => (s.clone(), None),
            TokenSource::File(p) => (
                read_token(p)?,
                Some((p.clone(), FileWatch::new([p.clone()]))),
            ),
        };
        Ok(TokenProvider {
            file,
            token: Mutex::new(token),
        })
    }

    /// The token to send now, re-reading the file if it changed since the last look.
    pub fn current(&self) -> Secret {
        let mut cached = self.token.locked();
        if let Some((path, watch)) = &self.file {
            if watch.changed() {
                match read_token(path) {
                    Ok(token) => {
                        if token != *cached {
                            tracing::info!(file = %path.display(), "API token file changed; using the new token");
                        }
                        *cached = token;
                    }
                    // Keep the old token: a half-written file must not break collection.
                    Err(e) => tracing::warn!("{e}; keeping the previous token"),
                }
            }
        }
        cached.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::watch::RECHECK;

    #[tokio::test(start_paused = true)]
    async fn file_is_reread_when_changed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "cog_first\n").unwrap();
        let provider = TokenProvider::new(&TokenSource::File(path.clone())).unwrap();
        assert_eq!(provider.current().expose(), "cog_first");
        std::fs::write(&path, "  cog_second_longer\n").unwrap();
        tokio::time::advance(RECHECK).await;
        assert_eq!(provider.current().expose(), "cog_second_longer");
        // An emptied file (mid-rotation) keeps the last good token.
        std::fs::write(&path, "").unwrap();
        tokio::time::advance(RECHECK).await;
        assert_eq!(provider.current().expose(), "cog_second_longer");
    }

    #[test]
    fn missing_or_empty_file_fails_with_the_variable_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent");
        let err = TokenProvider::new(&TokenSource::File(path.clone()))
            .err()
            .unwrap();
        assert!(err.starts_with("DEVIN_API_TOKEN_FILE="), "{err}");
        std::fs::write(&path, " \n").unwrap();
        let err = TokenProvider::new(&TokenSource::File(path)).err().unwrap();
        assert!(err.ends_with("file is empty"), "{err}");
    }
}

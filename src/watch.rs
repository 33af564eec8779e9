//! Notices that files changed (a rotated token, a renewed certificate) without a watcher
//! thread: by their size and modification time, looked at no more than once per [`RECHECK`]
//! on tokio's clock (so tests move time instead of sleeping).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::lock::Locked;
use tokio::time::Instant;

/// How often the files are looked at, at most.
pub const RECHECK: Duration = Duration::from_secs(1);

/// Size and modification time of a file.
type Stamp = (SystemTime, u64);

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Some files and what was last seen of them.
#[derive(Debug)]
pub struct FileWatch {
    paths: Vec<PathBuf>,
    seen: Mutex<Seen>,
}

#[derive(Debug)]
struct Seen {
    stamps: Vec<Option<Stamp>>,
    checked: Instant,
}

impl FileWatch {
    /// Watches `paths`, as they are now.
    pub fn new(paths: impl IntoIterator<Item = PathBuf>) -> Self {
        let paths: Vec<PathBuf> = paths.into_iter().collect();
        let stamps = paths.iter().map(|p| stamp(p)).collect();
        FileWatch {
            paths,
            seen: Mutex::new(Seen {
                stamps,
                checked: Instant::now(),
            }),
        }
    }

    /// True once for each change: when [`RECHECK`] has passed since the last look and a file
    /// now has another size or modification time than last seen. A file that is missing for
    /// the moment (being replaced) is no change: it counts when it is back, if different.
    pub fn changed(&self) -> bool {
        let mut seen = self.seen.locked();
        if seen.checked.elapsed() < RECHECK {
            return false;
        }
        seen.checked = Instant::now();
        let mut changed = false;
        for (path, last) in self.paths.iter().zip(seen.stamps.iter_mut()) {
            if let Some(now) = stamp(path) {
                if *last != Some(now) {
                    *last = Some(now);
                    changed = true;
                }
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_change_counts_once_and_no_sooner_than_the_recheck() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "one").unwrap();
        let watch = FileWatch::new([a.clone(), b.clone()]);
        tokio::time::advance(RECHECK).await;
        assert!(!watch.changed(), "nothing changed");
        std::fs::write(&a, "three").unwrap();
        assert!(!watch.changed(), "looked less than RECHECK ago");
        tokio::time::advance(RECHECK).await;
        assert!(watch.changed());
        tokio::time::advance(RECHECK).await;
        assert!(!watch.changed(), "the same change counts once");
        // A file that appears is a change; one that goes away is not.
        std::fs::write(&b, "new").unwrap();
        tokio::time::advance(RECHECK).await;
        assert!(watch.changed());
        std::fs::remove_file(&a).unwrap();
        tokio::time::advance(RECHECK).await;
        assert!(!watch.changed());
    }
}

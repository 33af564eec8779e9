//! Embeds the source revision (`DEVIN_EXPORTER_REVISION` from the environment, e.g. a Docker
//! build argument, else `git rev-parse`) for `devin_exporter_build_info`, and tells the tests
//! which external tools are installed.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-env-changed=DEVIN_EXPORTER_REVISION");
    println!("cargo::rerun-if-changed=.git/HEAD");
    println!("cargo::rerun-if-changed=.git/refs/heads");
    let revision = std::env::var("DEVIN_EXPORTER_REVISION")
        .ok()
        .filter(|r| !r.trim().is_empty())
        .or_else(|| {
            let out = Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
                .filter(|r| !r.is_empty())
        })
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo::rustc-env=DEVIN_EXPORTER_REVISION={revision}");
    tool_cfgs();
}

/// The external tools some tests run, each with the cfg under which those tests run (else
/// libtest reports them as ignored, with what to install).
const TOOLS: [(&str, &str); 6] = [
    ("prometheus", "has_prometheus"),
    ("promtool", "has_promtool"),
    ("prometheus-alertmanager", "has_alertmanager"),
    ("amtool", "has_amtool"),
    ("kubectl", "has_kubectl"),
    ("hadolint", "has_hadolint"),
];

/// Sets the cfg of each tool on PATH, and of every tool with `DEVIN_E2E_REQUIRED=1` (as in
/// CI), where a missing one fails its tests instead.
fn tool_cfgs() {
    println!("cargo::rerun-if-env-changed=PATH");
    println!("cargo::rerun-if-env-changed=DEVIN_E2E_REQUIRED");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let required = std::env::var("DEVIN_E2E_REQUIRED").as_deref() == Ok("1");
    let mut missing = false;
    for (tool, cfg) in TOOLS {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        let found = find_on_path(tool, &path);
        // A tool removed later runs this script again.
        if let Some(found) = &found {
            println!("cargo::rerun-if-changed={}", found.display());
        }
        missing |= found.is_none();
        if found.is_some() || required {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
    // A tool installed later: a PATH directory changes. Only while one is missing, as any
    // change there (a package upgrade) runs this script and rebuilds the crate.
    if missing && !required {
        for dir in watched_dirs(&path) {
            println!("cargo::rerun-if-changed={}", dir.display());
        }
    }
}

/// The first executable file named `tool` in the directories of `path` (a PATH value), as
/// the shell's `command -v` finds it.
fn find_on_path(tool: &str, path: &OsStr) -> Option<PathBuf> {
    std::env::split_paths(path)
        .map(|dir| dir.join(tool))
        .find(|file| is_executable(file))
}

#[cfg(unix)]
fn is_executable(file: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(file).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(file: &Path) -> bool {
    file.is_file()
}

/// The existing absolute directories of `path`, each once: cargo scans a watched directory
/// whole, so a relative entry (`.`, the crate itself) is left out.
fn watched_dirs(path: &OsStr) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for dir in std::env::split_paths(path) {
        if dir.is_absolute() && dir.is_dir() && !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs
}

// Compiled only where the integration tests include this file as a module.
#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A file `name` in `dir` with permission bits `mode`.
    fn file(dir: &Path, name: &str, mode: u32) {
        let path = dir.join(name);
        std::fs::write(&path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_tool_is_the_first_executable_file_of_that_name_on_path() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        file(a.path(), "promtool", 0o644);
        file(b.path(), "promtool", 0o755);
        file(a.path(), "amtool", 0o755);
        file(b.path(), "amtool", 0o755);
        std::fs::create_dir(a.path().join("kubectl")).unwrap();
        let path = std::env::join_paths([a.path(), b.path()]).unwrap();
        let found = |tool| find_on_path(tool, &path);
        // Not executable in a: b's.
        assert_eq!(found("promtool"), Some(b.path().join("promtool")));
        assert_eq!(found("amtool"), Some(a.path().join("amtool")));
        // A directory is no tool, nor is a name on no directory.
        assert_eq!(found("kubectl"), None);
        assert_eq!(found("hadolint"), None);
        assert_eq!(find_on_path("amtool", OsStr::new("")), None);
    }

    #[test]
    fn only_absolute_existing_directories_are_watched_each_once() {
        let a = tempfile::tempdir().unwrap();
        let gone = a.path().join("gone");
        let path =
            std::env::join_paths([a.path(), Path::new("."), Path::new("bin"), &gone, a.path()])
                .unwrap();
        assert_eq!(watched_dirs(&path), vec![a.path().to_path_buf()]);
    }
}

//! The web config files of `testdata/web_config`, through the loader the server uses: each
//! `*.good.yml` loads, and each `*.bad.yml` is refused with exactly the line its first line
//! gives as `# error: ...` (after `DEVIN_WEB_CONFIG_FILE=<file>: `; `{dir}` stands for the
//! directory). The certificate and keys beside them are self-signed test files.

use std::path::{Path, PathBuf};

use devin_exporter::http::web_config::WebConfig;

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/testdata/web_config")
}

/// What loading `file` should give: `None` for a good file, the error line for a bad one.
fn expected(file: &Path, dir: &Path) -> Option<String> {
    let name = file.file_name().unwrap().to_string_lossy();
    if name.ends_with(".good.yml") {
        return None;
    }
    assert!(
        name.ends_with(".bad.yml"),
        "{name}: neither .good.yml nor .bad.yml"
    );
    let text = std::fs::read_to_string(file).unwrap();
    let want = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("# error: "))
        .unwrap_or_else(|| panic!("{name}: the first line must be `# error: ...`"));
    Some(format!(
        "DEVIN_WEB_CONFIG_FILE={}: {}",
        file.display(),
        want.replace("{dir}", &dir.display().to_string())
    ))
}

#[test]
fn good_files_load_and_bad_ones_fail_with_their_error() {
    let dir = testdata();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    let (mut good, mut bad) = (0, 0);
    // Every file is checked before the test fails, so that one run lists every mismatch.
    let mut mismatches = Vec::new();
    for file in &files {
        let got = WebConfig::load(file).err().map(|e| e.to_string());
        let want = expected(file, &dir);
        if want.is_some() {
            bad += 1
        } else {
            good += 1
        }
        if got != want {
            mismatches.push(format!(
                "{}\n  want: {want:?}\n  got:  {got:?}",
                file.display()
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    assert!(good >= 10 && bad >= 20, "{good} good and {bad} bad files");
}

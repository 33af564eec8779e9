//! The binary as an operator meets it: --help, --version, configuration errors, and logs
//! that never carry the token.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::procs::{blocking_get, exporter_bin, start_simulator};

fn run(env: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let out = Command::new(exporter_bin())
        .env_clear()
        .envs(env.iter().copied())
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The exporter binary on a free port with `token` against `sim`, its whole log captured;
/// returns once /healthz answers.
fn spawn_exporter(
    sim: &common::procs::Sim,
    token: &str,
    rust_log: &str,
) -> (std::process::Child, String) {
    let listen = format!("127.0.0.1:{}", common::procs::free_port());
    let child = Command::new(exporter_bin())
        .env_clear()
        .env("DEVIN_API_TOKEN", token)
        .env("DEVIN_ORG_IDS", sim.orgs.join(","))
        .env("DEVIN_API_URL", &sim.url)
        .env("DEVIN_LISTEN_ADDRESS", &listen)
        .env("RUST_LOG", rust_log)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ready = (0..100).any(|_| {
        let up = common::procs::try_get(&format!("http://{listen}/healthz")).is_some();
        if !up {
            std::thread::sleep(Duration::from_millis(100));
        }
        up
    });
    assert!(ready, "exporter up");
    (child, listen)
}

#[test]
fn help_and_version() {
    let (code, out, _) = run(&[], &["--version"]);
    assert_eq!(code, 0);
    assert_eq!(
        out.trim(),
        format!("devin-exporter {}", env!("CARGO_PKG_VERSION"))
    );
    let (code, out, _) = run(&[], &["--help"]);
    assert_eq!(code, 0);
    for needle in ["--demo", "simulate", "healthcheck"] {
        assert!(out.contains(needle), "--help mentions {needle}");
    }
    // Every variable of the README's configuration table is in --help too.
    let readme = std::fs::read_to_string("README.md").unwrap();
    let variables: Vec<&str> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("| `DEVIN_"))
        .filter_map(|l| l.split('`').next())
        .collect();
    assert!(variables.len() >= 19, "{variables:?}");
    for v in variables {
        assert!(
            out.contains(&format!("DEVIN_{v} ")),
            "--help lists DEVIN_{v}"
        );
    }
}

#[test]
fn bad_configuration_stops_with_one_line_and_exit_code_2() {
    let base = [("DEVIN_API_TOKEN", "cog_x"), ("DEVIN_ORG_IDS", "org-a")];
    for (var, value, want) in [
        (
            "DEVIN_PAGE_SIZE",
            "500",
            "error: DEVIN_PAGE_SIZE=500: must be between 1 and 200",
        ),
        (
            "DEVIN_SCRAPE_TIMEOUT",
            "later",
            "error: DEVIN_SCRAPE_TIMEOUT=later: expected a duration such as 30s, 2m or 1h",
        ),
        (
            "DEVIN_API_TOKEN_FILE",
            "/nonexistent/token",
            "error: DEVIN_API_TOKEN and DEVIN_API_TOKEN_FILE are both set: set only one",
        ),
    ] {
        let mut env = base.to_vec();
        env.push((var, value));
        let (code, _, err) = run(&env, &[]);
        assert_eq!(code, 2, "{var}");
        assert_eq!(err.trim(), want);
    }
    let (code, _, err) = run(
        &[
            ("DEVIN_ORG_IDS", "org-a"),
            ("DEVIN_API_TOKEN_FILE", "/nonexistent/token"),
        ],
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        err.trim()
            .starts_with("error: DEVIN_API_TOKEN_FILE=/nonexistent/token: cannot read"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn the_token_never_reaches_a_log_line() {
    // The simulator rejects this token, so every request fails with 401 and gets logged.
    let sim = start_simulator(&["--orgs", "2", "--sessions-per-org", "10"]);
    let token = "cog_super_secret_value_0123456789";
    let (mut child, listen) = spawn_exporter(&sim, token, "trace");
    let body = blocking_get(&format!("http://{listen}/metrics"));
    assert!(
        body.contains("devin_up{org_id=\"") && body.contains("} 0"),
        "orgs fail with 401"
    );
    let landing = blocking_get(&format!("http://{listen}/"));
    let _ = child.kill();
    let _ = child.wait();
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(
        logs.contains("HTTP 401"),
        "the failure is logged with its status"
    );
    assert!(logs.lines().count() > 20, "trace logging was on");
    for text in [&logs, &body, &landing] {
        assert!(!text.contains(token), "token leaked");
        assert!(!text.contains("super_secret"), "part of the token leaked");
    }
}

#[test]
fn sigterm_shuts_down_gracefully() {
    let sim = start_simulator(&["--orgs", "1", "--sessions-per-org", "10"]);
    let (mut child, listen) = spawn_exporter(&sim, &sim.token, "info");
    blocking_get(&format!("http://{listen}/metrics"));
    // SAFETY: signalling our own child process by its pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "still running after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status:?}");
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(logs.contains("shutting down"), "{logs}");
}

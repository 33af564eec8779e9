//! The binary as an operator meets it: --help, --version, configuration errors, and logs
//! that never carry the token.

use crate::common;

use std::process::Stdio;
use std::sync::mpsc::Receiver;

use common::procs::{
    Proc, Ran, blocking_get, exporter_command, first_line, simulator,
    start_exporter_process_with_args, temp_file,
};
use devin_exporter::config;

fn run(env: &[(&str, &str)], args: &[&str]) -> Ran {
    common::procs::run(&mut exporter_command(env, args))
}

/// The exporter binary on port 0 with `token` against `sim`; see [`start_logged`].
fn spawn_exporter(sim: &common::procs::Sim, token: &str, rust_log: &str) -> (Proc, String, Log) {
    let orgs = sim.orgs.join(",");
    start_logged(&[
        ("DEVIN_API_TOKEN", token),
        ("DEVIN_ORG_IDS", &orgs),
        ("DEVIN_API_URL", &sim.url),
        ("RUST_LOG", rust_log),
    ])
}

/// Its `/metrics` and `/` pages, then its whole log once stopped: (log, /metrics, /).
fn scrape_and_stop((child, listen, log): (Proc, String, Log)) -> (String, String, String) {
    let body = blocking_get(&format!("http://{listen}/metrics"));
    let landing = blocking_get(&format!("http://{listen}/"));
    drop(child);
    (log.finish(), body, landing)
}

/// Asserts that no `secret` shows, in any case, in the logs, `/metrics` or `/` of
/// [`scrape_and_stop`].
fn assert_hidden((logs, body, landing): &(String, String, String), secrets: &[&str]) {
    for (what, text) in [("logs", logs), ("/metrics", body), ("/", landing)] {
        let text = text.to_lowercase();
        for secret in secrets {
            let leaked = text.contains(&secret.to_lowercase());
            assert!(!leaked, "{secret} leaked into {what}");
        }
    }
}

/// Log lines of a process: those read so far, and the rest to come.
struct Log {
    seen: Vec<String>,
    rx: Receiver<String>,
}

impl Log {
    /// The whole log, once the process has ended.
    fn finish(self) -> String {
        self.seen
            .into_iter()
            .chain(self.rx)
            .map(|l| l + "\n")
            .collect()
    }
}

/// The exporter binary on port 0 with `env`; returns it, the address its (text) log says it
/// bound, and that log (read on when the process has ended).
fn start_logged(env: &[(&str, &str)]) -> (Proc, String, Log) {
    let mut env = env.to_vec();
    env.push(("DEVIN_LISTEN_ADDRESS", "127.0.0.1:0"));
    let (child, rx) = spawn_with_log(&env, &[]);
    let mut seen = Vec::new();
    let addr = first_line(&rx, "the address it listens on", |line| {
        seen.push(line.to_string());
        let (_, rest) = line.split_once(" listening addr=")?;
        rest.split_whitespace().next().map(String::from)
    });
    (child, addr, Log { seen, rx })
}

#[test]
fn help_and_version() {
    let out = run(&[], &["--version"]);
    assert_eq!(out.code, 0);
    assert_eq!(
        out.stdout.trim(),
        format!("devin-exporter {}", env!("CARGO_PKG_VERSION"))
    );
    let Ran {
        code, stdout: out, ..
    } = run(&[], &["--help"]);
    assert_eq!(code, 0);
    for needle in ["--demo", "simulate", "healthcheck"] {
        assert!(out.contains(needle), "--help mentions {needle}");
    }
    // The configuration text comes from the settings table, whole.
    assert!(out.contains(&config::help()), "{out}");
}

/// The rows of the README's configuration table: variable, meaning, default.
fn readme_settings() -> Vec<(String, String, String)> {
    common::readme::table(&["variable", "meaning", "default"])
        .into_iter()
        .map(|cells| {
            let [name, meaning, default] = <[String; 3]>::try_from(cells).expect("three cells");
            (name.trim_matches('`').to_string(), meaning, default)
        })
        .collect()
}

#[test]
fn the_readme_table_is_the_settings_table() {
    let readme = readme_settings();
    let table: Vec<(String, String, String)> = config::all_settings()
        .map(|s| (s.name.to_string(), s.help.to_string(), s.default.markdown()))
        .collect();
    for (row, want) in readme.iter().zip(&table) {
        assert_eq!(
            row, want,
            "README row, want | `{}` | {} | {} |",
            want.0, want.1, want.2
        );
    }
    assert_eq!(readme.len(), table.len(), "{readme:?}");
}

/// A configuration the binary refuses: its environment, exit code and the one line it
/// prints, whole or (ending in `...`) its start.
fn assert_refused(env: &[(&str, &str)], code: i32, want: &str) {
    let out = run(env, &[]);
    let err = out.stderr.trim();
    assert_eq!(out.code, code, "{env:?}: {err}");
    match want.strip_suffix("...") {
        Some(start) => assert!(err.starts_with(start), "{env:?}: {err}"),
        None => assert_eq!(err, want, "{env:?}"),
    }
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn bad_configuration_stops_with_one_line_and_exit_code_2() {
    let base = [("DEVIN_API_TOKEN", "cog_x"), ("DEVIN_ORG_IDS", "org-a")];
    for (setting, want) in [
        (
            "DEVIN_PAGE_SIZE=500",
            "error: DEVIN_PAGE_SIZE=500: must be between 1 and 200",
        ),
        (
            "DEVIN_SCRAPE_TIMEOUT=later",
            "error: DEVIN_SCRAPE_TIMEOUT=later: expected a duration such as 30s, 2m or 1h",
        ),
        (
            "DEVIN_API_TOKEN_FILE=/nonexistent/token",
            "error: DEVIN_API_TOKEN and DEVIN_API_TOKEN_FILE are both set: set only one",
        ),
        // Credentials in a malformed URL are not echoed.
        (
            "DEVIN_API_URL=https://proxyuser:hunter2@api.example:port",
            "error: DEVIN_API_URL=https://<redacted>@api.example:port: not a URL (invalid port number)",
        ),
    ] {
        let (var, value) = setting.split_once('=').unwrap();
        assert_refused(&[base[0], base[1], (var, value)], 2, want);
    }
}

#[test]
fn a_costly_bcrypt_hash_stops_start_up_and_check_with_one_line() {
    // Cost 31 is 2^31 rounds: a start-up that verified it would run for days.
    let hash = "$2b$31$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";
    let (_dir, web) = temp_file(
        "web.yml",
        &format!("basic_auth_users:\n  prometheus: '{hash}'\n"),
    );
    let env = [
        ("DEVIN_API_TOKEN", "cog_x"),
        ("DEVIN_ORG_IDS", "org-a"),
        ("DEVIN_WEB_CONFIG_FILE", web.to_str().unwrap()),
    ];
    for args in [&[][..], &["check"]] {
        let out = run(&env, args);
        let err = out.stderr.trim();
        assert_eq!(out.code, 2, "{args:?}: {err}");
        assert!(err.starts_with("error: DEVIN_WEB_CONFIG_FILE="), "{err}");
        assert!(
            err.ends_with(
                "basic_auth_users.prometheus: bcrypt cost 31 is above 14, the most accepted"
            ),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[test]
fn an_address_in_use_stops_with_one_line_and_exit_code_1() {
    // Not a configuration error: the same configuration starts once the port is free.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    assert_refused(
        &[
            ("DEVIN_API_TOKEN", "cog_x"),
            ("DEVIN_ORG_IDS", "org-a"),
            ("DEVIN_API_URL", "http://127.0.0.1:9"),
            ("DEVIN_LISTEN_ADDRESS", &addr),
        ],
        1,
        &format!("error: DEVIN_LISTEN_ADDRESS={addr}: cannot bind (..."),
    );
}

#[test]
fn the_token_never_reaches_a_log_line() {
    // The simulator rejects this token, so every request fails with 401 and gets logged.
    let sim = simulator("--orgs 2 --sessions-per-org 10");
    let token = "cog_super_secret_value_0123456789";
    let pages = scrape_and_stop(spawn_exporter(&sim, token, "trace"));
    let (logs, body, _) = &pages;
    assert!(
        body.contains("devin_up{org_id=\"") && body.contains("} 0"),
        "orgs fail with 401"
    );
    assert!(logs.contains("HTTP 401"), "logged with its status");
    assert!(logs.lines().count() > 20, "trace logging was on");
    assert_hidden(&pages, &[token, "super_secret"]);
}

#[test]
fn sigterm_shuts_down_gracefully() {
    let sim = simulator("--orgs 1 --sessions-per-org 10");
    let (mut proc, listen, log) = spawn_exporter(&sim, &sim.token, "info");
    blocking_get(&format!("http://{listen}/metrics"));
    let status = proc.terminate();
    assert!(status.success(), "exit status {status:?}");
    let logs = log.finish();
    assert!(logs.contains("shutting down"), "{logs}");
}

/// Answers with `status` and a `detail` that echoes the request's `Authorization` header, a
/// token-like string, and the token alone: upper-cased, its first 16 characters, and written
/// with JSON escapes, as a careless proxy or API might.
struct EchoAuthorization(u16);

impl wiremock::Respond for EchoAuthorization {
    fn respond(&self, request: &wiremock::Request) -> wiremock::ResponseTemplate {
        let auth = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let token = auth.strip_prefix("Bearer ").unwrap_or("");
        let upper = token.to_uppercase();
        let prefix: String = token.chars().take(16).collect();
        let escaped: String = token
            .chars()
            .map(|c| format!("\\u{:04x}", c as u32))
            .collect();
        let also = format!("also saw cog_echoed_elsewhere_42, {upper}, {prefix}..., {escaped}");
        // Written by hand: a JSON encoder would not escape the token.
        let detail = serde_json::to_string(&format!("rejected Authorization: {auth} ({also})"));
        let detail = detail.unwrap().replace("\\\\u", "\\u");
        wiremock::ResponseTemplate::new(self.0)
            .set_body_string(format!(r#"{{"detail": {detail}}}"#))
    }
}

/// The exporter binary against `api_url` with `token` and orgs `org-401,org-500`: its whole
/// log at trace level, one `/metrics` body and the landing page.
async fn run_against(api_url: &str, token: &str) -> (String, String, String) {
    let (api_url, token) = (api_url.to_string(), token.to_string());
    tokio::task::spawn_blocking(move || {
        scrape_and_stop(start_logged(&[
            ("DEVIN_API_TOKEN", &token),
            ("DEVIN_ORG_IDS", "org-401,org-500"),
            ("DEVIN_API_URL", &api_url),
            ("DEVIN_SCRAPE_TIMEOUT", "2s"),
            ("RUST_LOG", "trace"),
        ]))
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_token_echoed_by_the_api_is_redacted_everywhere() {
    use wiremock::matchers::path;
    let api = wiremock::MockServer::start().await;
    for (org, status) in [("org-401", 401), ("org-500", 500)] {
        wiremock::Mock::given(path(format!("/v3/organizations/{org}/sessions")))
            .respond_with(EchoAuthorization(status))
            .mount(&api)
            .await;
    }
    // Not cog_-shaped: only redacting the token itself hides it.
    let token = "tok-Sup3rS3cret-0123456789";
    let pages = run_against(&api.uri(), token).await;
    let (logs, _, landing) = &pages;
    // The API did receive the token, and echoed it back.
    let received = api.received_requests().await.unwrap();
    let bearer = format!("Bearer {token}");
    assert!(
        received.iter().any(|r| r
            .headers
            .get("authorization")
            .is_some_and(|v| v.as_bytes() == bearer.as_bytes())),
        "the token was sent"
    );
    assert!(logs.contains("HTTP 401"), "{logs}");
    assert!(logs.contains("HTTP 500"), "{logs}");
    assert!(
        landing.contains("rejected Authorization: Bearer &lt;redacted&gt;"),
        "{landing}"
    );
    assert_hidden(&pages, &[token, &token[..16], "Sup3rS3cret", "cog_echoed"]);
}

#[tokio::test]
async fn credentials_in_the_api_url_are_redacted() {
    use wiremock::matchers::path;
    let api = wiremock::MockServer::start().await;
    wiremock::Mock::given(path("/v3/organizations/org-401/sessions"))
        .respond_with(EchoAuthorization(401))
        .mount(&api)
        .await;
    let with_credentials = api.uri().replace("http://", "http://proxyuser:hunter2@");
    let pages = run_against(&with_credentials, "cog_x").await;
    let (logs, _, landing) = &pages;
    assert!(logs.contains("starting"), "{logs}");
    assert!(
        landing.contains("http://&lt;redacted&gt;@127.0.0.1:"),
        "{landing}"
    );
    // The credentials go to the API as basic auth; echoed, they are redacted too.
    let basic = "cHJveHl1c2VyOmh1bnRlcjI"; // base64("proxyuser:hunter2")
    assert_hidden(&pages, &["hunter2", basic]);
}

#[test]
fn an_empty_or_incomplete_configuration_is_not_demo_mode() {
    for (env, want) in [
        // An empty Kubernetes secret.
        (
            vec![("DEVIN_API_TOKEN", ""), ("DEVIN_ORG_IDS", "")],
            "error: DEVIN_API_TOKEN is set but empty: give a value or unset it",
        ),
        (
            vec![("DEVIN_API_TOKEN", "cog_x"), ("DEVIN_ORG_IDS", " ")],
            "error: DEVIN_ORG_IDS is set but empty: give a value or unset it",
        ),
        // Only the API URL: clearly not a request for simulated data.
        (
            vec![("DEVIN_API_URL", "https://devin.internal.example")],
            "error: DEVIN_API_TOKEN and DEVIN_ORG_IDS are not set",
        ),
        // The token file is what is missing, not the org ids.
        (
            vec![("DEVIN_API_TOKEN_FILE", "/nonexistent/devin-token")],
            "error: DEVIN_API_TOKEN_FILE=/nonexistent/devin-token: cannot read",
        ),
        (
            vec![
                ("DEVIN_ORG_IDS", "org-a"),
                ("DEVIN_API_TOKEN_FILE", "/nonexistent/token"),
            ],
            "error: DEVIN_API_TOKEN_FILE=/nonexistent/token: cannot read",
        ),
    ] {
        assert_refused(&env, 2, &format!("{want}..."));
    }
}

/// Starts the binary with `env` and `args`; returns it and a channel of its stderr lines.
fn spawn_with_log(env: &[(&str, &str)], args: &[&str]) -> (Proc, Receiver<String>) {
    Proc::spawn_log(
        exporter_command(env, args).stdout(Stdio::null()),
        "exporter",
    )
}

#[test]
fn demo_mode_says_so_in_the_log_and_on_metrics() {
    // Nothing at all given, and only warnings logged: the demo warning still shows. (It
    // comes before the default port is bound, whether or not that port is free.)
    let (child, rx) = spawn_with_log(&[("RUST_LOG", "warn")], &[]);
    let line = first_line(&rx, "demo mode", |l| {
        l.contains("demo mode").then(|| l.to_string())
    });
    drop(child);
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("SIMULATED"), "{line}");

    // --demo on a port of its own: /metrics says it is simulated, with demo org ids.
    let (child, url) = start_exporter_process_with_args(&[], &["--demo"]);
    let body = blocking_get(&format!("{url}/metrics"));
    let landing = blocking_get(&format!("{url}/"));
    assert!(body.contains("\ndevin_exporter_demo_mode 1\n"), "{body}");
    // The demo bills too: every billing source is read in the background once a scrape
    // asks for it, so the Billing row is live.
    // (A child process: polled on the wall clock, bounded.)
    let billed = (0..200).find_map(|_| {
        let m = common::Metrics::parse(&blocking_get(&format!("{url}/metrics")));
        let up = m.find("devin_billing_up", &[]);
        if up.len() == 4 && up.iter().all(|(_, v)| *v == 1.0) {
            return Some(m);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        None
    });
    drop(child);
    let billed = billed.expect("every billing source read in demo mode");
    assert!(billed.sum("devin_billing_cycle_acus", &[]) > 0.0);
    let ups: Vec<&str> = body
        .lines()
        .filter(|l| l.starts_with("devin_up{"))
        .collect();
    assert!(!ups.is_empty(), "{body}");
    for up in ups {
        assert!(up.starts_with("devin_up{org_id=\"org-demo-"), "{up}");
    }
    assert!(landing.contains("DEMO MODE"), "{landing}");
}

#[test]
fn real_configuration_has_no_demo_marker() {
    let sim = simulator("--orgs 1 --sessions-per-org 10");
    let (_exporter, url) = sim.start_exporter();
    let body = blocking_get(&format!("{url}/metrics"));
    assert!(body.contains("devin_up{"), "{body}");
    assert!(!body.contains("devin_exporter_demo_mode"), "{body}");
}

/// The healthcheck reads the server's variables as the server does: a bad value is one line
/// naming it and exit code 2, never a silent fallback to the default port or to http.
#[test]
fn healthcheck_refuses_the_values_the_server_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(&web, "tls_server_config:\n  cert_file: missing.crt\n").unwrap();
    let web = web.to_str().unwrap();
    for (env, want) in [
        (
            ("DEVIN_LISTEN_ADDRESS", "everywhere"),
            "error: DEVIN_LISTEN_ADDRESS=everywhere: expected host:port, e.g. 0.0.0.0:10164",
        ),
        (
            ("DEVIN_HEALTHCHECK_CLIENT_CERT", " "),
            "error: DEVIN_HEALTHCHECK_CLIENT_CERT is set but empty: give a value or unset it",
        ),
        (
            ("DEVIN_WEB_CONFIG_FILE", web),
            "error: DEVIN_WEB_CONFIG_FILE=...",
        ),
    ] {
        let out = run(&[env], &["healthcheck"]);
        let err = out.stderr.trim();
        assert_eq!(out.code, 2, "{env:?}: {err}");
        match want.strip_suffix("...") {
            Some(start) => assert!(err.starts_with(start), "{env:?}: {err}"),
            None => assert_eq!(err, want, "{env:?}"),
        }
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

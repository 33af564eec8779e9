//! `devin-exporter check` against the simulator process: one line per org, what to do about
//! a failure, and the exit code.

use crate::common;

use std::process::Command;

use common::procs::{Sim, exporter_bin, run, simulator};

/// Runs `check` with `env`; returns exit code, stdout and stderr.
fn check(env: &[(&str, &str)]) -> (i32, String, String) {
    let out = run(Command::new(exporter_bin())
        .arg("check")
        .env_clear()
        .envs(env.iter().copied()));
    (out.code, out.stdout, out.stderr)
}

/// Runs `check` against `sim` with its URL, `token` and `orgs` (an org id list or the
/// discovery setting).
fn check_sim(sim: &Sim, token: &str, orgs: (&str, &str)) -> (i32, String, String) {
    check(&[
        ("DEVIN_API_TOKEN", token),
        ("DEVIN_API_URL", &sim.url),
        orgs,
    ])
}

fn line<'a>(out: &'a str, label: &str) -> &'a str {
    out.lines()
        .find(|l| l.split_whitespace().next() == Some(label))
        .unwrap_or_else(|| panic!("no line for {label} in:\n{out}"))
}

#[test]
fn good_forbidden_and_unknown_orgs() {
    let sim = simulator("--orgs 1 --sessions-per-org 30 --forbidden-org org-locked");
    let good = sim.orgs[0].as_str();
    let orgs = format!("{good},org-locked,org-nope");
    let (code, out, err) = check_sim(&sim, &sim.token, ("DEVIN_ORG_IDS", &orgs));
    println!("{out}");
    assert_eq!(code, 1, "one org is unreadable: {out}{err}");
    assert!(out.starts_with(&format!("API {}\n", sim.url)), "{out}");
    let token = line(&out, "token");
    assert!(
        token.contains(" ok ") && token.contains("service user"),
        "{token}"
    );
    let ok = line(&out, good);
    assert!(ok.contains(" ok ") && ok.contains("HTTP 200"), "{ok}");
    assert!(
        ok.contains("30 sessions on the first page (total 30)"),
        "{ok}"
    );
    assert!(ok.contains(" ms "), "latency shown: {ok}");
    let locked = line(&out, "org-locked");
    assert!(
        locked.contains("FAIL") && locked.contains("HTTP 403"),
        "{locked}"
    );
    assert!(
        locked.contains("Missing permission ViewOrgSessions for organization org-locked"),
        "the API's detail: {locked}"
    );
    assert!(
        locked.contains("the token lacks ViewOrgSessions on this org"),
        "what to do: {locked}"
    );
    let nope = line(&out, "org-nope");
    assert!(
        nope.contains("FAIL") && nope.contains("HTTP 404") && nope.contains("no such org id"),
        "{nope}"
    );
    assert!(out.contains("1 of 3 orgs readable"), "{out}");
    assert!(!out.contains(&sim.token) && !err.contains(&sim.token));

    // Every org readable: exit 0.
    let (code, out, _) = check_sim(&sim, &sim.token, ("DEVIN_ORG_IDS", good));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 of 1 orgs readable"), "{out}");
}

#[test]
fn revoked_token_and_discovery() {
    let sim = simulator("--orgs 2 --sessions-per-org 5");
    let discover = ("DEVIN_DISCOVER_ORGS", "true");
    let (code, out, _) = check_sim(&sim, "cog_revoked_secret_0123456789", discover);
    assert_eq!(code, 1, "{out}");
    for label in ["token", "discovery"] {
        let l = line(&out, label);
        assert!(
            l.contains("HTTP 401") && l.contains("the token is invalid or revoked"),
            "{l}"
        );
    }
    assert!(!out.contains("revoked_secret"), "token leaked: {out}");

    let (code, out, _) = check_sim(&sim, &sim.token, discover);
    assert_eq!(code, 0, "{out}");
    assert!(
        line(&out, "discovery").contains("2 orgs on the first page (total 2)"),
        "{out}"
    );
    for org in &sim.orgs {
        assert!(line(&out, org).contains(" ok "), "{out}");
    }
}

#[test]
fn bad_configuration_exits_2() {
    let (code, out, err) = check(&[
        ("DEVIN_API_TOKEN", "cog_x"),
        ("DEVIN_ORG_IDS", "org-a"),
        ("DEVIN_PAGE_SIZE", "0"),
    ]);
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(err.starts_with("error: DEVIN_PAGE_SIZE=0:"), "{err}");
    // The web config is checked too: the server would not start with this one.
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        "tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n",
    )
    .unwrap();
    let (code, out, err) = check(&[
        ("DEVIN_API_TOKEN", "cog_x"),
        ("DEVIN_ORG_IDS", "org-a"),
        ("DEVIN_WEB_CONFIG_FILE", web.to_str().unwrap()),
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(err.starts_with("error: DEVIN_WEB_CONFIG_FILE="), "{err}");
    assert!(err.contains("tls_server_config.cert_file"), "{err}");
    let (code, _, err) = check(&[("DEVIN_ORG_IDS", "org-a")]);
    assert_eq!(code, 2);
    assert!(err.contains("DEVIN_API_TOKEN"), "{err}");
}

/// `check` in-process against a mocked API, for answers the simulator does not give.
async fn check_against(api: &wiremock::MockServer, orgs: &str, token: &str) -> (bool, String) {
    let config = devin_exporter::config::from_vars(
        [
            ("DEVIN_API_TOKEN", token),
            ("DEVIN_ORG_IDS", orgs),
            ("DEVIN_API_URL", api.uri().as_str()),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    )
    .unwrap();
    let mut out = Vec::new();
    let ok = devin_exporter::check::run(&config, &mut out).await.unwrap();
    (ok, String::from_utf8(out).unwrap())
}

#[tokio::test]
async fn rate_limited_org_and_a_detail_that_echoes_the_token() {
    use wiremock::matchers::path;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let token = "cog_echoed_secret_42";
    let api = MockServer::start().await;
    Mock::given(path("/v3/self"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "principal_type": "service_user", "service_user_id": "su-1", "org_id": "org-busy"
        })))
        .mount(&api)
        .await;
    Mock::given(path("/v3/organizations/org-busy/sessions"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "3600")
                .set_body_json(serde_json::json!({"detail": "Rate limit exceeded"})),
        )
        .mount(&api)
        .await;
    Mock::given(path("/v3/organizations/org-echo/sessions"))
        .respond_with(ResponseTemplate::new(401).set_body_json(serde_json::json!({
            "detail": format!("token {token} revoked\u{1b}[31m; also cog_other_token")
        })))
        .mount(&api)
        .await;
    let (ok, out) = check_against(&api, "org-busy,org-echo", token).await;
    assert!(!ok, "{out}");
    assert!(
        line(&out, "token").contains("service user su-1 of org org-busy"),
        "{out}"
    );
    let busy = line(&out, "org-busy");
    assert!(
        busy.contains("HTTP 429")
            && busy.contains("rate limited until ")
            && busy.contains("retry later"),
        "{busy}"
    );
    let echo = line(&out, "org-echo");
    assert!(
        echo.contains("token <redacted> revoked [31m; also cog_<redacted>"),
        "{echo}"
    );
    assert!(echo.contains("the token is invalid or revoked"), "{echo}");
    assert!(
        !out.contains("echoed_secret") && !out.contains("cog_other"),
        "{out}"
    );
    assert!(!out.contains('\u{1b}'), "control characters are dropped");
}

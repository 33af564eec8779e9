//! `devin-exporter check` against the simulator process: one line per org, what to do about
//! a failure, and the exit code.

use crate::common;

use std::time::Duration;

use common::procs::{Sim, exporter_command, run, simulator, temp_file};
use common::{S, mount_page, page_reply, sessions_of};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Runs `check` with `env`; returns exit code, stdout and stderr.
fn check(env: &[(&str, &str)]) -> (i32, String, String) {
    let out = run(&mut exporter_command(env, &["check"]));
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

/// Asserts that `line` contains each of `parts`.
fn assert_has(line: &str, parts: &[&str]) {
    for part in parts {
        assert!(line.contains(part), "no {part:?} in: {line}");
    }
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
    assert_has(line(&out, "token"), &[" ok ", "service user"]);
    // The org's size, and the latency.
    let first_page = "30 sessions on the first page (total 30)";
    assert_has(line(&out, good), &[" ok ", "HTTP 200", first_page, " ms "]);
    // The API's detail, and what to do.
    assert_has(
        line(&out, "org-locked"),
        &[
            "FAIL",
            "HTTP 403",
            "Missing permission ViewOrgSessions for organization org-locked",
            "the token lacks ViewOrgSessions on this org",
        ],
    );
    let nope = line(&out, "org-nope");
    assert_has(nope, &["FAIL", "HTTP 404", "no such org id"]);
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
        let revoked = "the token is invalid or revoked";
        assert_has(line(&out, label), &["HTTP 401", revoked]);
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
    let (_dir, web) = temp_file(
        "web.yml",
        "tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n",
    );
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
    check_against_with(api, orgs, token, &[]).await
}

/// [`check_against`] with `extra` variables.
async fn check_against_with(
    api: &wiremock::MockServer,
    orgs: &str,
    token: &str,
    extra: &[(&str, &str)],
) -> (bool, String) {
    let uri = api.uri();
    let base = [
        ("DEVIN_API_TOKEN", token),
        ("DEVIN_ORG_IDS", orgs),
        ("DEVIN_API_URL", uri.as_str()),
    ];
    let vars = base.iter().chain(extra);
    let config =
        devin_exporter::config::from_vars(vars.map(|(k, v)| (k.to_string(), v.to_string())))
            .unwrap();
    let mut out = Vec::new();
    let ok = devin_exporter::check::run(&config, &mut out).await.unwrap();
    (ok, String::from_utf8(out).unwrap())
}

#[tokio::test]
async fn rate_limited_org_and_a_detail_that_echoes_the_token() {
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
    let busy = ["HTTP 429", "rate limited until ", "retry later"];
    assert_has(line(&out, "org-busy"), &busy);
    assert_has(
        line(&out, "org-echo"),
        &[
            "token <redacted> revoked [31m; also cog_<redacted>",
            "the token is invalid or revoked",
        ],
    );
    assert!(
        !out.contains("echoed_secret") && !out.contains("cog_other"),
        "{out}"
    );
    assert!(!out.contains('\u{1b}'), "control characters are dropped");
}

/// A `/v3/self` answering with `reply`.
async fn mount_self(api: &MockServer, reply: ResponseTemplate) {
    Mock::given(path("/v3/self"))
        .respond_with(reply)
        .mount(api)
        .await;
}

#[tokio::test]
async fn a_token_line_that_fails_fails_the_check() {
    let principal =
        serde_json::json!({"principal_type": "service_user", "service_user_id": "su-1"});
    let slow = ResponseTemplate::new(200)
        .set_body_json(principal)
        .set_delay(Duration::from_secs(5));
    let garbage = |body: &str| ResponseTemplate::new(200).set_body_string(body);
    for (what, reply, status) in [
        ("a timeout", slow, "no answer"),
        ("not JSON", garbage("<html>oops</html>"), "bad answer"),
        ("a JSON list", garbage("[]"), "bad answer"),
        (
            "an object without principal_type",
            garbage("{}"),
            "bad answer",
        ),
    ] {
        let api = MockServer::start().await;
        mount_self(&api, reply).await;
        mount_page(&api, "org-a", &[S::new(1)]).await;
        let timeout = [("DEVIN_REQUEST_TIMEOUT", "500ms")];
        let (ok, out) = check_against_with(&api, "org-a", "cog_x", &timeout).await;
        assert!(!ok, "{what}: {out}");
        assert_has(line(&out, "token"), &["FAIL", status]);
        assert_has(line(&out, "org-a"), &[" ok "]);
        let summary = out.lines().last().unwrap();
        assert_eq!(
            summary, "1 of 1 orgs readable, but the token failed: fix the lines marked FAIL",
            "{what}"
        );
    }
}

#[tokio::test]
async fn waiting_for_the_request_budget_is_not_a_timeout() {
    // 150 orgs at 50 requests a second take two seconds, four times the request timeout:
    // only the time on the wire counts against it, not the time in the budget's queue. (Real
    // time: the requests go over sockets, which a paused clock would skip past.)
    let api = MockServer::start().await;
    mount_self(
        &api,
        ResponseTemplate::new(200)
            .set_body_json(serde_json::json!({"principal_type": "service_user"})),
    )
    .await;
    Mock::given(wiremock::matchers::path_regex(
        "^/v3/organizations/[^/]+/sessions$",
    ))
    .respond_with(page_reply(&[S::new(1)], None, Some(1)))
    .mount(&api)
    .await;
    let orgs: Vec<String> = (0..150).map(|i| format!("org-{i}")).collect();
    let budget = [
        ("DEVIN_MAX_REQUESTS_PER_SECOND", "50"),
        ("DEVIN_REQUEST_TIMEOUT", "500ms"),
    ];
    let (ok, out) = check_against_with(&api, &orgs.join(","), "cog_x", &budget).await;
    assert!(ok, "{out}");
    assert!(out.ends_with("150 of 150 orgs readable\n"), "{out}");
    // The latency shown is the API's, within the timeout, not the wait in the queue.
    for org in &orgs {
        let ms: u64 = line(&out, org)
            .split(" ms ")
            .next()
            .unwrap()
            .split_whitespace()
            .last()
            .unwrap()
            .parse()
            .unwrap();
        assert!(ms <= 500, "{out}");
    }
}

#[tokio::test]
async fn a_token_of_any_shape_echoed_in_any_case_or_in_part_is_redacted() {
    // Not cog_-shaped: only the token's own value can be recognised.
    let token = "tok-Sup3rS3cret-0123456789abcdef";
    let api = MockServer::start().await;
    let detail = |text: String| serde_json::json!({ "detail": text });
    mount_self(
        &api,
        ResponseTemplate::new(401).set_body_json(detail(format!("bad token {token}"))),
    )
    .await;
    let echoes = [
        ("org-whole", 403, format!("token {token} lacks it")),
        (
            "org-prefix",
            403,
            format!("token {}... lacks it", &token[..16]),
        ),
        (
            "org-upper",
            404,
            format!("TOKEN {} UNKNOWN", token.to_uppercase()),
        ),
        (
            "org-lower",
            404,
            format!("token {} unknown", token.to_lowercase()),
        ),
    ];
    for (org, status, text) in &echoes {
        sessions_of(org)
            .respond_with(ResponseTemplate::new(*status).set_body_json(detail(text.clone())))
            .mount(&api)
            .await;
    }
    // The token written with JSON escapes, which only the parsed detail shows.
    let escaped: String = token
        .chars()
        .map(|c| format!("\\u{:04x}", c as u32))
        .collect();
    sessions_of("org-escaped")
        .respond_with(
            ResponseTemplate::new(403)
                .set_body_string(format!(r#"{{"detail": "token {escaped}"}}"#)),
        )
        .mount(&api)
        .await;
    // A body that is not a page: the parser's message quotes the value.
    let quoted = format!(r#"{{"items": "{}"}}"#, token.to_uppercase());
    sessions_of("org-parse")
        .respond_with(ResponseTemplate::new(200).set_body_string(quoted))
        .mount(&api)
        .await;
    let orgs = "org-whole,org-prefix,org-upper,org-lower,org-escaped,org-parse";
    let (ok, out) = check_against(&api, orgs, token).await;
    assert!(!ok, "{out}");
    for label in [
        "token",
        "org-whole",
        "org-prefix",
        "org-upper",
        "org-lower",
        "org-escaped",
        "org-parse",
    ] {
        assert_has(line(&out, label), &["FAIL", "<redacted>"]);
    }
    let lower = out.to_lowercase();
    for secret in [&token[..16], "sup3rs3cret", "0123456789abcdef"] {
        assert!(
            !lower.contains(&secret.to_lowercase()),
            "{secret} leaked: {out}"
        );
    }
}

/// A billing source the token may not read: in `auto` its line says `off` with the
/// permission to grant and the check passes; with `DEVIN_BILLING=on` the same line fails it.
#[test]
fn a_forbidden_billing_source_fails_the_check_only_when_billing_is_on() {
    let sim = simulator("--orgs 1 --sessions-per-org 10 --forbidden-billing queue");
    let org = sim.orgs[0].as_str();
    let base = [
        ("DEVIN_API_TOKEN", sim.token.as_str()),
        ("DEVIN_API_URL", sim.url.as_str()),
        ("DEVIN_ORG_IDS", org),
    ];
    let (code, out, err) = check(&base);
    assert_eq!(code, 0, "{out}{err}");
    let queue = out
        .lines()
        .find(|l| l.contains("queue"))
        .unwrap_or_else(|| panic!("no queue line in:\n{out}"));
    assert_has(queue, &["off", "ViewAccountMetrics"]);
    let (code, out, err) = check(&[base.as_slice(), &[("DEVIN_BILLING", "on")]].concat());
    assert_eq!(code, 1, "{out}{err}");
    let queue = out.lines().find(|l| l.contains("queue")).unwrap();
    assert_has(queue, &["FAIL"]);
}

/// The `sessions` line says where the server would list the sessions from: the stream when
/// the token may read it; without the permission, with `auto`, each org's own listing and
/// the permission to grant (`off`, not a failure); with `enterprise`, a failure.
#[test]
fn the_sessions_line_names_the_source_and_the_permission_to_grant() {
    let open = simulator("--orgs 2 --sessions-per-org 10");
    let orgs = open.orgs.join(",");
    let (code, out, err) = check_sim(&open, &open.token, ("DEVIN_ORG_IDS", &orgs));
    assert_eq!(code, 0, "{out}{err}");
    assert_has(
        line(&out, "sessions"),
        &[
            " ok ",
            "HTTP 200",
            "the enterprise session stream, one request per scrape for every org, 20 sessions in all",
            "(DEVIN_SESSION_SOURCE=auto)",
        ],
    );
    let set = [
        ("DEVIN_API_TOKEN", open.token.as_str()),
        ("DEVIN_API_URL", open.url.as_str()),
        ("DEVIN_ORG_IDS", orgs.as_str()),
        ("DEVIN_SESSION_SOURCE", "orgs"),
    ];
    let (code, out, err) = check(&set);
    assert_eq!(code, 0, "{out}{err}");
    assert_has(
        line(&out, "sessions"),
        &[
            " ok ",
            "each org's own listing, one request per org per scrape (DEVIN_SESSION_SOURCE=orgs)",
        ],
    );

    let locked = simulator("--orgs 1 --sessions-per-org 10 --forbid-enterprise-sessions");
    let org = locked.orgs[0].as_str();
    let (code, out, err) = check_sim(&locked, &locked.token, ("DEVIN_ORG_IDS", org));
    assert_eq!(
        code, 0,
        "a missing stream permission is no failure with auto: {out}{err}"
    );
    assert_has(
        line(&out, "sessions"),
        &[
            " off ",
            "HTTP 403",
            "each org's own listing: the token lacks ViewAccountSessions on the enterprise: grant it for one request per scrape for the whole enterprise",
        ],
    );
    assert!(out.ends_with("1 of 1 orgs readable\n"), "{out}");
    let base = [
        ("DEVIN_API_TOKEN", locked.token.as_str()),
        ("DEVIN_API_URL", locked.url.as_str()),
        ("DEVIN_ORG_IDS", org),
        ("DEVIN_SESSION_SOURCE", "enterprise"),
    ];
    let (code, out, err) = check(&base);
    assert_eq!(code, 1, "every org would be down: {out}{err}");
    assert_has(
        line(&out, "sessions"),
        &[
            "FAIL",
            "HTTP 403",
            "Missing permission ViewAccountSessions for the enterprise",
            "the token lacks ViewAccountSessions on the enterprise: grant it, or set DEVIN_SESSION_SOURCE=auto",
        ],
    );
    let summary = out.lines().last().unwrap();
    assert_eq!(
        summary,
        "1 of 1 orgs readable, but the session source failed: fix the lines marked FAIL"
    );
}

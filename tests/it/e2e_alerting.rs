//! The alerting path end to end, with real processes: the simulator, the exporter binary,
//! Prometheus evaluating `dashboards/prometheus/alerts.yml` every second, Alertmanager
//! routing with `examples/alertmanager/alertmanager.yml` (its receivers pointed at a webhook
//! inside the test), and the webhook receiving the notifications. Also `amtool` on the
//! example. Skips (with a notice) without Prometheus, Alertmanager or amtool unless
//! `DEVIN_E2E_REQUIRED=1`.

use crate::common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::procs::{
    Proc, Sim, blocking_get, listening_on, post_json, require_tool, run, sample_value, simulator,
    start_prometheus_with, temp_file,
};
use serde_json::{Value, json};
use serde_yaml_ng::Value as Yaml;

const ALERTMANAGER: &str = "prometheus-alertmanager";
const EXAMPLE: &str = "examples/alertmanager/alertmanager.yml";

// ---------------------------------------------------------------------------------------
// The webhook receiver.

/// An HTTP server on a free port recording every POST body, with its arrival; stops with the
/// test process.
struct Webhook {
    url: String,
    received: Arc<Mutex<Vec<(Instant, Value)>>>,
}

impl Webhook {
    fn start() -> Webhook {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let store = received.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let app = axum::Router::new().route(
                    "/hook",
                    axum::routing::post(move |body: String| {
                        let at = Instant::now();
                        let body = serde_json::from_str(&body).unwrap_or(Value::String(body));
                        store.lock().unwrap().push((at, body));
                        async { "ok" }
                    }),
                );
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        Webhook { url, received }
    }

    /// Every alert received so far: (arrival, receiver, alert object).
    fn alerts(&self) -> Vec<(Instant, String, Value)> {
        let received = self.received.lock().unwrap();
        received
            .iter()
            .flat_map(|(at, body)| {
                let receiver = body["receiver"].as_str().unwrap_or("").to_string();
                body["alerts"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |a| (*at, receiver.clone(), a))
            })
            .collect()
    }
}

fn label<'a>(alert: &'a Value, name: &str) -> &'a str {
    alert["labels"][name].as_str().unwrap_or("")
}

// ---------------------------------------------------------------------------------------
// Alertmanager with the example's routing.

/// The example configuration with every receiver sending to `webhook` instead (names,
/// routes, grouping and inhibitions kept), and waits of one second so the test is quick.
fn example_routed_to(webhook: &str) -> String {
    let text = std::fs::read_to_string(EXAMPLE).unwrap();
    let mut config: Yaml = serde_yaml_ng::from_str(&text).unwrap();
    for receiver in config["receivers"].as_sequence_mut().unwrap() {
        let name = receiver["name"].as_str().unwrap();
        *receiver = serde_yaml_ng::from_str(&format!(
            "{{name: '{name}', webhook_configs: [{{url: '{webhook}', send_resolved: false}}]}}"
        ))
        .unwrap();
    }
    // Every route waits a second before its first notification and between updates.
    fn quicken(route: &mut Yaml) {
        if let Some(map) = route.as_mapping_mut() {
            map.insert("group_wait".into(), "1s".into());
            map.insert("group_interval".into(), "1s".into());
        }
        if let Some(routes) = route["routes"].as_sequence_mut() {
            routes.iter_mut().for_each(quicken);
        }
    }
    quicken(&mut config["route"]);
    serde_yaml_ng::to_string(&config).unwrap()
}

/// A running Alertmanager.
struct Alertmanager {
    /// host:port of its API.
    addr: String,
    _proc: Proc,
    _dir: tempfile::TempDir,
}

fn start_alertmanager(config: &str) -> Alertmanager {
    let (dir, path) = temp_file("alertmanager.yml", config);
    let (mut proc, addr) = Proc::spawn_until(
        Command::new(ALERTMANAGER)
            .arg(format!("--config.file={}", path.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            // Port 0: it logs the address it bound. No cluster: no gossip port.
            .arg("--web.listen-address=127.0.0.1:0")
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null()),
        "alertmanager",
        listening_on,
    );
    proc.wait_ready(&format!("http://{addr}"));
    Alertmanager {
        addr,
        _proc: proc,
        _dir: dir,
    }
}

// ---------------------------------------------------------------------------------------

fn transition(sim: &Sim, org: &str, query: &str) -> Instant {
    let changed = sim.admin(&format!("/sim/transition?org_id={org}&{query}"));
    assert_eq!(changed["changed"], 1, "{changed}");
    Instant::now()
}

#[test]
#[cfg_attr(
    not(all(has_prometheus, has_alertmanager)),
    ignore = "needs prometheus and prometheus-alertmanager: apt-get install prometheus prometheus-alertmanager"
)]
fn an_error_and_a_blocking_suspension_page_within_a_minute_and_a_quiet_org_sends_nothing() {
    if !require_tool("prometheus") || !require_tool(ALERTMANAGER) {
        return;
    }
    let webhook = Webhook::start();
    let am = start_alertmanager(&example_routed_to(&webhook.url));
    // A frozen simulated clock: nothing changes unless the test says so.
    let sim = simulator("--orgs 3 --sessions-per-org 300 --speed 0 --seed 7");
    let (error_org, blocked_org) = (sim.orgs[0].clone(), sim.orgs[1].clone());
    for org in [&error_org, &blocked_org] {
        sim.admin(&format!("/sim/create?org_id={org}&n=2"));
    }
    let (mut exporter, url) = sim.start_exporter();
    let rules = Path::new("dashboards/prometheus/alerts.yml");
    // start_prometheus_with appends its text at the end of prometheus.yml: the alerting
    // section follows the scrape configs there.
    let config = format!(
        "  - job_name: devin\n    static_configs:\n      - targets: ['{}']\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{}']\n",
        url.trim_start_matches("http://"),
        am.addr
    );
    let prom = start_prometheus_with(&config, &[rules]);
    let timeout = Duration::from_secs(90);

    // Every org synced, its counters at 0 in Prometheus, and the rules evaluated on them
    // for a while: a quiet simulator raises no session alert.
    prom.wait_for("devin_initial_sync_complete == 1", timeout, |r| {
        r.len() == sim.orgs.len()
    });
    prom.wait_for(
        "count_over_time(devin_sessions_entered_status_total[1m])",
        timeout,
        |r| !r.is_empty() && r.iter().all(|v| sample_value(v) >= 10.0),
    );
    let notifiers = blocking_get(&format!("{}/api/v1/alertmanagers", prom.url));
    assert!(notifiers.contains(&am.addr), "{notifiers}");
    let session_alerts = |alerts: &[(Instant, String, Value)]| -> Vec<Value> {
        alerts
            .iter()
            .filter(|(_, _, a)| label(a, "alertname").starts_with("DevinSession"))
            .map(|(_, _, a)| a.clone())
            .collect()
    };
    // (The waiting alerts hold for 5 minutes first: only firing ones count here.)
    let firing = prom.query(r#"ALERTS{alertname=~"DevinSession.*", alertstate="firing"}"#);
    assert!(firing.is_empty(), "quiet simulator, alerts: {firing:?}");
    let received = webhook.alerts();
    assert!(session_alerts(&received).is_empty(), "{received:?}");

    // One session goes into error, one is suspended out of credits.
    sim.admin("/sim/advance?seconds=1");
    let error_at = transition(&sim, &error_org, "status=error");
    let blocked_at = transition(
        &sim,
        &blocked_org,
        "status=suspended&status_detail=out_of_credits",
    );
    let (entering_error, suspended) = (
        "DevinSessionsEnteringError",
        "DevinSessionsSuspendedForCreditsOrLimits",
    );
    let deadline = error_at + Duration::from_secs(60);
    let find = |name: &str, org: &str| {
        webhook
            .alerts()
            .into_iter()
            .find(|(_, _, a)| label(a, "alertname") == name && label(a, "org_id") == org)
    };
    let (error, blocked) = loop {
        if let (Some(e), Some(b)) = (
            find(entering_error, &error_org),
            find(suspended, &blocked_org),
        ) {
            break (e, b);
        }
        assert!(
            Instant::now() < deadline,
            "not both pages within 60 s; received {:?}; firing in Prometheus {:?}",
            webhook.alerts(),
            prom.query("ALERTS")
        );
        std::thread::sleep(Duration::from_millis(100));
    };

    let (error_arrived, error_receiver, error_alert) = error;
    let (blocked_arrived, blocked_receiver, blocked_alert) = blocked;
    for (alert, arrived, at) in [
        (&error_alert, error_arrived, error_at),
        (&blocked_alert, blocked_arrived, blocked_at),
    ] {
        let delay = arrived.duration_since(at);
        let name = label(alert, "alertname");
        println!(
            "{name} reached the webhook {:.1} s after the transition",
            delay.as_secs_f64()
        );
        assert!(delay < Duration::from_secs(60));
    }

    // The labels a receiver needs, and the example's routing: critical pages, warning to
    // the channel.
    assert_eq!(label(&error_alert, "status_detail"), "none");
    assert_eq!(label(&error_alert, "severity"), "warning");
    assert_eq!(error_receiver, "devin-channel");
    assert_eq!(label(&blocked_alert, "status_detail"), "out_of_credits");
    assert_eq!(label(&blocked_alert, "severity"), "critical");
    assert_eq!(blocked_receiver, "devin-pager");
    let runbook = blocked_alert["annotations"]["runbook_url"]
        .as_str()
        .unwrap_or("");
    assert!(
        runbook.ends_with("runbook.md#devinsessionssuspendedforcreditsorlimits"),
        "{runbook}"
    );
    assert!(
        blocked_alert["annotations"]["summary"]
            .as_str()
            .is_some_and(|s| s.contains(&blocked_org) && s.contains("out_of_credits")),
        "{blocked_alert}"
    );

    // Nothing else: the third org, untouched, and no other state raised a session alert.
    let expected = [
        (entering_error, error_org.as_str()),
        (suspended, blocked_org.as_str()),
    ];
    for alert in session_alerts(&webhook.alerts()) {
        let key = (label(&alert, "alertname"), label(&alert, "org_id"));
        assert!(expected.contains(&key), "unexpected {alert}");
    }
    exporter.assert_running();
}

#[test]
#[cfg_attr(
    not(has_alertmanager),
    ignore = "needs prometheus-alertmanager: apt-get install prometheus-alertmanager"
)]
fn the_example_silences_an_orgs_session_alerts_while_its_collection_fails() {
    if !require_tool(ALERTMANAGER) {
        return;
    }
    let webhook = Webhook::start();
    let am = start_alertmanager(&example_routed_to(&webhook.url));
    let alert = |name: &str, org: &str, severity: &str| json!({"labels": {"alertname": name, "org_id": org, "severity": severity, "status_detail": "none"}});
    let alerts = json!([
        alert("DevinOrgCollectionFailing", "org-a", "warning"),
        alert("DevinSessionsEnteringError", "org-a", "warning"),
        alert("DevinSessionsEnteringError", "org-b", "warning"),
    ]);
    let url = format!("http://{}/api/v2/alerts", am.addr);
    post_json(&url, Some(&alerts.to_string()));

    // Alertmanager's own view: org-a's session alert is inhibited by its collection alert.
    let started = Instant::now();
    let inhibited = |org: &str| -> Option<bool> {
        let listed: Value = serde_json::from_str(&blocking_get(&url)).unwrap();
        let alert = listed.as_array()?.iter().find(|a| {
            label(a, "alertname") == "DevinSessionsEnteringError" && label(a, "org_id") == org
        })?;
        Some(!alert["status"]["inhibitedBy"].as_array()?.is_empty())
    };
    while webhook.alerts().len() < 2 {
        let waited = started.elapsed();
        assert!(waited < Duration::from_secs(30), "{:?}", webhook.alerts());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(inhibited("org-a"), Some(true));
    assert_eq!(inhibited("org-b"), Some(false));
    let sent: Vec<(String, String)> = webhook
        .alerts()
        .iter()
        .map(|(_, _, a)| (label(a, "alertname").into(), label(a, "org_id").into()))
        .collect();
    assert!(sent.contains(&("DevinOrgCollectionFailing".into(), "org-a".into())));
    assert!(sent.contains(&("DevinSessionsEnteringError".into(), "org-b".into())));
    assert!(
        !sent.contains(&("DevinSessionsEnteringError".into(), "org-a".into())),
        "{sent:?}"
    );
}

/// Runs amtool: (success, stdout, stdout and stderr).
fn amtool(args: &[&str]) -> (bool, String, String) {
    let out = run(Command::new("amtool").args(args));
    (out.ok(), out.stdout.clone(), out.all())
}

#[test]
#[cfg_attr(
    not(has_amtool),
    ignore = "needs amtool: apt-get install prometheus-alertmanager"
)]
fn amtool_accepts_the_example_which_pages_critical_and_sends_the_rest_to_a_channel() {
    if !require_tool("amtool") {
        return;
    }
    let (ok, _, text) = amtool(&["check-config", EXAMPLE]);
    assert!(ok && text.contains("SUCCESS"), "{text}");
    let config = format!("--config.file={EXAMPLE}");
    for (labels, receiver) in [
        (&["severity=critical", "org_id=org-a"][..], "devin-pager"),
        (&["severity=warning", "org_id=org-a"], "devin-channel"),
        (&["severity=info"], "devin-channel"),
    ] {
        let mut args = vec!["config", "routes", "test", config.as_str()];
        args.extend_from_slice(labels);
        let (ok, receivers, text) = amtool(&args);
        assert!(ok, "{text}");
        assert_eq!(receivers.trim(), receiver, "{labels:?}: {text}");
    }
    let example = std::fs::read_to_string(EXAMPLE).unwrap();
    let parsed: Yaml = serde_yaml_ng::from_str(&example).unwrap();
    assert_eq!(
        parsed["route"]["group_by"],
        serde_yaml_ng::from_str::<Yaml>("[org_id]").unwrap()
    );

    // amtool does catch a broken configuration: a route to a receiver that is not there.
    let without_pager = example.replace("receiver: devin-pager", "receiver: nobody");
    let (_dir, broken) = temp_file("broken.yml", &without_pager);
    let (ok, _, text) = amtool(&["check-config", &broken.to_string_lossy()]);
    assert!(!ok, "{text}");
}

//! Real processes for end-to-end tests: the exporter binary, its simulator, and Prometheus.
//! Every child is killed when its guard drops, also when a test fails.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A child process that is killed on drop.
pub struct Proc {
    child: Child,
    name: &'static str,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// True while the process runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Asserts the process is still running.
    pub fn assert_running(&mut self) {
        assert!(self.running(), "{} exited early", self.name);
    }
}

/// Path of the exporter binary built for these tests.
pub fn exporter_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_devin-exporter"))
}

/// Whether `tool` is on PATH, for the tests that run it. Without it they skip with a notice,
/// unless `DEVIN_E2E_REQUIRED=1` (as in CI, whose `.ci/run` installs every tool), where
/// they fail instead.
pub fn require_tool(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return true;
    }
    if std::env::var("DEVIN_E2E_REQUIRED").as_deref() == Ok("1") {
        panic!("{tool} is required (DEVIN_E2E_REQUIRED=1) but not installed");
    }
    eprintln!(
        "SKIPPED: {tool} is not installed (.ci/run says how to install it); set DEVIN_E2E_REQUIRED=1 to fail instead"
    );
    false
}

/// Reads lines of a child's stream on a thread until `want` returns a value.
fn wait_for_line<R: std::io::Read + Send + 'static, T: Send + 'static>(
    stream: R,
    timeout: Duration,
    want: impl Fn(&str) -> Option<T> + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if !sent {
                if let Some(v) = want(&line) {
                    let _ = tx.send(v);
                    sent = true;
                }
            }
            // Keep draining so the child never blocks on a full pipe.
        }
    });
    rx.recv_timeout(timeout)
        .expect("process printed its address in time")
}

/// The simulator, run as `devin-exporter simulate`.
pub struct Sim {
    /// Base URL of its API.
    pub url: String,
    /// Its org ids.
    pub orgs: Vec<String>,
    /// Its token.
    pub token: String,
    _proc: Proc,
}

/// Starts the simulator with extra flags.
pub fn start_simulator(args: &[&str]) -> Sim {
    let mut child = Command::new(exporter_bin())
        .arg("simulate")
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("simulator starts");
    let stdout = child.stdout.take().unwrap();
    let proc = Proc {
        child,
        name: "simulator",
    };
    let (url, orgs, token) = wait_for_line(stdout, Duration::from_secs(60), |line| {
        let rest = line.strip_prefix("simulator listening on ")?;
        let mut parts = rest.split_whitespace();
        let url = parts.next()?.to_string();
        let mut orgs = Vec::new();
        let mut token = String::new();
        for p in parts {
            if let Some(o) = p.strip_prefix("orgs=") {
                orgs = o.split(',').map(String::from).collect();
            } else if let Some(t) = p.strip_prefix("token=") {
                token = t.to_string();
            }
        }
        Some((url, orgs, token))
    });
    Sim {
        url,
        orgs,
        token,
        _proc: proc,
    }
}

impl Sim {
    /// POSTs an admin action.
    pub fn admin(&self, path_and_query: &str) -> Value {
        let resp = blocking_post(&format!("{}{path_and_query}", self.url));
        serde_json::from_str(&resp).unwrap_or(Value::Null)
    }

    /// The exporter binary collecting every org of this simulator (generous request budget).
    pub fn start_exporter(&self) -> (Proc, String) {
        let orgs = self.orgs.join(",");
        start_exporter_process(&[
            ("DEVIN_API_URL", &self.url),
            ("DEVIN_API_TOKEN", &self.token),
            ("DEVIN_ORG_IDS", &orgs),
            ("DEVIN_MAX_REQUESTS_PER_SECOND", "200"),
        ])
    }

    /// POSTs a JSON body to an admin route.
    pub fn admin_json(&self, path: &str, body: &str) -> Value {
        let url = format!("{}{path}", self.url);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let text = rt.block_on(async {
            let r = reqwest::Client::new()
                .post(&url)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .unwrap_or_else(|e| panic!("POST {url}: {e}"));
            assert!(r.status().is_success(), "POST {url}: {}", r.status());
            r.text().await.unwrap()
        });
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// The simulator's ground truth per org.
    pub fn totals(&self) -> Value {
        let body = blocking_get(&format!("{}/sim/totals", self.url));
        serde_json::from_str(&body).expect("totals JSON")
    }
}

/// The exporter binary with the given environment; returns it and its base URL.
pub fn start_exporter_process(env: &[(&str, &str)]) -> (Proc, String) {
    start_exporter_process_with_args(env, &[])
}

/// The exporter binary with command-line `args` (e.g. `--demo`) as well as `env`.
pub fn start_exporter_process_with_args(env: &[(&str, &str)], args: &[&str]) -> (Proc, String) {
    let mut cmd = Command::new(exporter_bin());
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DEVIN_LISTEN_ADDRESS", "127.0.0.1:0")
        .env("DEVIN_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("exporter starts");
    let stderr = child.stderr.take().unwrap();
    let proc = Proc {
        child,
        name: "exporter",
    };
    let addr = wait_for_line(stderr, Duration::from_secs(60), |line| {
        let v: Value = serde_json::from_str(line).ok()?;
        (v.get("message")?.as_str()? == "listening")
            .then(|| v.get("addr")?.as_str().map(String::from))?
    });
    (proc, format!("http://{addr}"))
}

/// A real Prometheus scraping `targets` (host:port) every second as job `devin`.
pub struct Prometheus {
    /// Base URL of its HTTP API.
    pub url: String,
    _proc: Proc,
    _dir: tempfile::TempDir,
}

/// Starts Prometheus scraping `targets` (host:port) every second as job `devin`.
pub fn start_prometheus(targets: &[String], rule_files: &[&Path]) -> Prometheus {
    let list = targets
        .iter()
        .map(|t| format!("'{t}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let jobs = format!("  - job_name: devin\n    static_configs:\n      - targets: [{list}]\n");
    start_prometheus_with(&jobs, rule_files)
}

/// Starts Prometheus with the given `scrape_configs` entries (YAML, indented by two) and
/// `rule_files`; scrapes and rule evaluation every second.
pub fn start_prometheus_with(scrape_configs: &str, rule_files: &[&Path]) -> Prometheus {
    let dir = tempfile::tempdir().unwrap();
    let rules: Vec<String> = rule_files
        .iter()
        .map(|p| format!("  - {}\n", std::fs::canonicalize(p).unwrap().display()))
        .collect();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n{}scrape_configs:\n{scrape_configs}",
        if rules.is_empty() {
            String::new()
        } else {
            format!("rule_files:\n{}", rules.concat())
        },
    );
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, config).unwrap();
    let mut child = Command::new("prometheus")
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg("--web.listen-address=127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("prometheus starts");
    let stderr = child.stderr.take().unwrap();
    let mut proc = Proc {
        child,
        name: "prometheus",
    };
    // It logs the address it bound: `msg="Listening on" address=127.0.0.1:41234`.
    let addr = wait_for_line(stderr, Duration::from_secs(60), |line| {
        let (_, rest) = line.split_once("msg=\"Listening on\" address=")?;
        rest.split_whitespace().next().map(String::from)
    });
    let url = format!("http://{addr}");
    let started = Instant::now();
    loop {
        proc.assert_running();
        if try_get(&format!("{url}/-/ready")).is_some() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "prometheus not ready"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    Prometheus {
        url,
        _proc: proc,
        _dir: dir,
    }
}

impl Prometheus {
    /// Runs an instant query; returns the result vector (each `{metric, value}`).
    pub fn query(&self, promql: &str) -> Vec<Value> {
        let body = self.query_raw(promql).expect("query answers");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "success", "{promql}: {body}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// Runs an instant query and returns the raw response body, `Err` with the body when the
    /// query fails.
    pub fn query_raw(&self, promql: &str) -> Result<String, String> {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/v1/query", self.url),
            &[("query", promql)],
        )
        .unwrap();
        let (status, body) = http_call("GET", url.as_str())?;
        if (200..300).contains(&status) {
            Ok(body)
        } else {
            Err(body)
        }
    }

    /// Waits until `check` passes on the result of `promql`, up to `timeout`.
    pub fn wait_for(
        &self,
        promql: &str,
        timeout: Duration,
        check: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let started = Instant::now();
        loop {
            let r = self.query(promql);
            if check(&r) {
                return r;
            }
            assert!(
                started.elapsed() < timeout,
                "timed out waiting on {promql}: last result {r:?}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

/// The float value of a query result sample.
pub fn sample_value(v: &Value) -> f64 {
    v["value"][1].as_str().unwrap().parse().unwrap()
}

/// One HTTP call on a fresh current-thread runtime, so process tests need no async.
pub fn http_call(method: &str, url: &str) -> Result<(u16, String), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let req = match method {
            "POST" => client.post(url),
            _ => client.get(url),
        };
        let resp = req.send().await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp.text().await.map_err(|e| e.to_string())?;
        Ok((status, body))
    })
}

/// GET returning the body of a 2xx answer.
pub fn try_get(url: &str) -> Option<String> {
    let (status, body) = http_call("GET", url).ok()?;
    (200..300).contains(&status).then_some(body)
}

/// GET that must succeed.
pub fn blocking_get(url: &str) -> String {
    try_get(url).unwrap_or_else(|| panic!("GET {url} failed"))
}

fn blocking_post(url: &str) -> String {
    let (status, body) = http_call("POST", url).unwrap_or_else(|e| panic!("POST {url}: {e}"));
    assert!(
        (200..300).contains(&status),
        "POST {url} failed: {status} {body}"
    );
    body
}

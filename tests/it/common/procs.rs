//! Real processes for end-to-end tests: the exporter binary, its simulator, and Prometheus.
//! Every child is killed when its guard drops, also when a test fails.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A child process that is killed on drop.
pub struct Proc {
    /// The process itself.
    pub child: Child,
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

    /// Spawns `cmd`, its streams as set there.
    pub fn spawn(cmd: &mut Command, name: &'static str) -> Proc {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("{name} starts: {e}"));
        Proc { child, name }
    }

    /// Spawns `cmd` with its stderr piped; returns it and the lines of its stderr.
    pub fn spawn_log(cmd: &mut Command, name: &'static str) -> (Proc, Receiver<String>) {
        let mut proc = Proc::spawn(cmd.stderr(Stdio::piped()), name);
        let lines = lines_of(proc.child.stderr.take().unwrap());
        (proc, lines)
    }

    /// Spawns `cmd` with its stderr piped; returns it and what `want` finds in a stderr line
    /// within a minute.
    pub fn spawn_until<T>(
        cmd: &mut Command,
        name: &'static str,
        want: impl Fn(&str) -> Option<T>,
    ) -> (Proc, T) {
        let (proc, lines) = Proc::spawn_log(cmd, name);
        let found = first_line(&lines, "the address it listens on", want);
        (proc, found)
    }

    /// Sends SIGTERM and returns the exit status, which must come within 15 seconds.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        // SAFETY: signalling our own child process by its pid.
        let sent = unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        assert_eq!(sent, 0, "SIGTERM to {}", self.name);
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "{} still running 15 s after SIGTERM",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits up to a minute until `{url}/-/ready` answers, the process running all along.
    pub fn wait_ready(&mut self, url: &str) {
        let started = Instant::now();
        loop {
            self.assert_running();
            if try_get(&format!("{url}/-/ready")).is_some() {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{} not ready",
                self.name
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// The address in a Prometheus or Alertmanager `msg="Listening on" address=...` log line.
pub fn listening_on(line: &str) -> Option<String> {
    if !line.contains("msg=\"Listening on\"") {
        return None;
    }
    let (_, rest) = line.split_once("address=")?;
    rest.split_whitespace().next().map(String::from)
}

/// What a finished command returned.
pub struct Ran {
    /// Its exit code, -1 when killed by a signal.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn ok(&self) -> bool {
        self.code == 0
    }

    /// Stdout followed by stderr.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `cmd` to its end.
pub fn run(cmd: &mut Command) -> Ran {
    run_with_input(cmd, "")
}

/// Runs `cmd` to its end with `input` on its stdin. A command still running after a minute
/// is killed and fails the test, so that a hang is a failure rather than a stuck suite.
pub fn run_with_input(cmd: &mut Command, input: &str) -> Ran {
    let child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let mut proc = Proc {
        child,
        name: "command",
    };
    // Written and closed before waiting.
    let mut stdin = proc.child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    // Drained on threads so that the child never blocks on a full pipe.
    let read = |mut stream: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = stream.read_to_end(&mut text);
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = read(Box::new(proc.child.stdout.take().unwrap()));
    let stderr = read(Box::new(proc.child.stderr.take().unwrap()));
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = proc.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "{cmd:?} still running after a minute"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    Ran {
        code: status.code().unwrap_or(-1),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// Path of the exporter binary built for these tests.
pub fn exporter_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_devin-exporter"))
}

/// The exporter binary with `args` and nothing in its environment but `env`.
pub fn exporter_command(env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut cmd = Command::new(exporter_bin());
    cmd.env_clear().envs(env.iter().copied()).args(args);
    cmd
}

/// A file `name` holding `text` in a new temporary directory, removed when it drops.
pub fn temp_file(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    (dir, path)
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

/// Every line of a child's stream, read on a thread that drains it to the end so that the
/// child never blocks on a full pipe.
pub fn lines_of<R: std::io::Read + Send + 'static>(stream: R) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// What `want` finds in the first of `lines` it accepts, within a minute.
pub fn first_line<T>(
    lines: &Receiver<String>,
    what: &str,
    mut want: impl FnMut(&str) -> Option<T>,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("no line with {what} in time"));
        if let Some(v) = want(&line) {
            return v;
        }
    }
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
    let stdout = lines_of(child.stdout.take().unwrap());
    let proc = Proc {
        child,
        name: "simulator",
    };
    let (url, orgs, token) = first_line(&stdout, "the simulator's address", |line| {
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

/// Starts the simulator with its flags in one string, e.g. `"--orgs 2 --seed 5"`.
pub fn simulator(args: &str) -> Sim {
    start_simulator(&args.split_whitespace().collect::<Vec<_>>())
}

impl Sim {
    /// POSTs an admin action.
    pub fn admin(&self, path_and_query: &str) -> Value {
        post_json(&format!("{}{path_and_query}", self.url), None)
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
        post_json(&format!("{}{path}", self.url), Some(body))
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
        .envs(env.iter().copied())
        .stdout(Stdio::null());
    let (proc, addr) = Proc::spawn_until(&mut cmd, "exporter", |line| {
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
    let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
    let list = list.join(", ");
    let jobs = format!("  - job_name: devin\n    static_configs:\n      - targets: [{list}]\n");
    start_prometheus_with(&jobs, rule_files)
}

/// Starts Prometheus with the given `scrape_configs` entries (YAML, indented by two) and
/// `rule_files`; scrapes and rule evaluation every second.
pub fn start_prometheus_with(scrape_configs: &str, rule_files: &[&Path]) -> Prometheus {
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
    let (dir, config_path) = temp_file("prometheus.yml", &config);
    let (mut proc, addr) = Proc::spawn_until(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg("--web.listen-address=127.0.0.1:0")
            .stdout(Stdio::null()),
        "prometheus",
        listening_on,
    );
    let url = format!("http://{addr}");
    proc.wait_ready(&url);
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
        let (status, body) = http_call("GET", url.as_str(), None)?;
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

    /// Pauses `sim`, then waits until every org's session count and ACUs in Prometheus are
    /// the simulator's totals (ACUs closer than `tolerance(total)`); returns those totals.
    pub fn wait_for_sim_totals(
        &self,
        sim: &Sim,
        timeout: Duration,
        tolerance: impl Fn(f64) -> f64,
    ) -> Vec<Value> {
        sim.admin("/sim/pause");
        let totals = sim.totals().as_array().expect("totals list").clone();
        assert_eq!(totals.len(), sim.orgs.len());
        for org in &totals {
            let id = org["org_id"].as_str().unwrap();
            let want = org["sessions"].as_f64().unwrap();
            let want_acus = org["acus_consumed"].as_f64().unwrap();
            self.wait_for(
                &format!(r#"sum(devin_sessions{{org_id="{id}"}})"#),
                timeout,
                |r| r.first().is_some_and(|v| sample_value(v) == want),
            );
            self.wait_for(
                &format!(r#"sum(devin_sessions_acus_consumed{{org_id="{id}"}})"#),
                timeout,
                |r| {
                    r.first()
                        .is_some_and(|v| (sample_value(v) - want_acus).abs() < tolerance(want_acus))
                },
            );
        }
        totals
    }
}

/// The float value of a query result sample.
pub fn sample_value(v: &Value) -> f64 {
    v["value"][1].as_str().unwrap().parse().unwrap()
}

/// One HTTP call, with a JSON body if given, on a fresh current-thread runtime, so process
/// tests need no async.
pub fn http_call(method: &str, url: &str, json: Option<&str>) -> Result<(u16, String), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let mut req = match method {
            "POST" => client.post(url),
            _ => client.get(url),
        };
        if let Some(json) = json {
            req = req
                .header("content-type", "application/json")
                .body(json.to_string());
        }
        let resp = req.send().await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp.text().await.map_err(|e| e.to_string())?;
        Ok((status, body))
    })
}

/// GET returning the body of a 2xx answer.
pub fn try_get(url: &str) -> Option<String> {
    let (status, body) = http_call("GET", url, None).ok()?;
    (200..300).contains(&status).then_some(body)
}

/// GET that must succeed.
pub fn blocking_get(url: &str) -> String {
    try_get(url).unwrap_or_else(|| panic!("GET {url} failed"))
}

/// POST (with a JSON body if given) that must succeed; its answer as JSON, null if it is not.
pub fn post_json(url: &str, json: Option<&str>) -> Value {
    let (status, body) = http_call("POST", url, json).unwrap_or_else(|e| panic!("POST {url}: {e}"));
    assert!(
        (200..300).contains(&status),
        "POST {url} failed: {status} {body}"
    );
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

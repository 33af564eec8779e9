//! Benchmark support: an allocation-counting allocator, RSS and CPU readings, synthetic pages.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use devin_exporter::api::enums::{CATEGORIES, ORIGINS};

/// Counts live heap bytes, so that state size is measured, not estimated.
pub struct CountingAlloc;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Live heap bytes now.
pub fn live_bytes() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// Peak resident set size of this process, from /proc (bytes).
pub fn peak_rss_bytes() -> u64 {
    proc_status_kb("VmHWM:") * 1024
}

/// Resident set size now (bytes).
pub fn rss_bytes() -> u64 {
    proc_status_kb("VmRSS:") * 1024
}

fn proc_status_kb(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// User plus system CPU time of this process so far.
pub fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a full rusage into the pointer it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// A duration in milliseconds, for printing.
/// GETs `url` as Prometheus would with a scrape timeout of `timeout_secs`: how long the
/// answer took, and the body.
pub async fn timed_get(
    client: &reqwest::Client,
    url: &str,
    timeout_secs: &str,
) -> (Duration, String) {
    let started = std::time::Instant::now();
    let response = client
        .get(url)
        .header("X-Prometheus-Scrape-Timeout-Seconds", timeout_secs)
        .send()
        .await
        .expect("scrape answered");
    let body = response.text().await.expect("scrape body");
    (started.elapsed(), body)
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The p-th percentile (0..=100) of `samples`.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut s = samples.to_vec();
    s.sort();
    if s.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (s.len() - 1) as f64).round() as usize;
    s[rank.min(s.len() - 1)]
}

const STATUSES: &[(&str, &str)] = &[
    ("exit", "null"),
    ("exit", "null"),
    ("exit", "null"),
    ("running", "\"working\""),
    ("running", "\"waiting_for_user\""),
    ("running", "\"waiting_for_approval\""),
    ("running", "\"finished\""),
    ("suspended", "\"inactivity\""),
    ("suspended", "\"user_request\""),
    ("suspended", "\"out_of_credits\""),
    ("error", "null"),
    ("new", "null"),
];

/// A synthetic list page of sessions `start..start+n`, with a realistic spread of labels.
pub fn synthetic_page(start: u64, n: u64) -> String {
    let mut out = String::with_capacity(n as usize * 420);
    out.push_str("{\"items\":[");
    for i in start..start + n {
        if i > start {
            out.push(',');
        }
        let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let (status, detail) = STATUSES[(h % STATUSES.len() as u64) as usize];
        let origin = ORIGINS[((h >> 8) % ORIGINS.len() as u64) as usize];
        let category = CATEGORIES[((h >> 16) % CATEGORIES.len() as u64) as usize];
        let prs = match (h >> 24) % 10 {
            0..=5 => "",
            6 | 7 => r#"{"pr_url":"https://github.com/acme/app/pull/1","pr_state":"merged"}"#,
            8 => r#"{"pr_url":"https://github.com/acme/app/pull/2","pr_state":"open"}"#,
            _ => {
                r#"{"pr_url":"https://github.com/acme/app/pull/3","pr_state":"closed"},{"pr_url":"https://github.com/acme/app/pull/4","pr_state":"merged"}"#
            }
        };
        let created = 1_750_000_000 + (i as i64) * 7;
        // Who and what: 300 users and 3 service users, 20 playbooks (or none), up to two of
        // 12 tags, so that the spend breakdowns have realistic spreads.
        let (user, service) = match (h >> 40) % 10 {
            0 => (
                "null".to_string(),
                format!("\"service-user-{}\"", (h >> 44) % 3),
            ),
            _ => (format!("\"user-{}\"", (h >> 44) % 300), "null".to_string()),
        };
        let playbook = match (h >> 52) % 40 {
            n if n < 20 => format!("\"playbook-{n}\""),
            _ => "null".to_string(),
        };
        let tags = match (h >> 58) % 4 {
            0 => String::new(),
            1 | 2 => format!("\"tag-{}\"", (h >> 20) % 12),
            _ => format!("\"tag-{}\",\"tag-{}\"", (h >> 20) % 12, (h >> 28) % 12),
        };
        out.push_str(&format!(
            r#"{{"session_id":"devin-{i:032x}","url":"https://app.devin.ai/sessions/{i:032x}","status":"{status}","status_detail":{detail},"origin":"{origin}","category":"{category}","org_id":"org-bench","created_at":{created},"updated_at":{updated},"acus_consumed":{acus:.3},"pull_requests":[{prs}],"is_archived":{archived},"title":"Benchmark session {i}","user_id":{user},"service_user_id":{service},"playbook_id":{playbook},"tags":[{tags}]}}"#,
            updated = created + 600,
            acus = (h % 5000) as f64 / 100.0,
            archived = (h >> 32) % 7 == 0,
        ));
    }
    out.push_str("],\"end_cursor\":null,\"has_next_page\":false,\"total\":null}");
    out
}

/// The simulator running as its own process (`devin-exporter simulate`), killed on drop.
pub struct Sim {
    /// Base URL.
    pub url: String,
    /// Its org ids.
    pub orgs: Vec<String>,
    child: Child,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sim {
    /// Starts `devin-exporter simulate --listen 127.0.0.1:0` with `args`.
    pub fn start(args: &[&str]) -> Sim {
        let mut child = Command::new(env!("CARGO_BIN_EXE_devin-exporter"))
            .args(["simulate", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("simulator starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let rest = line
            .trim()
            .strip_prefix("simulator listening on ")
            .expect("address line");
        let mut parts = rest.split_whitespace();
        let url = parts.next().unwrap().to_string();
        let orgs = parts
            .find_map(|p| p.strip_prefix("orgs="))
            .unwrap()
            .split(',')
            .map(String::from)
            .collect();
        Sim { url, orgs, child }
    }
}

/// An exporter served in-process over HTTP, as the binary serves it (socket options
/// included), collecting from a simulator.
pub struct InProcess {
    pub exporter: std::sync::Arc<devin_exporter::exporter::Exporter>,
    /// Its `/metrics` URL.
    pub url: String,
    pub server: tokio::task::JoinHandle<()>,
}

/// Starts an [`InProcess`] exporter on `sim` with the token `cog_bench`, plus `extra` variables.
pub async fn start_exporter(sim: &Sim, extra: &[(&str, &str)]) -> InProcess {
    let mut vars = vec![
        ("DEVIN_API_URL".to_string(), sim.url.clone()),
        ("DEVIN_ORG_IDS".to_string(), sim.orgs.join(",")),
        ("DEVIN_API_TOKEN".to_string(), "cog_bench".to_string()),
    ];
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let config = devin_exporter::config::from_vars(vars).unwrap();
    let (exporter, router) = devin_exporter::app::build(
        &config,
        None,
        devin_exporter::DataSource::Api,
        &devin_exporter::http::web_config::WebConfig::default(),
    )
    .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/metrics", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        devin_exporter::http::serve(listener, router, None)
            .await
            .unwrap();
    });
    InProcess {
        exporter,
        url,
        server,
    }
}

/// A `/metrics` body read with the exposition format's parser.
pub struct Exposition(prometheus_parse::Scrape);

impl Exposition {
    /// Parses `body`.
    pub fn parse(body: &str) -> Self {
        let lines = body.lines().map(|l| Ok(l.to_string()));
        Exposition(prometheus_parse::Scrape::parse(lines).expect("a valid exposition"))
    }

    /// The values of the series of `name`.
    pub fn values(&self, name: &str) -> Vec<f64> {
        use prometheus_parse::Value;
        self.0
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter_map(|s| match s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
                _ => None,
            })
            .collect()
    }

    /// The values of `label` on the series of `name` whose value is `value`.
    pub fn labels_where(&self, name: &str, label: &str, value: f64) -> Vec<String> {
        use prometheus_parse::Value;
        self.0
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| {
                matches!(s.value, Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) if v == value)
            })
            .filter_map(|s| s.labels.get(label).map(String::from))
            .collect()
    }

    /// The sum of the series of `name`.
    pub fn sum(&self, name: &str) -> f64 {
        self.values(name).iter().sum()
    }

    /// Series in the body, each histogram bucket one.
    pub fn series(&self) -> usize {
        use prometheus_parse::Value;
        self.0
            .samples
            .iter()
            .map(|s| match &s.value {
                Value::Histogram(buckets) => buckets.len(),
                _ => 1,
            })
            .sum()
    }
}

//! The `devin-exporter` binary: command line, configuration, logging, and the server.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[cfg(feature = "simulator")]
use devin_exporter::config::{Config, LogFormat, Secret, TokenSource};
use devin_exporter::http::web_config::WebConfig;
#[cfg(feature = "simulator")]
use devin_exporter::simulator::cli::SimulateArgs;
#[cfg(feature = "simulator")]
use devin_exporter::simulator::{SimConfig, Simulator};
use devin_exporter::{DataSource, app, config, logging};

const CONFIG_HELP: &str = "\
Configuration (environment):
  DEVIN_API_TOKEN                service-user token (cog_...), or:
  DEVIN_API_TOKEN_FILE           file holding the token (re-read when it changes)
  DEVIN_ORG_IDS                  comma-separated org ids to collect
  DEVIN_API_URL                  API base URL [default: https://api.devin.ai]
  DEVIN_LISTEN_ADDRESS           address to serve on [default: 0.0.0.0:10164]
  DEVIN_PAGE_SIZE                sessions per request, 1..200 [default: 200]
  DEVIN_SCRAPE_TIMEOUT           collection budget without a Prometheus timeout header [default: 25s]
  DEVIN_SYNC_OVERLAP             deep re-checks re-read this much before the watermark [default: 2m]
  DEVIN_DEEP_RECHECK_INTERVAL    how often an incremental listing is a deep re-check [default: 5m]
  DEVIN_MAX_SESSIONS_PER_ORG     an org with more sessions fails its collection [default: 5000000]
  DEVIN_FULL_RESYNC_INTERVAL     full re-listing period, drops deleted sessions [default: 1h]
  DEVIN_LOOKBACK                 only sessions created within this window, e.g. 30d [default: all]
  DEVIN_ATTRIBUTION              spend breakdowns: comma list of user, playbook, tag [default: none]
  DEVIN_ATTRIBUTION_MAX_VALUES   values per breakdown and org, the rest count as overflow [default: 500]
  DEVIN_TOP_ACTIVE_SESSIONS      active sessions with the most ACUs shown per org, 0 for none [default: 5]
  DEVIN_MAX_REQUESTS_PER_SECOND  client-side request budget of the token [default: 20]
  DEVIN_MAX_CONCURRENT_REQUESTS  API requests in flight at once, also org collections at once [default: 16]
  DEVIN_MAX_RESPONSE_BYTES       largest API response accepted [default: 33554432]
  DEVIN_REQUEST_TIMEOUT          timeout of one API request [default: 30s]
  DEVIN_MAX_RETRY_AFTER          longest a 429's Retry-After holds requests back [default: 60s]
  DEVIN_DISCOVER_ORGS            also collect the enterprise's orgs [default: false]
  DEVIN_DISCOVERY_INTERVAL       how often discovery refreshes [default: 10m]
  DEVIN_EXCLUDE_ORG_IDS          orgs never collected
  DEVIN_WEB_CONFIG_FILE          TLS and basic auth (Prometheus web config format)
  DEVIN_LOG_FORMAT               text or json; levels via RUST_LOG [default: text]
  DEVIN_HEALTHCHECK_CLIENT_CERT  client certificate of `healthcheck` under mutual TLS
  DEVIN_HEALTHCHECK_CLIENT_KEY   its private key
Without any DEVIN_ variable (or with --demo), it runs in demo mode against a built-in
simulated API; a variable set but empty is an error.";

/// Prometheus exporter for Devin sessions.
#[derive(Parser, Debug)]
#[command(name = "devin-exporter", version, about, after_help = CONFIG_HELP)]
struct Cli {
    /// Collect from the built-in simulated Devin API (also the default without any DEVIN_
    /// variable).
    #[arg(long)]
    demo: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the simulated Devin API on its own (for developing dashboards and tests).
    #[cfg(feature = "simulator")]
    Simulate(SimulateArgs),
    /// Serve the simulated Devin API on its own: not in this build (no `simulator` feature).
    #[cfg(not(feature = "simulator"))]
    Simulate {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        args: Vec<String>,
    },
    /// Check the token and every org without starting the server: exit 0 when every org is
    /// readable, 1 when one is not, 2 on bad configuration.
    Check,
    /// Exit 0 if the exporter's /healthz answers 200 (for container health checks).
    Healthcheck {
        /// URL to check [default: /healthz on the port of DEVIN_LISTEN_ADDRESS, over https
        /// when DEVIN_WEB_CONFIG_FILE configures TLS]
        #[arg(long)]
        url: Option<String>,
        /// PEM client certificate to present (when the web config asks for one)
        #[arg(long, env = "DEVIN_HEALTHCHECK_CLIENT_CERT")]
        client_cert: Option<std::path::PathBuf>,
        /// PEM private key of that certificate
        #[arg(long, env = "DEVIN_HEALTHCHECK_CLIENT_KEY")]
        client_key: Option<std::path::PathBuf>,
    },
}

/// Exit code of a configuration error.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Some(Command::Healthcheck {
            url,
            client_cert,
            client_key,
        }) => {
            let identity = match client_identity(client_cert.as_deref(), client_key.as_deref()) {
                Ok(i) => i,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            let url = url.unwrap_or_else(own_health_url);
            return runtime.block_on(healthcheck(&url, identity));
        }
        #[cfg(not(feature = "simulator"))]
        Some(Command::Simulate { .. }) => {
            eprintln!("error: {}", without_simulator("the simulate subcommand"));
            return ExitCode::from(EXIT_CONFIG);
        }
        #[cfg(feature = "simulator")]
        Some(Command::Simulate(args)) => {
            logging::init(LogFormat::Text);
            return match runtime.block_on(devin_exporter::simulator::cli::run(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: simulator: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Some(Command::Check) => return runtime.block_on(check()),
        None => {}
    }
    let config = if cli.demo {
        config::demo_from_env()
    } else {
        config::from_env()
    };
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    #[cfg(not(feature = "simulator"))]
    if cli.demo || config.is_demo() {
        eprintln!(
            "error: {}; set DEVIN_API_TOKEN and DEVIN_ORG_IDS to collect real sessions",
            without_simulator("demo mode")
        );
        return ExitCode::from(EXIT_CONFIG);
    }
    logging::init(config.log_format);
    let result = runtime.block_on(async {
        #[cfg(feature = "simulator")]
        if cli.demo || config.is_demo() {
            return demo(config).await;
        }
        app::run(&config, None, DataSource::Api).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // One line, whatever the log format: these are start-up errors (token file, address,
        // web config) that name their variable.
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// The error of a feature that needs the simulator, in a build without it.
#[cfg(not(feature = "simulator"))]
fn without_simulator(what: &str) -> String {
    format!(
        "{what} needs the simulated Devin API, which this build leaves out (build with the default feature `simulator`)"
    )
}

/// Demo mode: the simulator in-process on a loopback port, the exporter pointed at it.
#[cfg(feature = "simulator")]
async fn demo(mut config: Config) -> Result<(), String> {
    // The simulated clock runs at wall-clock speed (so that timestamps and ages are real);
    // a busy arrival rate keeps sessions visibly moving between scrapes.
    let sim = Simulator::new(SimConfig {
        arrivals_per_hour: 240.0,
        demo_org_ids: true,
        ..SimConfig::default()
    });
    let addr = sim
        .spawn(([127, 0, 0, 1], 0).into())
        .await
        .map_err(|e| format!("demo simulator: {e}"))?;
    config.api_url = format!("http://{addr}");
    config.org_ids = sim.org_ids();
    config.discover_orgs = false;
    // The demo shows every spend breakdown unless told otherwise.
    if config.attribution.is_off() {
        config.attribution = devin_exporter::config::Attribution::ALL;
    }
    // A WARN: simulated data must not pass unnoticed, also with RUST_LOG=warn.
    tracing::warn!(
        api = %config.api_url,
        orgs = %config.org_ids.join(","),
        "demo mode: serving SIMULATED data from the built-in Devin API simulator, not real sessions (no DEVIN_ variable given, or --demo); /metrics says devin_exporter_demo_mode 1"
    );
    app::run(
        &config,
        Some(TokenSource::Value(Secret::new(sim.token()))),
        DataSource::Simulated,
    )
    .await
}

/// `devin-exporter check`: the report on stdout, configuration errors on stderr.
async fn check() -> ExitCode {
    let config = match config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match devin_exporter::check::run(&config, &mut std::io::stdout()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// This process's own /healthz, from the environment the server would read.
fn own_health_url() -> String {
    let port = std::env::var("DEVIN_LISTEN_ADDRESS")
        .ok()
        .and_then(|a| a.trim().parse::<std::net::SocketAddr>().ok())
        .map_or(config::DEFAULT_PORT, |a| a.port());
    let tls = std::env::var("DEVIN_WEB_CONFIG_FILE")
        .ok()
        .filter(|p| !p.trim().is_empty())
        .and_then(|p| WebConfig::load(std::path::Path::new(&p)).ok())
        .is_some_and(|w| w.tls_server_config.is_some());
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://127.0.0.1:{port}/healthz")
}

/// The healthcheck's client certificate under mutual TLS: both files or neither.
fn client_identity(
    cert: Option<&std::path::Path>,
    key: Option<&std::path::Path>,
) -> Result<Option<reqwest::Identity>, String> {
    let read = |var: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| format!("{var}={}: cannot read ({e})", path.display()))
    };
    match (cert, key) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => {
            let mut pem = read("DEVIN_HEALTHCHECK_CLIENT_CERT", cert)?;
            pem.push(b'\n');
            pem.extend(read("DEVIN_HEALTHCHECK_CLIENT_KEY", key)?);
            reqwest::Identity::from_pem(&pem).map(Some).map_err(|e| {
                format!(
                    "DEVIN_HEALTHCHECK_CLIENT_CERT={}: not a PEM certificate and key ({e})",
                    cert.display()
                )
            })
        }
        (Some(_), None) => Err(
            "DEVIN_HEALTHCHECK_CLIENT_KEY is not set: the client certificate needs its key"
                .to_string(),
        ),
        (None, Some(_)) => Err(
            "DEVIN_HEALTHCHECK_CLIENT_CERT is not set: the key needs its client certificate"
                .to_string(),
        ),
    }
}

async fn healthcheck(url: &str, identity: Option<reqwest::Identity>) -> ExitCode {
    // The check talks to its own server over loopback: its certificate (often issued for a
    // service name) is not what is being checked.
    let mut builder = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .tls_danger_accept_invalid_certs(url.starts_with("https://127.0.0.1"));
    if let Some(identity) = identity {
        builder = builder.identity(identity);
    }
    let client = match builder.build() {
        Ok(c) => c,
        Err(_) => return ExitCode::FAILURE,
    };
    match client.get(url).send().await {
        Ok(r) if r.status().is_success() => ExitCode::SUCCESS,
        Ok(r) => {
            eprintln!("unhealthy: {url} answered {}", r.status());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("unhealthy: {url}: {e}");
            ExitCode::FAILURE
        }
    }
}

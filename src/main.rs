//! The `devin-exporter` binary: command line, configuration, logging, and the server.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use devin_exporter::config::{Config, LogFormat, Secret, TokenSource};
use devin_exporter::http::web_config::WebConfig;
use devin_exporter::simulator::cli::SimulateArgs;
use devin_exporter::simulator::{SimConfig, Simulator};
use devin_exporter::{app, config, logging};

const CONFIG_HELP: &str = "\
Configuration (environment):
  DEVIN_API_TOKEN                service-user token (cog_...), or:
  DEVIN_API_TOKEN_FILE           file holding the token (re-read when it changes)
  DEVIN_ORG_IDS                  comma-separated org ids to collect
  DEVIN_API_URL                  API base URL [default: https://api.devin.ai]
  DEVIN_LISTEN_ADDRESS           address to serve on [default: 0.0.0.0:10164]
  DEVIN_PAGE_SIZE                sessions per request, 1..200 [default: 200]
  DEVIN_SCRAPE_TIMEOUT           collection budget without a Prometheus timeout header [default: 25s]
  DEVIN_SYNC_OVERLAP             incremental listings re-read this much before the watermark [default: 2m]
  DEVIN_FULL_RESYNC_INTERVAL     full re-listing period, drops deleted sessions [default: 1h]
  DEVIN_LOOKBACK                 only sessions created within this window, e.g. 30d [default: all]
  DEVIN_MAX_REQUESTS_PER_SECOND  client-side request budget of the token [default: 20]
  DEVIN_MAX_CONCURRENT_REQUESTS  API requests in flight at once, also org collections at once [default: 16]
  DEVIN_MAX_RESPONSE_BYTES       largest API response accepted [default: 33554432]
  DEVIN_REQUEST_TIMEOUT          timeout of one API request [default: 30s]
  DEVIN_DISCOVER_ORGS            also collect the enterprise's orgs [default: false]
  DEVIN_DISCOVERY_INTERVAL       how often discovery refreshes [default: 10m]
  DEVIN_EXCLUDE_ORG_IDS          orgs never collected
  DEVIN_WEB_CONFIG_FILE          TLS and basic auth (Prometheus web config format)
  DEVIN_LOG_FORMAT               text or json; levels via RUST_LOG [default: text]
With neither token nor org ids, it runs in demo mode against a built-in simulated API.";

/// Prometheus exporter for Devin sessions.
#[derive(Parser, Debug)]
#[command(name = "devin-exporter", version, about, after_help = CONFIG_HELP)]
struct Cli {
    /// Collect from the built-in simulated Devin API (also the default without token and orgs).
    #[arg(long)]
    demo: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the simulated Devin API on its own (for developing dashboards and tests).
    Simulate(SimulateArgs),
    /// Exit 0 if the exporter's /healthz answers 200 (for container health checks).
    Healthcheck {
        /// URL to check [default: /healthz on the port of DEVIN_LISTEN_ADDRESS, over https
        /// when DEVIN_WEB_CONFIG_FILE configures TLS]
        #[arg(long)]
        url: Option<String>,
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
        Some(Command::Healthcheck { url }) => {
            let url = url.unwrap_or_else(own_health_url);
            return runtime.block_on(healthcheck(&url));
        }
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
        None => {}
    }
    let config = match config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    logging::init(config.log_format);
    let result = runtime.block_on(async {
        if cli.demo || config.is_demo() {
            demo(config).await
        } else {
            app::run(&config, None, false).await
        }
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

/// Demo mode: the simulator in-process on a loopback port, the exporter pointed at it.
async fn demo(mut config: Config) -> Result<(), String> {
    // The simulated clock runs at wall-clock speed (so that timestamps and ages are real);
    // a busy arrival rate keeps sessions visibly moving between scrapes.
    let sim = Simulator::new(SimConfig {
        arrivals_per_hour: 240.0,
        ..SimConfig::default()
    });
    let addr = sim
        .spawn(([127, 0, 0, 1], 0).into())
        .await
        .map_err(|e| format!("demo simulator: {e}"))?;
    config.api_url = format!("http://{addr}");
    config.org_ids = sim.org_ids();
    config.discover_orgs = false;
    tracing::info!(
        api = %config.api_url,
        orgs = %config.org_ids.join(","),
        "demo mode: no DEVIN_API_TOKEN/DEVIN_ORG_IDS given, collecting from the built-in simulated Devin API"
    );
    app::run(
        &config,
        Some(TokenSource::Value(Secret::new(sim.token()))),
        true,
    )
    .await
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

async fn healthcheck(url: &str) -> ExitCode {
    // The check talks to its own server over loopback: its certificate (often issued for a
    // service name) is not what is being checked.
    let client = match reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .tls_danger_accept_invalid_certs(url.starts_with("https://127.0.0.1"))
        .build()
    {
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

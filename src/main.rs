//! The `devin-exporter` binary: command line, configuration, logging, and the server.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use devin_exporter::app::StartupError;
#[cfg(feature = "simulator")]
use devin_exporter::config::{Config, Secret, TokenSource};
use devin_exporter::config::{ConfigError, LogFormat};
use devin_exporter::http::web_config::WebConfig;
#[cfg(feature = "simulator")]
use devin_exporter::simulator::cli::SimulateArgs;
#[cfg(feature = "simulator")]
use devin_exporter::simulator::{SimConfig, Simulator};
use devin_exporter::{DataSource, app, config, logging};

/// Prometheus exporter for Devin sessions.
#[derive(Parser, Debug)]
#[command(name = "devin-exporter", version, about, after_help = config::help())]
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
        /// PEM client certificate to present (when the web config asks for one) [default:
        /// DEVIN_HEALTHCHECK_CLIENT_CERT]
        #[arg(long)]
        client_cert: Option<std::path::PathBuf>,
        /// PEM private key of that certificate [default: DEVIN_HEALTHCHECK_CLIENT_KEY]
        #[arg(long)]
        client_key: Option<std::path::PathBuf>,
    },
}

/// Reports `error` on one line and exits with its code: 2 for bad configuration, 1 for a
/// failure at run time.
fn fail(error: impl Into<StartupError>) -> ExitCode {
    let error = error.into();
    logging::stderr_line(format_args!("error: {error}"));
    ExitCode::from(error.exit_code())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            logging::stderr_line(format_args!("error: cannot start the runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Some(Command::Healthcheck {
            url,
            client_cert,
            client_key,
        }) => {
            // The variables as the server reads them: a bad one is an error, never a guess.
            let env = match config::healthcheck_from_env() {
                Ok(env) => env,
                Err(e) => return fail(e),
            };
            let cert = client_cert.or(env.healthcheck_client_cert.clone());
            let key = client_key.or(env.healthcheck_client_key.clone());
            let identity = match client_identity(cert.as_deref(), key.as_deref()) {
                Ok(i) => i,
                Err(e) => return fail(e),
            };
            let url = match url.map_or_else(|| own_health_url(&env), Ok) {
                Ok(url) => url,
                Err(e) => return fail(e),
            };
            return runtime.block_on(healthcheck(&url, identity));
        }
        #[cfg(not(feature = "simulator"))]
        Some(Command::Simulate { .. }) => {
            return fail(ConfigError(without_simulator("the simulate subcommand")));
        }
        #[cfg(feature = "simulator")]
        Some(Command::Simulate(args)) => {
            let log = match start_logging(LogFormat::Text) {
                Ok(log) => log,
                Err(code) => return code,
            };
            let result = runtime.block_on(devin_exporter::simulator::cli::run(args));
            drop(log);
            return match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    logging::stderr_line(format_args!("error: simulator: {e}"));
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
        Err(e) => return fail(e),
    };
    #[cfg(not(feature = "simulator"))]
    if cli.demo || config.is_demo() {
        return fail(ConfigError(format!(
            "{}; set DEVIN_API_TOKEN and DEVIN_ORG_IDS to collect real sessions",
            without_simulator("demo mode")
        )));
    }
    let log = match start_logging(config.log_format) {
        Ok(log) => log,
        Err(code) => return code,
    };
    let result = runtime.block_on(async {
        #[cfg(feature = "simulator")]
        if cli.demo || config.is_demo() {
            return demo(config).await;
        }
        app::run(&config, None, DataSource::Api).await
    });
    // The log's last lines come out before an error line, and before the exit.
    drop(log);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // One line, whatever the log format, naming the variable at fault if there is one.
        Err(e) => fail(e),
    }
}

/// Starts the log; if it cannot start, says so on stderr and returns the exit code.
fn start_logging(format: LogFormat) -> Result<logging::Flush, ExitCode> {
    logging::init(format).map_err(|e| {
        logging::stderr_line(format_args!("error: cannot start the log writer: {e}"));
        ExitCode::FAILURE
    })
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
async fn demo(mut config: Config) -> Result<(), StartupError> {
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
        .map_err(StartupError::Simulator)?;
    config.api.api_url = format!("http://{addr}");
    config.org_ids = sim.org_ids();
    config.discovery.discover_orgs = false;
    // The demo shows every spend breakdown unless told otherwise.
    if config.sync.spend.attribution.is_off() {
        config.sync.spend.attribution = devin_exporter::config::Attribution::ALL;
    }
    // A WARN: simulated data must not pass unnoticed, also with RUST_LOG=warn.
    tracing::warn!(
        api = %config.api.api_url,
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
        Err(e) => return fail(e),
    };
    match devin_exporter::check::run(&config, &mut std::io::stdout()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => fail(e),
    }
}

/// The server's own /healthz, from the environment the server reads: its port, and https
/// when its web config serves TLS (a web config the server would refuse fails here too).
fn own_health_url(env: &config::HealthcheckConfig) -> Result<String, StartupError> {
    let tls = match &env.web_config_file {
        Some(path) => WebConfig::load(path)?.tls_server_config.is_some(),
        None => false,
    };
    let scheme = if tls { "https" } else { "http" };
    let port = env.listen_address.port();
    Ok(format!("{scheme}://127.0.0.1:{port}/healthz"))
}

/// The healthcheck's client certificate under mutual TLS: both files or neither.
fn client_identity(
    cert: Option<&std::path::Path>,
    key: Option<&std::path::Path>,
) -> Result<Option<reqwest::Identity>, ConfigError> {
    let read = |var: &str, path: &std::path::Path| {
        std::fs::read(path)
            .map_err(|e| ConfigError(format!("{var}={}: cannot read ({e})", path.display())))
    };
    match (cert, key) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => {
            let mut pem = read("DEVIN_HEALTHCHECK_CLIENT_CERT", cert)?;
            pem.push(b'\n');
            pem.extend(read("DEVIN_HEALTHCHECK_CLIENT_KEY", key)?);
            reqwest::Identity::from_pem(&pem).map(Some).map_err(|e| {
                ConfigError(format!(
                    "DEVIN_HEALTHCHECK_CLIENT_CERT={}: not a PEM certificate and key ({e})",
                    cert.display()
                ))
            })
        }
        (Some(_), None) => Err(ConfigError(
            "DEVIN_HEALTHCHECK_CLIENT_KEY is not set: the client certificate needs its key".into(),
        )),
        (None, Some(_)) => Err(ConfigError(
            "DEVIN_HEALTHCHECK_CLIENT_CERT is not set: the key needs its client certificate".into(),
        )),
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
            logging::stderr_line(format_args!("unhealthy: {url} answered {}", r.status()));
            ExitCode::FAILURE
        }
        Err(e) => {
            logging::stderr_line(format_args!("unhealthy: {url}: {e}"));
            ExitCode::FAILURE
        }
    }
}

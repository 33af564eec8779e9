//! `devin-exporter simulate`: the simulator on its own, for developing dashboards.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use super::{SimConfig, Simulator};

/// Flags of `devin-exporter simulate`.
#[derive(clap::Args, Debug, Clone)]
pub struct SimulateArgs {
    /// Address to serve on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8089")]
    pub listen: SocketAddr,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Number of orgs.
    #[arg(long, default_value_t = 3)]
    pub orgs: usize,
    /// Sessions per org at the start.
    #[arg(long, default_value_t = 2000)]
    pub sessions_per_org: usize,
    /// How far back those sessions were created (e.g. 30d).
    #[arg(long, default_value = "30d", value_parser = humantime::parse_duration)]
    pub history: Duration,
    /// New sessions per org per simulated hour.
    #[arg(long, default_value_t = 30.0)]
    pub arrivals_per_hour: f64,
    /// Simulated seconds per real second (0 freezes the clock).
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Latency added to every API response (e.g. 50ms).
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub latency: Duration,
    /// Accepted bearer token (repeatable).
    #[arg(long = "token", default_value = "cog_sim_5d2e8a41c7f9")]
    pub tokens: Vec<String>,
    /// Treat created_/updated_ bounds as strict instead of inclusive.
    #[arg(long)]
    pub exclusive_time_bounds: bool,
    /// Answer 403 (no ViewOrgSessions) for this org id (repeatable).
    #[arg(long = "forbidden-org")]
    pub forbidden_orgs: Vec<String>,
    /// Answer 403 for this billing source: enterprise_consumption, org_consumption,
    /// acu_limits or queue (repeatable).
    #[arg(long = "forbidden-billing", value_parser = ["enterprise_consumption", "org_consumption", "acu_limits", "queue"])]
    pub forbidden_billing: Vec<String>,
    /// Answer 403 (no ViewOrgConsumption) for this org's consumption (repeatable).
    #[arg(long = "forbidden-consumption-org")]
    pub forbidden_consumption_orgs: Vec<String>,
    /// Answer 403 (no ViewAccountSessions) for the enterprise session stream.
    #[arg(long)]
    pub forbid_enterprise_sessions: bool,
}

impl SimulateArgs {
    /// The simulator configuration these flags describe.
    pub fn to_config(&self) -> SimConfig {
        SimConfig {
            seed: self.seed,
            orgs: self.orgs,
            sessions_per_org: self.sessions_per_org,
            history: self.history,
            arrivals_per_hour: self.arrivals_per_hour,
            speed: self.speed,
            latency: self.latency,
            tokens: self.tokens.clone(),
            exclusive_time_bounds: self.exclusive_time_bounds,
            start_time: None,
            demo_org_ids: false,
            forbidden_orgs: self.forbidden_orgs.clone(),
            forbidden_billing: self.forbidden_billing.clone(),
            forbidden_consumption_orgs: self.forbidden_consumption_orgs.clone(),
            forbid_enterprise_sessions: self.forbid_enterprise_sessions,
        }
    }
}

/// Runs the simulator until SIGTERM/SIGINT. Prints one line with its address, orgs and token.
pub async fn run(args: SimulateArgs) -> std::io::Result<()> {
    let sim = Simulator::new(args.to_config());
    let addr = sim.spawn(args.listen).await?;
    let mut out = std::io::stdout();
    writeln!(
        out,
        "simulator listening on http://{addr} orgs={} token={}",
        sim.org_ids().join(","),
        sim.token()
    )?;
    out.flush()?;
    crate::shutdown_signal().await;
    Ok(())
}

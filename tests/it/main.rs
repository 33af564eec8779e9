//! The integration tests, one binary: each module was a test binary of its own, and linking
//! the whole crate into every one of them was most of the suite's build time.

mod common;

// The build script, for the tests of how it finds the tools some tests need (its `main`
// goes unused here).
#[allow(dead_code)]
#[path = "../../build.rs"]
mod build_script;

mod billing;
mod check;
mod cli;
mod collection;
mod dashboards_static;
mod deployment_examples;
mod discovery;
mod e2e_alerting;
mod e2e_dashboards;
mod e2e_prometheus;
mod e2e_sharding;
mod hostile_api;
mod hostile_data;
mod hostile_sync;
mod incremental;
mod landing;
mod limits;
mod log_pipes;
mod malformed;
mod metric_families;
mod parser_props;
mod scheduling;
mod scrape_timeout_header;
mod simulator;
mod spend;
mod stream;
mod stream_hostile;
mod sync_equivalence;
mod web_config_files;
mod web_security;
mod web_tls;

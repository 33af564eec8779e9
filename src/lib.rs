#![warn(missing_docs)]
//! devin-exporter: a Prometheus exporter for the sessions of Devin organizations.
//!
//! Layout: [`config`] reads the environment; [`api`] talks to the Devin API; [`sync`] keeps
//! each org's sessions current; [`metrics`] renders them; [`http`] serves them; [`exporter`]
//! ties orgs to scrapes; [`discovery`] finds an enterprise's orgs; [`app`] wires it all
//! together.

pub mod api;
pub mod app;
pub mod check;
pub mod config;
pub mod discovery;
pub mod exporter;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod simulator;
pub mod sync;

//! devin-exporter: a Prometheus exporter for the sessions of Devin organizations.

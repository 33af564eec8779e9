//! Every metric family the exporter writes, declared once: name, type, help and label names.
//! The writers fill families only through these declarations (a series is its label values,
//! in the declared order), and the tests hold the README's metric table and the dashboards'
//! and rules' metric contract to [`ALL`]. Adding a family is one entry here plus its writer.

/// The type of a family, as the `# TYPE` line spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A value that goes up and down.
    Gauge,
    /// A value that only grows while the process runs.
    Counter,
    /// Buckets, sum and count of observations.
    Histogram,
}

impl Kind {
    /// The `# TYPE` word.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::Histogram => "histogram",
        }
    }
}

/// One metric family.
#[derive(Debug, PartialEq, Eq)]
pub struct FamilyDef {
    /// The metric name.
    pub name: &'static str,
    /// Its type.
    pub kind: Kind,
    /// The `# HELP` text.
    pub help: &'static str,
    /// Its label names, in the order the writers give the values (`le` of histogram
    /// buckets comes on top).
    pub labels: &'static [&'static str],
}

macro_rules! families {
    ($($(#[$doc:meta])* $id:ident = $name:literal, $kind:ident [$($label:literal),*], $help:literal;)*) => {
        $($(#[$doc])* pub static $id: FamilyDef = FamilyDef {
            name: $name,
            kind: Kind::$kind,
            help: $help,
            labels: &[$($label),*],
        };)*

        /// Every family, in the order a body lists them.
        pub static ALL: &[&FamilyDef] = &[$(&$id),*];
    };
}

families! {
    // Sessions of an org, by state (sessions.rs).
    /// `devin_sessions`.
    SESSIONS = "devin_sessions", Gauge ["org_id", "status", "status_detail", "origin", "category"],
        "Sessions in this state now, archived ones included.";
    /// `devin_sessions_acus_consumed`.
    SESSIONS_ACUS = "devin_sessions_acus_consumed", Gauge ["org_id", "status", "status_detail", "origin", "category"],
        "Sum of acus_consumed of the sessions in this state.";
    /// `devin_acus_consumed_total`.
    ACUS_CONSUMED = "devin_acus_consumed_total", Counter ["org_id"],
        "ACUs consumed by the org's sessions since this process finished its first listing of the org.";
    /// `devin_sessions_created_total`.
    SESSIONS_CREATED = "devin_sessions_created_total", Counter ["org_id", "origin"],
        "Sessions created since this process finished its first listing of the org, by origin.";
    /// `devin_sessions_entered_status_total`.
    SESSIONS_ENTERED_STATUS = "devin_sessions_entered_status_total", Counter ["org_id", "status", "status_detail"],
        "Sessions seen moving into a status and status detail after the org's first listing.";
    /// `devin_session_pull_requests`.
    PULL_REQUESTS = "devin_session_pull_requests", Gauge ["org_id", "pr_state"],
        "Pull requests opened by the org's sessions, by state.";
    /// `devin_sessions_archived`.
    ARCHIVED = "devin_sessions_archived", Gauge ["org_id"],
        "Archived sessions.";
    /// `devin_sessions_oldest_update_timestamp_seconds`.
    OLDEST_UPDATE = "devin_sessions_oldest_update_timestamp_seconds", Gauge ["org_id", "status", "status_detail"],
        "Oldest updated_at among sessions in this state that are not exited, errored or suspended.";

    // Health of an org's collection and of what it reads (health.rs).
    /// `devin_up`.
    UP = "devin_up", Gauge ["org_id"],
        "1 if the last collection of the org succeeded.";
    /// `devin_initial_sync_complete`.
    INITIAL_SYNC_COMPLETE = "devin_initial_sync_complete", Gauge ["org_id"],
        "1 once the org's first full listing is complete; its session metrics appear only then.";
    /// `devin_scrape_duration_seconds`.
    SCRAPE_DURATION = "devin_scrape_duration_seconds", Gauge ["org_id"],
        "How long the last collection of the org took.";
    /// `devin_last_successful_scrape_timestamp_seconds`.
    LAST_SUCCESS = "devin_last_successful_scrape_timestamp_seconds", Gauge ["org_id"],
        "Unix time of the org's last successful collection.";
    /// `devin_malformed_sessions_total`.
    MALFORMED_SESSIONS = "devin_malformed_sessions_total", Counter ["org_id"],
        "Session items of the org's pages skipped as malformed (no usable session_id, status or timestamp), counted each time one is listed.";
    /// `devin_malformed_session_fields_total`.
    MALFORMED_FIELDS = "devin_malformed_session_fields_total", Counter ["org_id", "field"],
        "Session fields of the wrong type read as null, 0 or empty, by field, counted each time one is listed.";

    // API requests (requests.rs).
    /// `devin_api_requests_total`.
    API_REQUESTS = "devin_api_requests_total", Counter ["org_id", "code"],
        "Devin API requests by HTTP status code (error: no response).";

    // Orgs as discovery lists them, and discovery itself (discovery.rs).
    /// `devin_org_info`.
    ORG_INFO = "devin_org_info", Gauge ["org_id", "name"],
        "Name of a discovered org (value 1); join on org_id with group_left.";
    /// `devin_org_max_cycle_acu_limit`.
    ORG_CYCLE_LIMIT = "devin_org_max_cycle_acu_limit", Gauge ["org_id"],
        "Most ACUs the org may use per billing cycle (absent when unlimited).";
    /// `devin_org_max_session_acu_limit`.
    ORG_SESSION_LIMIT = "devin_org_max_session_acu_limit", Gauge ["org_id"],
        "Most ACUs one session of the org may use (absent when unlimited).";
    /// `devin_discovery_up`.
    DISCOVERY_UP = "devin_discovery_up", Gauge [],
        "1 if the last org discovery succeeded.";
    /// `devin_discovered_orgs`.
    DISCOVERED_ORGS = "devin_discovered_orgs", Gauge [],
        "Orgs the last successful discovery found, before exclusions.";

    // The build (build.rs).
    /// `devin_exporter_build_info`.
    BUILD_INFO = "devin_exporter_build_info", Gauge ["version", "revision"],
        "Build identity of the exporter; always 1.";
    // Where the sessions come from (source.rs).
    /// `devin_exporter_session_source`.
    SESSION_SOURCE = "devin_exporter_session_source", Gauge ["source"],
        "1 for the session source in use: enterprise (one stream of every org's sessions) or orgs (each org's own listing).";
    /// `devin_exporter_stream_sessions_dropped_total`.
    STREAM_DROPPED = "devin_exporter_stream_sessions_dropped_total", Counter [],
        "Session items of the enterprise stream dropped on arrival: of an org not collected, or naming no usable org_id.";
    /// `devin_exporter_demo_mode`.
    DEMO_MODE = "devin_exporter_demo_mode", Gauge [],
        "1 when the exporter serves simulated data (demo mode); absent otherwise.";

    // Who and what burns the ACUs (spend.rs).
    /// `devin_user_sessions`.
    USER_SESSIONS = "devin_user_sessions", Gauge ["org_id", "user_id", "status"],
        "Sessions in this state now, by user_id (at most DEVIN_ATTRIBUTION_MAX_VALUES values, then overflow).";
    /// `devin_user_acus_consumed`.
    USER_ACUS = "devin_user_acus_consumed", Gauge ["org_id", "user_id"],
        "Sum of acus_consumed of the sessions held now, by user_id.";
    /// `devin_user_acus_consumed_total`.
    USER_CONSUMED = "devin_user_acus_consumed_total", Counter ["org_id", "user_id"],
        "ACUs consumed since this process finished its first listing of the org, by user_id.";
    /// `devin_playbook_sessions`.
    PLAYBOOK_SESSIONS = "devin_playbook_sessions", Gauge ["org_id", "playbook_id", "status"],
        "Sessions in this state now, by playbook_id (at most DEVIN_ATTRIBUTION_MAX_VALUES values, then overflow).";
    /// `devin_playbook_acus_consumed`.
    PLAYBOOK_ACUS = "devin_playbook_acus_consumed", Gauge ["org_id", "playbook_id"],
        "Sum of acus_consumed of the sessions held now, by playbook_id.";
    /// `devin_playbook_acus_consumed_total`.
    PLAYBOOK_CONSUMED = "devin_playbook_acus_consumed_total", Counter ["org_id", "playbook_id"],
        "ACUs consumed since this process finished its first listing of the org, by playbook_id.";
    /// `devin_tag_sessions`.
    TAG_SESSIONS = "devin_tag_sessions", Gauge ["org_id", "tag", "status"],
        "Sessions in this state now, by tag (at most DEVIN_ATTRIBUTION_MAX_VALUES values, then overflow).";
    /// `devin_tag_acus_consumed`.
    TAG_ACUS = "devin_tag_acus_consumed", Gauge ["org_id", "tag"],
        "Sum of acus_consumed of the sessions held now, by tag.";
    /// `devin_tag_acus_consumed_total`.
    TAG_CONSUMED = "devin_tag_acus_consumed_total", Counter ["org_id", "tag"],
        "ACUs consumed since this process finished its first listing of the org, by tag.";
    /// `devin_ended_session_duration_seconds`.
    ENDED_DURATION = "devin_ended_session_duration_seconds", Histogram ["org_id", "origin", "status"],
        "updated_at - created_at of the sessions seen moving into exit or error after the org's first listing.";
    /// `devin_ended_session_acus`.
    ENDED_ACUS = "devin_ended_session_acus", Histogram ["org_id", "origin", "status"],
        "acus_consumed of the sessions seen moving into exit or error after the org's first listing.";
    /// `devin_active_session_acus_consumed`.
    TOP_ACTIVE = "devin_active_session_acus_consumed", Gauge ["org_id", "session_id", "url"],
        "ACUs of the DEVIN_TOP_ACTIVE_SESSIONS sessions not in exit, error or suspended with the most ACUs.";

    // What the bill will say, the limits and the queue (billing.rs).
    /// `devin_billing_cycle_acus`.
    BILLING_CYCLE_ACUS = "devin_billing_cycle_acus", Gauge ["product"],
        "ACUs the enterprise was billed in the current billing cycle so far, by product.";
    /// `devin_org_billing_cycle_acus`.
    ORG_BILLING_CYCLE_ACUS = "devin_org_billing_cycle_acus", Gauge ["org_id", "product"],
        "ACUs the org was billed in the current billing cycle so far, by product.";
    /// `devin_billed_acus_total`.
    BILLED_ACUS = "devin_billed_acus_total", Counter ["product"],
        "ACUs billed to the enterprise while this process watches, by product (born at 0 at the first read).";
    /// `devin_org_billed_acus_total`.
    ORG_BILLED_ACUS = "devin_org_billed_acus_total", Counter ["org_id", "product"],
        "ACUs billed to the org while this process watches, by product (born at 0 at the first read).";
    /// `devin_billing_cycle_start_timestamp_seconds`.
    BILLING_CYCLE_START = "devin_billing_cycle_start_timestamp_seconds", Gauge [],
        "Unix time the current billing cycle started (its first day, 08:00 UTC).";
    /// `devin_enterprise_max_cycle_acu_limit`.
    ENTERPRISE_CYCLE_LIMIT = "devin_enterprise_max_cycle_acu_limit", Gauge [],
        "Most ACUs the enterprise may use per billing cycle (absent when unlimited).";
    /// `devin_queue_sessions`.
    QUEUE_SESSIONS = "devin_queue_sessions", Gauge [],
        "Sessions waiting to start (new, claimed, resuming).";
    /// `devin_queue_pressure`.
    QUEUE_PRESSURE = "devin_queue_pressure", Gauge ["status"],
        "Pressure on the queue: 1 for the current state (normal <= 10, elevated 11..50, high > 50), 0 for the others.";
    /// `devin_billing_up`.
    BILLING_UP = "devin_billing_up", Gauge ["source"],
        "1 if the billing source's last refresh succeeded; absent while it is off.";
    /// `devin_billing_last_success_timestamp_seconds`.
    BILLING_LAST_SUCCESS = "devin_billing_last_success_timestamp_seconds", Gauge ["source"],
        "Unix time of the billing source's last successful refresh (org_consumption: its stalest org).";

    // API request latency comes last, as before (requests.rs).
    /// `devin_api_request_duration_seconds`.
    API_REQUEST_DURATION = "devin_api_request_duration_seconds", Histogram ["org_id"],
        "Latency of Devin API requests, retries counted one by one.";
}

/// The series names a family's samples carry: its name, or for a histogram its
/// `_bucket` (with `le`), `_sum` and `_count`, each with its label names.
pub fn series_names(def: &FamilyDef) -> Vec<(String, Vec<&'static str>)> {
    let labels = def.labels.to_vec();
    match def.kind {
        Kind::Histogram => vec![
            (
                format!("{}_bucket", def.name),
                [&labels[..], &["le"]].concat(),
            ),
            (format!("{}_sum", def.name), labels.clone()),
            (format!("{}_count", def.name), labels),
        ],
        _ => vec![(def.name.to_string(), labels)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_follow_the_naming_rules() {
        let mut seen = std::collections::BTreeSet::new();
        for f in ALL {
            assert!(seen.insert(f.name), "{} twice", f.name);
            assert!(f.name.starts_with("devin_"), "{}", f.name);
            // `_total` only on counters, and on every counter.
            assert_eq!(
                f.name.ends_with("_total"),
                f.kind == Kind::Counter,
                "{}",
                f.name
            );
            assert!(!f.labels.contains(&"le"), "{}", f.name);
            assert!(f.help.ends_with('.'), "{}", f.name);
        }
    }
}

//! The enumerations the API documents today. The wire types keep every enum an open string
//! (new values appear without notice); these lists only let counters start at 0 for the
//! values a user can expect, so that `increase()` sees their first event.

/// Each documented `status` with the `status_detail` values documented for it; `None` is a
/// null detail, the only one documented for statuses without details.
pub const STATUS_DETAILS: &[(&str, &[Option<&str>])] = &[
    ("new", &[None]),
    ("claimed", &[None]),
    (
        "running",
        &[
            Some("working"),
            Some("waiting_for_user"),
            Some("waiting_for_approval"),
            Some("finished"),
        ],
    ),
    ("exit", &[None]),
    ("error", &[None]),
    (
        "suspended",
        &[
            Some("inactivity"),
            Some("user_request"),
            Some("usage_limit_exceeded"),
            Some("out_of_credits"),
            Some("out_of_quota"),
            Some("no_quota_allocation"),
            Some("payment_declined"),
            Some("org_usage_limit_exceeded"),
            Some("total_session_limit_exceeded"),
            Some("error"),
        ],
    ),
    ("resuming", &[None]),
];

/// The documented `origin` values.
pub const ORIGINS: &[&str] = &[
    "webapp",
    "slack",
    "teams",
    "api",
    "linear",
    "jira",
    "automation",
    "cli",
    "desktop",
    "code_scan",
    "other",
];

/// The documented `category` values.
pub const CATEGORIES: &[&str] = &[
    "bug_fixing",
    "ci_cd_and_devops",
    "code_quality_and_security",
    "code_review",
    "code_review_and_analysis",
    "data_and_automation",
    "documentation_and_content",
    "feature_development",
    "migrations_and_upgrades",
    "other",
    "refactoring_and_optimization",
    "research_and_exploration",
    "security",
    "unit_test_generation",
];

/// The documented `status` values.
pub fn statuses() -> impl Iterator<Item = &'static str> {
    STATUS_DETAILS.iter().map(|(s, _)| *s)
}

/// The documented `status_detail` values (each once, whatever the status).
pub fn status_details() -> impl Iterator<Item = &'static str> {
    let mut seen = Vec::new();
    STATUS_DETAILS
        .iter()
        .flat_map(|(_, details)| details.iter().flatten().copied())
        .filter(move |d| {
            let new = !seen.contains(d);
            seen.push(*d);
            new
        })
}

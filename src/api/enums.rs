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

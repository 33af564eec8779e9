//! The Devin API v3 client: wire types, the request budget, retries, the token, and the
//! request statistics the client reports to.

pub mod billing;
pub mod budget;
pub(crate) mod client;
pub mod enums;
pub(crate) mod explain;
pub(crate) mod lenient;
pub(crate) mod model;
pub(crate) mod redact;
pub(crate) mod retry;
pub(crate) mod stats;
pub mod token;

pub use client::{ApiClient, ApiError, Deadline, ListQuery, RequestObserver};
pub use lenient::{
    Field, FieldSet, MAX_ORG_ID_BYTES, SkipReason, Skipped, cut, cut_org_id, logged_id,
    usable_org_id,
};
pub use model::{Organization, OrganizationPage, PullRequest, Session, SessionPage};
pub use stats::ApiStats;

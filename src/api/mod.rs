//! The Devin API v3 client: wire types, the request budget, retries, the token, and the
//! request statistics the client reports to.

pub mod budget;
pub mod client;
pub mod enums;
pub mod explain;
pub mod model;
pub mod redact;
pub mod retry;
pub mod stats;
pub mod token;

pub use client::{ApiClient, ApiError, ListQuery, RequestObserver};
pub use model::{Organization, OrganizationPage, PullRequest, Session, SessionPage};
pub use stats::ApiStats;

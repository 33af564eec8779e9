//! Sync state: what the exporter knows of each org's sessions, and how it keeps that current
//! with as few API requests as possible (first a windowed full listing, then incremental
//! listings by `updated_after`, and a periodic full re-listing).

pub(crate) mod follow;
pub(crate) mod intern;
pub(crate) mod key;
pub(crate) mod listing;
pub(crate) mod malformed;
pub(crate) mod org;
pub(crate) mod schedule;
pub mod source;
pub mod spend;
pub(crate) mod store;
pub mod stream;

pub use crate::config::SyncSettings;
pub use malformed::Malformed;
pub use org::{Health, Org, OrgState};
pub use store::{SessionStore, Transitions};

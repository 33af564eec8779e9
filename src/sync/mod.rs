//! Sync state: what the exporter knows of each org's sessions, and how it keeps that current
//! with as few API requests as possible (first a windowed full listing, then incremental
//! listings by `updated_after`, and a periodic full re-listing).

pub mod intern;
pub mod key;
pub mod listing;
pub mod org;
pub mod schedule;
pub mod spend;
pub mod store;

pub use org::{Health, Org, OrgState, SyncSettings};
pub use store::SessionStore;

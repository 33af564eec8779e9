//! Prometheus metrics: the text rendered for each scrape. [`families`] declares every family
//! once; a writer per concern fills them (sessions, health, requests, discovery, build,
//! spend) and [`render`](Renderer) puts the body together.

mod billing;
mod build;
mod discovery;
pub mod families;
mod health;
mod render;
mod requests;
mod sessions;
mod source;
mod spend;
mod text;

pub use render::{CONTENT_TYPE, Renderer, Scope};

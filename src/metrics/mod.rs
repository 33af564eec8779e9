//! Prometheus metrics: the text rendered for each scrape.

mod billing;
mod render;
mod spend;
mod text;

pub use render::{CONTENT_TYPE, Renderer, Scope};

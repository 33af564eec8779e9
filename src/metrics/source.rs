//! Where the sessions come from: the source in use, and what the enterprise stream dropped.

use super::families::{SESSION_SOURCE, STREAM_DROPPED};
use super::text::Family;
use crate::sync::source::Source;

/// Appends `devin_exporter_session_source` (once decided) and, while the stream is in use,
/// `devin_exporter_stream_sessions_dropped_total`.
pub(super) fn write_to(out: &mut Vec<u8>, source: Source, dropped: u64) {
    let mut family = Family::new(&SESSION_SOURCE);
    family.count(&[source.label()], 1);
    family.write_to(out);
    if source == Source::Enterprise {
        let mut family = Family::new(&STREAM_DROPPED);
        family.count(&[], dropped);
        family.write_to(out);
    }
}

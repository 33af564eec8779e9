//! The session families of an org whose first listing is complete: sessions and ACUs by
//! state, the counters of what happened while the process watched, pull requests, archived
//! sessions and the oldest waiting update. Read from the aggregates the store keeps on write.

use super::families::{
    ACUS_CONSUMED, ARCHIVED, OLDEST_UPDATE, PULL_REQUESTS, SESSIONS, SESSIONS_ACUS,
    SESSIONS_CREATED, SESSIONS_ENTERED_STATUS,
};
use super::text::{self, Family};
use crate::sync::SessionStore;

/// `devin_sessions` and `devin_sessions_acus_consumed` are most of a large body: the first
/// is written straight into the body, the second into a buffer appended after it, and both
/// share one escaped label set per series. The smaller families follow.
pub(super) struct SessionFamilies {
    acus: Vec<u8>,
    /// The label set of the series being written.
    labels: Vec<u8>,
    series: usize,
    consumed: Family,
    created: Family,
    entered: Family,
    pull_requests: Family,
    archived: Family,
    oldest: Family,
}

impl SessionFamilies {
    /// Empty families; `acus_capacity` is the expected size of the ACU family.
    pub(super) fn new(acus_capacity: usize) -> Self {
        SessionFamilies {
            acus: Vec::with_capacity(acus_capacity),
            labels: Vec::with_capacity(256),
            series: 0,
            consumed: Family::new(&ACUS_CONSUMED),
            created: Family::new(&SESSIONS_CREATED),
            entered: Family::new(&SESSIONS_ENTERED_STATUS),
            pull_requests: Family::new(&PULL_REQUESTS),
            archived: Family::new(&ARCHIVED),
            oldest: Family::new(&OLDEST_UPDATE),
        }
    }

    /// Writes an org's series: `devin_sessions` into `out`, the rest into their buffers.
    pub(super) fn push_org(&mut self, out: &mut Vec<u8>, org_id: &str, store: &SessionStore) {
        self.push_states(out, org_id, store);
        let counters = store.counters();
        self.consumed.millionths(&[org_id], counters.acus_micros);
        for (origin, n) in &counters.created {
            self.created.count(&[org_id, store.label(*origin)], *n);
        }
        for ((status, detail), n) in &counters.entered_status {
            let values = [org_id, store.label(*status), store.label(*detail)];
            self.entered.count(&values, *n);
        }
        for (state, n) in store.pull_requests() {
            self.pull_requests.count(&[org_id, store.label(state)], n);
        }
        self.archived.count(&[org_id], store.archived());
        for ((status, detail), t) in store.oldest_updates() {
            let values = [org_id, store.label(status), store.label(detail)];
            self.oldest.value(&values, t as f64);
        }
    }

    /// The two families by state.
    fn push_states(&mut self, out: &mut Vec<u8>, org_id: &str, store: &SessionStore) {
        for (key, totals) in store.groups() {
            if self.series == 0 {
                // Headers only above a first series: a family must not be empty.
                text::header(out, &SESSIONS);
                text::header(&mut self.acus, &SESSIONS_ACUS);
            }
            self.series += 1;
            let values = [
                org_id,
                store.label(key.status),
                store.label(key.status_detail),
                store.label(key.origin),
                store.label(key.category),
            ];
            self.labels.clear();
            text::label_set(&mut self.labels, &SESSIONS, &values);
            out.extend_from_slice(SESSIONS.name.as_bytes());
            out.extend_from_slice(&self.labels);
            text::count(out, totals.sessions);
            self.acus.extend_from_slice(SESSIONS_ACUS.name.as_bytes());
            self.acus.extend_from_slice(&self.labels);
            text::millionths(&mut self.acus, totals.acus_micros);
        }
    }

    /// Appends the families after `devin_sessions` (already in the body).
    pub(super) fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.acus);
        for family in [
            &self.consumed,
            &self.created,
            &self.entered,
            &self.pull_requests,
            &self.archived,
            &self.oldest,
        ] {
            family.write_to(out);
        }
    }
}

//! What an org's pages held that was malformed: sessions skipped and fields read as null,
//! counted each time an item is read (for `devin_malformed_*_total` and the landing page),
//! and logged once per kind so that a bad session listed every scrape does not flood the log.

use crate::api::{Field, SessionPage, logged_id};

/// Malformed items of one org since the process started.
#[derive(Debug, Default)]
pub struct Malformed {
    sessions: u64,
    fields: [u64; Field::ALL.len()],
    /// Kinds already logged: a bit per field, and [`SKIPPED_BIT`] for skipped sessions.
    warned: u32,
}

const SKIPPED_BIT: u32 = 1 << Field::ALL.len();

impl Malformed {
    /// Counts what `page` skipped or read leniently; the first of each kind is logged.
    pub fn record(&mut self, org_id: &str, page: &SessionPage<'_>) {
        for skipped in &page.skipped {
            self.sessions += 1;
            if self.first(SKIPPED_BIT) {
                tracing::warn!(
                    org_id,
                    session_id = skipped.session_id.as_deref().unwrap_or("none"),
                    reason = %skipped.reason,
                    "malformed session skipped (logged once per org; devin_malformed_sessions_total counts them)"
                );
            }
        }
        for session in page.items.iter().filter(|s| !s.malformed.is_empty()) {
            for field in session.malformed.iter() {
                self.fields[field as usize] += 1;
                if self.first(1 << field as u32) {
                    tracing::warn!(
                        org_id,
                        session_id = %logged_id(&session.session_id),
                        field = field.name(),
                        "session field of the wrong type read as null (logged once per field and org; devin_malformed_session_fields_total counts them)"
                    );
                }
            }
        }
    }

    /// Whether the kind `bit` is seen for the first time (and marks it seen).
    fn first(&mut self, bit: u32) -> bool {
        let first = self.warned & bit == 0;
        self.warned |= bit;
        first
    }

    /// Sessions skipped.
    pub fn sessions(&self) -> u64 {
        self.sessions
    }

    /// Fields read as null, 0 or empty, by field; only those seen.
    pub fn fields(&self) -> impl Iterator<Item = (Field, u64)> + '_ {
        Field::ALL
            .into_iter()
            .zip(self.fields)
            .filter(|(_, n)| *n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_reading_by_kind() {
        let body = br#"{"items":[
            {"session_id":"a","status":"new","created_at":1,"updated_at":1,"acus_consumed":0,"user_id":1,"tags":"x"},
            {"status":"new","created_at":1,"updated_at":1,"acus_consumed":0},
            {"session_id":"c","status":"new","created_at":1,"updated_at":1,"acus_consumed":0,"user_id":true}]}"#;
        let page = SessionPage::from_slice(body).unwrap();
        let mut m = Malformed::default();
        m.record("org-a", &page);
        m.record("org-a", &page);
        assert_eq!(m.sessions(), 2);
        let fields: Vec<_> = m.fields().map(|(f, n)| (f.name(), n)).collect();
        assert_eq!(fields, [("user_id", 4), ("tags", 2)]);
    }
}

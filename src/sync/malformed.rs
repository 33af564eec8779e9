//! What an org's pages held that was malformed: sessions skipped and fields read as null,
//! counted each time an item is read (for `devin_malformed_*_total` and the landing page),
//! and logged once per kind so that a bad session listed every scrape does not flood the log.

use crate::api::{Field, Session, SessionPage, Skipped, logged_id};

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
            self.record_skipped(org_id, skipped);
        }
        for session in &page.items {
            self.record_session(org_id, session);
        }
    }

    /// Counts an item that was skipped; the first is logged.
    pub fn record_skipped(&mut self, org_id: &str, skipped: &Skipped) {
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

    /// Counts the malformed fields of a session; the first of each is logged.
    pub fn record_session(&mut self, org_id: &str, session: &Session<'_>) {
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
    use std::sync::{Arc, Mutex};

    /// Log output, shared with the subscriber that writes it.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    // One test: a callsite another test reaches first without a subscriber may stay silent.
    #[test]
    fn counts_every_reading_and_logs_the_first_of_each_kind_without_values() {
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let long_id = format!("devin-{}", "7".repeat(100));
        let body = format!(
            r#"{{"items":[
            {{"session_id":"{long_id}","status":"new","created_at":1,"updated_at":1,"acus_consumed":0,"user_id":424242,"tags":"hunter2"}},
            {{"status":"new","created_at":1,"updated_at":1,"acus_consumed":0}},
            {{"session_id":"b","status":"new","created_at":1,"updated_at":1,"acus_consumed":0,"user_id":true}}]}}"#
        );
        let page = SessionPage::from_str(&body).unwrap();
        let mut m = Malformed::default();
        m.record("org-a", &page);
        m.record("org-a", &page);
        assert_eq!(m.sessions(), 2);
        let fields: Vec<_> = m.fields().map(|(f, n)| (f.name(), n)).collect();
        assert_eq!(fields, [("user_id", 4), ("tags", 2)]);
        let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        let warns: Vec<&str> = text.lines().filter(|l| l.contains("WARN")).collect();
        assert_eq!(warns.len(), 3, "{text}");
        let cut = &long_id[..64];
        let user = warns
            .iter()
            .find(|l| l.contains("field=\"user_id\""))
            .unwrap();
        assert!(user.contains(&format!("session_id={cut} ")), "{user}");
        assert!(
            warns
                .iter()
                .any(|l| l.contains("malformed session skipped"))
        );
        for hidden in ["424242", "hunter2", &long_id[..65]] {
            assert!(!text.contains(hidden), "{hidden} in {text}");
        }
    }
}

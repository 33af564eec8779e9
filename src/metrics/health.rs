//! Whether each org's collection works: `devin_up`, the first listing, the last collection's
//! duration and the last success, and how many sessions and fields of its pages were
//! malformed.

use super::families::{
    INITIAL_SYNC_COMPLETE, LAST_SUCCESS, MALFORMED_FIELDS, MALFORMED_SESSIONS, SCRAPE_DURATION, UP,
};
use super::text::{Family, unix_seconds};
use crate::sync::OrgState;

/// The health families under construction.
pub(super) struct HealthFamilies {
    up: Family,
    initial: Family,
    duration: Family,
    last_success: Family,
    malformed_sessions: Family,
    malformed_fields: Family,
}

impl Default for HealthFamilies {
    fn default() -> Self {
        HealthFamilies {
            up: Family::new(&UP),
            initial: Family::new(&INITIAL_SYNC_COMPLETE),
            duration: Family::new(&SCRAPE_DURATION),
            last_success: Family::new(&LAST_SUCCESS),
            malformed_sessions: Family::new(&MALFORMED_SESSIONS),
            malformed_fields: Family::new(&MALFORMED_FIELDS),
        }
    }
}

impl HealthFamilies {
    /// Adds one org's series.
    pub(super) fn push_org(&mut self, org_id: &str, st: &OrgState) {
        let org = [org_id];
        if let Some(ok) = st.health.up {
            self.up.count(&org, u64::from(ok));
        }
        if let Some(d) = st.health.last_duration {
            self.duration.value(&org, d.as_secs_f64());
        }
        if let Some(t) = st.health.last_success {
            self.last_success.value(&org, unix_seconds(t));
        }
        self.initial.count(&org, u64::from(st.initial_complete));
        self.malformed_sessions.count(&org, st.malformed.sessions());
        for (field, n) in st.malformed.fields() {
            self.malformed_fields.count(&[org_id, field.name()], n);
        }
    }

    /// Appends the families that have series to the body.
    pub(super) fn write_to(&self, out: &mut Vec<u8>) {
        for family in [
            &self.up,
            &self.initial,
            &self.duration,
            &self.last_success,
            &self.malformed_sessions,
            &self.malformed_fields,
        ] {
            family.write_to(out);
        }
    }
}

//! What is known of each org beside its sessions (its name and limits, from discovery, and
//! its cycle limit from billing's acu_limits when read), and whether discovery works.

use super::families::{
    DISCOVERED_ORGS, DISCOVERY_UP, ORG_CYCLE_LIMIT, ORG_INFO, ORG_SESSION_LIMIT,
};
use super::text::Family;
use crate::api::Organization;
use crate::discovery::DiscoveryStatus;

/// The discovery families under construction.
pub(super) struct DiscoveryFamilies {
    org_info: Family,
    cycle_limit: Family,
    session_limit: Family,
    up: Family,
    discovered: Family,
}

impl Default for DiscoveryFamilies {
    fn default() -> Self {
        DiscoveryFamilies {
            org_info: Family::new(&ORG_INFO),
            cycle_limit: Family::new(&ORG_CYCLE_LIMIT),
            session_limit: Family::new(&ORG_SESSION_LIMIT),
            up: Family::new(&DISCOVERY_UP),
            discovered: Family::new(&DISCOVERED_ORGS),
        }
    }
}

impl DiscoveryFamilies {
    /// Discovery's own state.
    pub(super) fn push_status(&mut self, status: &DiscoveryStatus) {
        if let Some(ok) = status.up {
            self.up.count(&[], u64::from(ok));
        }
        self.discovered.count(&[], status.found as u64);
    }

    /// What discovery said of one org, if it was discovered, and its cycle limit (from
    /// whichever source the caller picked; `None` when unlimited).
    pub(super) fn push_org(
        &mut self,
        org_id: &str,
        info: Option<&Organization>,
        cycle_limit: Option<f64>,
    ) {
        if let Some(limit) = cycle_limit {
            self.cycle_limit.value(&[org_id], limit);
        }
        let Some(info) = info else {
            return;
        };
        let name = info.name.as_deref().unwrap_or("");
        self.org_info.count(&[org_id, name], 1);
        if let Some(limit) = info.max_session_acu_limit {
            self.session_limit.value(&[org_id], limit);
        }
    }

    /// Appends the families that have series to the body.
    pub(super) fn write_to(&self, out: &mut Vec<u8>) {
        for family in [
            &self.org_info,
            &self.cycle_limit,
            &self.session_limit,
            &self.up,
            &self.discovered,
        ] {
            family.write_to(out);
        }
    }
}

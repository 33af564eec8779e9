//! What an HTTP status from the Devin API means for the operator, in words: shared by
//! `devin-exporter check` and the landing page so that both say the same thing.

/// Which request failed: the permission it needs differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Listing one org's sessions (`ViewOrgSessions`).
    OrgSessions,
    /// Listing the enterprise's organizations (`ManageOrganizations`).
    Discovery,
    /// The enterprise session stream (`ViewAccountSessions` on the enterprise).
    EnterpriseSessions,
    /// `GET /v3/self`.
    Identity,
}

/// What to do about `code`, or `None` for a success or a status with nothing to add.
pub fn advice(code: u16, scope: Scope) -> Option<&'static str> {
    Some(match (code, scope) {
        (401, _) => "the token is invalid or revoked: put in a current service-user token",
        (403, Scope::OrgSessions) => {
            "the token lacks ViewOrgSessions on this org: grant it to the service user, or drop the org from DEVIN_ORG_IDS"
        }
        (403, Scope::Discovery) => {
            "the token lacks ManageOrganizations on the enterprise: grant it, or set DEVIN_DISCOVER_ORGS=false"
        }
        (403, Scope::EnterpriseSessions) => {
            "the token lacks ViewAccountSessions on the enterprise: grant it, or set DEVIN_SESSION_SOURCE=auto to fall back to each org's own listing"
        }
        (403, Scope::Identity) => "the token may not read its own identity",
        (404, Scope::OrgSessions) => "no such org id: check DEVIN_ORG_IDS",
        (404, _) => "the API has no such endpoint: check DEVIN_API_URL",
        (422, _) => "the API refused the request's parameters: check DEVIN_PAGE_SIZE",
        (429, _) => {
            "rate limited: retry later, or lower DEVIN_MAX_REQUESTS_PER_SECOND if it persists"
        }
        (500..=599, _) => "the API failed on its side: retry later",
        _ => return None,
    })
}

/// The status at the start of an error text such as `HTTP 403: ...` (how collection errors
/// read), if there is one.
pub fn status_of(error: &str) -> Option<u16> {
    let rest = error.strip_prefix("HTTP ")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    (digits.len() == 3).then(|| digits.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_advice_by_scope() {
        assert!(
            advice(403, Scope::OrgSessions)
                .unwrap()
                .contains("ViewOrgSessions")
        );
        assert!(
            advice(403, Scope::Discovery)
                .unwrap()
                .contains("ManageOrganizations")
        );
        assert!(
            advice(403, Scope::EnterpriseSessions)
                .unwrap()
                .contains("ViewAccountSessions on the enterprise")
        );
        assert!(
            advice(401, Scope::OrgSessions)
                .unwrap()
                .contains("invalid or revoked")
        );
        assert!(
            advice(404, Scope::OrgSessions)
                .unwrap()
                .contains("no such org id")
        );
        assert!(
            advice(429, Scope::Discovery)
                .unwrap()
                .contains("retry later")
        );
        assert_eq!(advice(200, Scope::OrgSessions), None);
    }

    #[test]
    fn status_is_read_from_collection_errors() {
        assert_eq!(status_of("HTTP 403: Forbidden"), Some(403));
        assert_eq!(status_of("HTTP 429"), Some(429));
        assert_eq!(status_of("transport error: HTTP 403"), None);
        assert_eq!(status_of("HTTP 4033"), None);
    }
}

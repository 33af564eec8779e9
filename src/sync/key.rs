//! Compact keys: of a session, where the usual `devin-<32 hex>` id packs into 16 bytes and
//! anything else is kept as text, so no id is ever confused with another; and of a group of
//! sessions sharing the labels of the session gauges.

use super::intern::{Sym, cut_distinct};

/// Longest session id kept as given; a longer one (a broken upstream, a 1 MB id) is cut,
/// keeping ids distinct (see [`cut_distinct`]), so that neither memory nor the
/// `session_id` label of the top active sessions grows with it.
pub const MAX_SESSION_ID_LEN: usize = 128;

/// Key of a session in the store.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SessionKey {
    /// `devin-` followed by 32 lowercase hex digits, packed.
    Packed([u8; 16]),
    /// Any other id, as given.
    Text(Box<str>),
}

impl SessionKey {
    /// The key of a session id.
    pub fn new(id: &str) -> Self {
        match id.strip_prefix("devin-").and_then(pack_hex) {
            Some(bytes) => SessionKey::Packed(bytes),
            None => SessionKey::Text(cut_distinct(id, MAX_SESSION_ID_LEN).into()),
        }
    }

    /// The session id the key was made from.
    pub fn id(&self) -> String {
        match self {
            SessionKey::Packed(bytes) => {
                let mut id = String::with_capacity(38);
                id.push_str("devin-");
                for b in bytes {
                    id.push_str(&format!("{b:02x}"));
                }
                id
            }
            SessionKey::Text(t) => t.to_string(),
        }
    }
}

/// Labels of the session gauges (`devin_sessions`, `devin_sessions_acus_consumed`), as
/// interned symbols.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GroupKey {
    /// `status`.
    pub status: Sym,
    /// `status_detail`.
    pub status_detail: Sym,
    /// `origin`.
    pub origin: Sym,
    /// `category`.
    pub category: Sym,
}

impl GroupKey {
    /// `(status, status_detail)`.
    pub fn status_pair(&self) -> (Sym, Sym) {
        (self.status, self.status_detail)
    }
}

fn pack_hex(hex: &str) -> Option<[u8; 16]> {
    let digits = hex.as_bytes();
    if digits.len() != 32 {
        return None;
    }
    // Only lowercase, so that one id has exactly one packed form.
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 16];
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_canonical_ids_only() {
        let id = "devin-0123456789abcdef0123456789abcdef";
        assert!(matches!(SessionKey::new(id), SessionKey::Packed(_)));
        assert_ne!(
            SessionKey::new(id),
            SessionKey::new("devin-0123456789abcdef0123456789abcdee")
        );
        for other in [
            "devin-0123456789ABCDEF0123456789ABCDEF",
            "devin-123",
            "session-42",
            "devin-0123456789abcdef0123456789abcdeg",
        ] {
            assert_eq!(SessionKey::new(other), SessionKey::Text(other.into()));
            assert_eq!(SessionKey::new(other).id(), other);
        }
        assert_eq!(SessionKey::new(id).id(), id);
        let huge = format!("devin-{}", "a".repeat(1 << 20));
        let key = SessionKey::new(&huge);
        assert!(key.id().len() <= MAX_SESSION_ID_LEN);
        assert_ne!(key, SessionKey::new(&format!("{huge}b")));
    }
}

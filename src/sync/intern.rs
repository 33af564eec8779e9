//! Label values interned to small integers, so that a session record holds no strings.
//!
//! Each label keeps every value the API documents, however many sessions and combinations
//! there are, so that `sum by (status)` and every alert on a documented value stay exact.
//! Only values the API never documented can grow without bound: each label admits at most
//! [`MAX_UNDOCUMENTED`] of them; later ones read [`OVERFLOW`].

use std::borrow::Cow;

use indexmap::IndexSet;

use crate::api::enums;

/// An interned label value.
pub type Sym = u16;

/// Longest label value kept; longer values (a broken upstream) are cut.
pub const MAX_LABEL_VALUE_LEN: usize = 100;
/// Distinct undocumented values each label admits per org; later ones read [`OVERFLOW`].
pub const MAX_UNDOCUMENTED: usize = 16;
/// Label value that stands in for values past a cap.
pub const OVERFLOW: &str = "overflow";
/// The symbol of [`OVERFLOW`] in every interner.
pub const OVERFLOW_SYM: Sym = 1;
/// Label value of a null (or empty) field.
pub const NONE: &str = "none";
/// The symbol of [`NONE`] in every interner.
pub const NONE_SYM: Sym = 0;

/// The session labels whose values are interned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    /// `status`.
    Status,
    /// `status_detail`.
    StatusDetail,
    /// `origin`.
    Origin,
    /// `category`.
    Category,
    /// `pr_state` of a pull request.
    PrState,
}

impl Label {
    const ALL: [Label; 5] = [
        Label::Status,
        Label::StatusDetail,
        Label::Origin,
        Label::Category,
        Label::PrState,
    ];

    /// The values the API documents for this label (`pr_state` has none documented).
    pub fn documented(self) -> Vec<&'static str> {
        match self {
            Label::Status => enums::statuses().collect(),
            Label::StatusDetail => enums::status_details().collect(),
            Label::Origin => enums::ORIGINS.to_vec(),
            Label::Category => enums::CATEGORIES.to_vec(),
            Label::PrState => Vec::new(),
        }
    }
}

pub use crate::api::cut;

/// `v` cut to at most `max` bytes (`max` > 17) such that two different long values stay
/// different: a cut value ends in `~` and 16 hex digits of a hash of the whole. For values
/// that name one thing each (a session id), where [`cut`] could merge two into one series.
pub fn cut_distinct(v: &str, max: usize) -> Cow<'_, str> {
    use std::hash::{Hash, Hasher};
    if v.len() <= max {
        return Cow::Borrowed(v);
    }
    // Fixed keys: the same value gives the same label in every process of this build.
    let mut hasher = std::hash::DefaultHasher::new();
    v.hash(&mut hasher);
    Cow::Owned(format!(
        "{}~{:016x}",
        cut(v, max.saturating_sub(17)),
        hasher.finish()
    ))
}

/// The label value of a field from the network: `None` for null or empty (they read
/// [`NONE`]); cut to [`MAX_LABEL_VALUE_LEN`]; and a value that spells a marker (`none`,
/// `overflow`, or one of them followed by underscores) gets one more underscore, so that a
/// user or tag really named `overflow` never merges with the marker of that name.
pub fn label_value(value: Option<&str>) -> Option<Cow<'_, str>> {
    let v = cut(value.filter(|v| !v.is_empty())?, MAX_LABEL_VALUE_LEN);
    let stem = v.trim_end_matches('_');
    Some(if stem == NONE || stem == OVERFLOW {
        Cow::Owned(format!("{v}_"))
    } else {
        Cow::Borrowed(v)
    })
}

/// Label values of one org, each stored once.
#[derive(Debug)]
pub struct Interner {
    values: IndexSet<Box<str>>,
    /// Per label, bit `s` is set when symbol `s` is documented for it (all documented
    /// values are interned first, so their symbols are small).
    documented: [u128; 5],
    /// Per label, the undocumented values it admitted, at most [`MAX_UNDOCUMENTED`].
    admitted: [Vec<Sym>; 5],
}

impl Default for Interner {
    fn default() -> Self {
        let mut values = IndexSet::new();
        values.insert(NONE.into());
        values.insert(OVERFLOW.into());
        let mut documented = [0u128; 5];
        for label in Label::ALL {
            // A null field and the marker are valid for every label.
            let mut bits = 1 << NONE_SYM | 1 << OVERFLOW_SYM;
            for v in label.documented() {
                let sym = values.insert_full(v.into()).0;
                bits |= 1 << sym;
            }
            documented[label as usize] = bits;
        }
        Interner {
            values,
            documented,
            admitted: Default::default(),
        }
    }
}

impl Interner {
    /// The symbol of `value` as a value of `label` (`None` means a null field).
    pub fn intern(&mut self, label: Label, value: Option<&str>) -> Sym {
        let Some(value) = label_value(value) else {
            return NONE_SYM;
        };
        let sym = match self.values.get_index_of(value.as_ref()) {
            Some(i) => i as Sym,
            None => {
                // Full for this label: the value is not stored at all.
                if self.admitted[label as usize].len() >= MAX_UNDOCUMENTED {
                    return OVERFLOW_SYM;
                }
                self.values.insert_full(value.into()).0 as Sym
            }
        };
        if self.is_documented(label, sym) {
            return sym;
        }
        let admitted = &mut self.admitted[label as usize];
        if admitted.contains(&sym) {
            sym
        } else if admitted.len() < MAX_UNDOCUMENTED {
            admitted.push(sym);
            sym
        } else {
            OVERFLOW_SYM
        }
    }

    /// Whether `sym` is documented for `label` (`none` and `overflow` count as documented).
    pub fn is_documented(&self, label: Label, sym: Sym) -> bool {
        u32::from(sym) < u128::BITS && self.documented[label as usize] & (1 << sym) != 0
    }

    /// The symbol of `value` if it was ever interned.
    #[cfg(test)]
    pub fn lookup(&self, value: &str) -> Option<Sym> {
        self.values.get_index_of(value).map(|i| i as Sym)
    }

    /// The label value of a symbol.
    pub fn resolve(&self, sym: Sym) -> &str {
        self.values.get_index(sym as usize).map_or(NONE, |v| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_values_always_have_their_own_symbol() {
        let mut i = Interner::default();
        // Undocumented values fill every label's budget first.
        for label in Label::ALL {
            for n in 0..MAX_UNDOCUMENTED + 50 {
                i.intern(label, Some(&format!("odd-{n}")));
            }
        }
        for label in Label::ALL {
            for v in label.documented() {
                let sym = i.intern(label, Some(v));
                assert_eq!(i.resolve(sym), v, "{label:?}");
                assert!(i.is_documented(label, sym));
            }
        }
    }

    #[test]
    fn each_label_admits_a_bounded_number_of_undocumented_values() {
        let mut i = Interner::default();
        let kept: Vec<Sym> = (0..MAX_UNDOCUMENTED)
            .map(|n| i.intern(Label::Status, Some(&format!("s{n}"))))
            .collect();
        assert!(kept.iter().all(|s| *s != OVERFLOW_SYM));
        assert_eq!(i.intern(Label::Status, Some("one-more")), OVERFLOW_SYM);
        // Values admitted stay; another label has its own budget, even for the same value.
        assert_eq!(i.intern(Label::Status, Some("s3")), kept[3]);
        assert_eq!(i.intern(Label::Origin, Some("s3")), kept[3]);
        assert_ne!(i.intern(Label::Origin, Some("one-more")), OVERFLOW_SYM);
        // A documented status used as an origin is undocumented there.
        let running = i.intern(Label::Origin, Some("running"));
        assert!(!i.is_documented(Label::Origin, running));
        assert!(i.is_documented(Label::Status, running));
    }

    #[test]
    fn long_values_cut_distinctly() {
        assert_eq!(cut_distinct("short", 64), "short");
        let (a, b) = (
            "x".repeat(1 << 20),
            format!("{}y", "x".repeat((1 << 20) - 1)),
        );
        let (ca, cb) = (cut_distinct(&a, 64), cut_distinct(&b, 64));
        assert!(ca.len() <= 64 && cb.len() <= 64, "{ca} {cb}");
        assert_ne!(ca, cb);
        assert_eq!(ca, cut_distinct(&a, 64));
        assert!(ca.starts_with(&"x".repeat(47)));
        // Multi-byte characters are never split.
        assert!(cut_distinct(&"é".repeat(100), 64).len() <= 64);
    }

    #[test]
    fn nulls_empty_long_and_marker_like_values() {
        let mut i = Interner::default();
        assert_eq!(i.intern(Label::Origin, None), NONE_SYM);
        assert_eq!(i.intern(Label::Origin, Some("")), NONE_SYM);
        let long = "é".repeat(80);
        let cut_sym = i.intern(Label::Category, Some(&long));
        let cut = i.resolve(cut_sym).to_string();
        assert!(cut.len() <= MAX_LABEL_VALUE_LEN && long.starts_with(&cut));
        for (given, shown) in [
            ("none", "none_"),
            ("overflow", "overflow_"),
            ("overflow_", "overflow__"),
            ("none__", "none___"),
            ("nonexistent", "nonexistent"),
        ] {
            let sym = i.intern(Label::StatusDetail, Some(given));
            assert_eq!(i.resolve(sym), shown, "{given}");
            assert!(sym != NONE_SYM && sym != OVERFLOW_SYM);
        }
    }
}

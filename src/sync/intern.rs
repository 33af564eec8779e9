//! Label values interned to small integers, so that a session record holds no strings.

use indexmap::IndexSet;

/// An interned label value.
pub type Sym = u16;

/// Longest label value kept; longer values (a broken upstream) are cut.
pub const MAX_LABEL_VALUE_LEN: usize = 100;
/// Distinct label values kept per org; more fold into [`OVERFLOW`] so that a hostile or
/// broken upstream cannot blow up the series count.
pub const MAX_VALUES: usize = 2000;
/// Label value that stands in for values past [`MAX_VALUES`].
pub const OVERFLOW: &str = "overflow";
/// The symbol of [`OVERFLOW`] in every interner.
pub const OVERFLOW_SYM: Sym = 1;
/// Label value of a null field.
pub const NONE: &str = "none";

/// Label values of one org, each stored once.
#[derive(Debug)]
pub struct Interner {
    values: IndexSet<Box<str>>,
}

impl Default for Interner {
    fn default() -> Self {
        let mut values = IndexSet::new();
        values.insert(NONE.into());
        values.insert(OVERFLOW.into());
        Interner { values }
    }
}

impl Interner {
    /// The symbol of `value` (`None` means a null field).
    pub fn intern(&mut self, value: Option<&str>) -> Sym {
        let value = match value {
            None => NONE,
            Some(v) if v.len() > MAX_LABEL_VALUE_LEN => {
                let mut end = MAX_LABEL_VALUE_LEN;
                while !v.is_char_boundary(end) {
                    end -= 1;
                }
                &v[..end]
            }
            Some(v) => v,
        };
        if let Some(i) = self.values.get_index_of(value) {
            return i as Sym;
        }
        if self.values.len() >= MAX_VALUES {
            return OVERFLOW_SYM;
        }
        self.values.insert_full(value.into()).0 as Sym
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
    fn interns_nulls_long_values_and_caps() {
        let mut i = Interner::default();
        let a = i.intern(Some("running"));
        assert_eq!(i.intern(Some("running")), a);
        assert_eq!(i.resolve(a), "running");
        let none = i.intern(None);
        assert_eq!(i.resolve(none), "none");
        let long = "é".repeat(80);
        let cut_sym = i.intern(Some(&long));
        let cut = i.resolve(cut_sym).to_string();
        assert!(cut.len() <= MAX_LABEL_VALUE_LEN && long.starts_with(&cut));
        for n in 0..MAX_VALUES + 10 {
            i.intern(Some(&format!("v{n}")));
        }
        let late = i.intern(Some("brand-new"));
        assert_eq!(i.resolve(late), OVERFLOW);
        assert_eq!(i.resolve(a), "running");
    }
}

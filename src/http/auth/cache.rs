//! Successful verifications, remembered so that a flood of scrapes does not cost a bcrypt run
//! each (as exporter-toolkit does). An entry is a SHA-256 digest of user, hash and password:
//! the password is not kept, and the hash's own random salt salts the digest.

use std::collections::HashSet;
use std::sync::Mutex;

use crate::lock::Locked;
use aws_lc_rs::digest;

/// At most this many successes are remembered (exporter-toolkit's size). Only valid
/// credentials get in, but bcrypt reads 72 bytes of a password, so longer variants of a
/// valid one are distinct successes: without a bound they would grow memory without end.
pub const CAPACITY: usize = 100;

/// The digest that stands for one set of credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key([u8; 32]);

impl Key {
    /// The key of `password` checked against `user`'s `hash`.
    pub fn of(user: &str, hash: &str, password: &str) -> Self {
        let mut context = digest::Context::new(&digest::SHA256);
        // Each field behind its length, so that no two triples share an input.
        for field in [user, hash, password] {
            context.update(&(field.len() as u64).to_le_bytes());
            context.update(field.as_bytes());
        }
        let mut key = [0; 32];
        key.copy_from_slice(context.finish().as_ref());
        Key(key)
    }
}

/// A bounded set of keys of credentials that verified.
#[derive(Debug, Default)]
pub struct Verified {
    keys: Mutex<HashSet<Key>>,
}

impl Verified {
    pub fn contains(&self, key: &Key) -> bool {
        self.keys.locked().contains(key)
    }

    /// Remembers `key`; when full, an arbitrary entry makes room (its owner pays one more
    /// bcrypt run at its next scrape).
    pub fn insert(&self, key: Key) {
        let mut keys = self.keys.locked();
        if keys.len() >= CAPACITY && !keys.contains(&key) {
            if let Some(old) = keys.iter().next().copied() {
                keys.remove(&old);
            }
        }
        keys.insert(key);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.keys.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_at_most_capacity_keys() {
        let verified = Verified::default();
        let keys: Vec<Key> = (0..CAPACITY * 2)
            .map(|i| Key::of("alice", "hash", &i.to_string()))
            .collect();
        for (i, key) in keys.iter().enumerate() {
            verified.insert(*key);
            assert!(verified.contains(key));
            assert_eq!(verified.len(), (i + 1).min(CAPACITY));
        }
    }

    #[test]
    fn keys_differ_with_each_field() {
        let key = Key::of("alice", "hash", "pw");
        assert_eq!(key, Key::of("alice", "hash", "pw"));
        for other in [
            Key::of("bob", "hash", "pw"),
            Key::of("alice", "other", "pw"),
            Key::of("alice", "hash", "pw2"),
            // Field boundaries count: not the same bytes shifted between fields.
            Key::of("alicehash", "", "pw"),
        ] {
            assert_ne!(key, other);
        }
    }
}

//! `Shared<T>`: an immutable value that states share, with its hash computed at most once.
//!
//! A step changes one server and a message or two; the rest of the next state is the last one's,
//! shared through reference counts. The checker fingerprints every state it generates, so without
//! a cached hash it would hash every shared log, message and history again each time. The hash is
//! computed when first asked for: the simulator builds these states for the properties alone and
//! never fingerprints them, and hashing a run's whole log at every check was a sixth of its time.

use crate::model::fingerprint::fingerprint;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

/// A value shared between states, with its fingerprint computed once, when first asked for.
pub struct Shared<T>(Arc<Inner<T>>);

#[derive(Clone)]
struct Inner<T> {
    value: T,
    /// Reset by every update.
    hash: OnceLock<u64>,
    /// Only symmetry reduction asks for it, once per value.
    id_free: OnceLock<u64>,
}

impl<T: Hash> Shared<T> {
    /// Wraps `value` and fingerprints it once, for every state that will share it.
    pub fn new(value: T) -> Self {
        Shared(Arc::new(Inner {
            value,
            hash: OnceLock::new(),
            id_free: OnceLock::new(),
        }))
    }

    /// Changes the value (copying it first if another state shares it) and hashes it again:
    /// the only way to change a shared value, so its hash can never go stale.
    pub fn update(&mut self, change: impl FnOnce(&mut T))
    where
        T: Clone,
    {
        let inner = Arc::make_mut(&mut self.0);
        change(&mut inner.value);
        inner.hash = OnceLock::new();
        inner.id_free = OnceLock::new();
    }
}

impl<T: Hash> Shared<T> {
    /// The value's fingerprint, computed on the first call since it was made or last updated.
    pub fn hash_code(&self) -> u64 {
        *self.0.hash.get_or_init(|| fingerprint(&self.0.value))
    }
}

impl<T: IdFree> Shared<T> {
    /// The value's hash without the server ids it holds (`IdFree`), computed once.
    pub fn id_free_hash(&self) -> u64 {
        *self.0.id_free.get_or_init(|| self.0.value.id_free_hash())
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0.value
    }
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared(self.0.clone())
    }
}

impl<T: Hash> Hash for Shared<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash_code());
    }
}

impl<T: PartialEq> PartialEq for Shared<T> {
    fn eq(&self, other: &Self) -> bool {
        if Arc::ptr_eq(&self.0, &other.0) {
            return true;
        }
        // Different fingerprints settle it, but only when both were computed anyway.
        match (self.0.hash.get(), other.0.hash.get()) {
            (Some(a), Some(b)) if a != b => false,
            _ => **self == **other,
        }
    }
}

impl<T: Eq> Eq for Shared<T> {}

impl<T: Ord> PartialOrd for Shared<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<T: Ord> Ord for Shared<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (**self).cmp(&**other)
    }
}

impl<T: fmt::Debug> fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

impl<T: Hash + Default> Default for Shared<T> {
    fn default() -> Self {
        Shared::new(T::default())
    }
}

/// A hash of a value with the server ids it holds left out, so that a value and any renaming
/// of it hash alike. `Shared` values cache it: a server's log and state machine are hashed
/// once, not once per state and renaming.
pub trait IdFree {
    /// This value's hash with every server id in it left out: equal for a value and its renamings.
    fn id_free_hash(&self) -> u64;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_rehashes_and_leaves_other_holders_alone() {
        let a = Shared::new(vec![1, 2]);
        let mut b = a.clone();
        assert_eq!(a, b);
        b.update(|v| v.push(3));
        assert_eq!(*a, vec![1, 2]);
        assert_eq!(b.hash_code(), Shared::new(vec![1, 2, 3]).hash_code());
        assert_ne!(a, b);
        assert_eq!(b, Shared::new(vec![1, 2, 3]));
    }
}

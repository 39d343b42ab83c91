//! The kept entries of a log, in chunks that clones share.
//!
//! Every save hands the storage a copy of the log and the simulator's checks keep one of each
//! server's: with a plain vector each copy costs a reference count per entry, and a 1,000-entry
//! log (the node's default snapshot threshold) made every write cost 1,000 of them, then as many
//! again to drop the old copy. Chunks of `CHUNK` entries are shared instead: a clone costs one
//! count per chunk, an append copies at most the last chunk, and two logs that share a chunk
//! compare it by pointer.

use crate::protocol::types::Entry;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Entries per chunk: every chunk but the last is full.
const CHUNK: usize = 64;

/// A sequence of entries with vector semantics (equality, order, hash and serialized form are
/// those of the sequence) and cheap clones.
#[derive(Clone, Default)]
pub struct Entries {
    chunks: Vec<Arc<Vec<Entry>>>,
    len: usize,
}

impl Entries {
    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entry at position `i`, if there is one.
    pub fn get(&self, i: usize) -> Option<&Entry> {
        (i < self.len).then(|| &self.chunks[i / CHUNK][i % CHUNK])
    }

    /// The last entry.
    pub fn last(&self) -> Option<&Entry> {
        self.chunks.last().and_then(|c| c.last())
    }

    /// The entries in order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Entry> + '_ {
        self.chunks.iter().flat_map(|c| c.iter())
    }

    /// The entries at positions `from..` (clamped to the end), at most `max` of them.
    pub fn range(&self, from: usize, max: usize) -> impl Iterator<Item = &Entry> + '_ {
        let from = from.min(self.len);
        let end = from.saturating_add(max).min(self.len);
        (from..end).map(move |i| &self.chunks[i / CHUNK][i % CHUNK])
    }

    /// Adds `entry` at the end; copies the last chunk only if a clone still shares it.
    pub fn push(&mut self, entry: Entry) {
        match self.chunks.last_mut() {
            Some(last) if last.len() < CHUNK => Arc::make_mut(last).push(entry),
            // A new chunk grows as entries arrive: most logs the model checks hold a few entries,
            // and reserving a full chunk (1 KiB) for each was a sixth of Figure 8's peak memory
            // (`check bugs/commit_previous_term_entries`: 131 MiB before, 108 MiB after).
            _ => self.chunks.push(Arc::new(vec![entry])),
        }
        self.len += 1;
    }

    /// Keeps the first `len` entries.
    pub fn truncate(&mut self, len: usize) {
        if len >= self.len {
            return;
        }
        self.chunks.truncate(len.div_ceil(CHUNK));
        if let Some(last) = self.chunks.last_mut() {
            let keep = len - (len - 1) / CHUNK * CHUNK;
            if last.len() > keep {
                Arc::make_mut(last).truncate(keep);
            }
        }
        self.len = len;
    }

    /// Removes the first `n` entries (a compaction): the rest is chunked anew.
    pub fn remove_front(&mut self, n: usize) {
        *self = self.iter().skip(n).cloned().collect();
    }

    /// The first position below `end` (and below both lengths) at which `self` and `other`
    /// differ, starting at `from`; chunks the two share are skipped whole.
    pub fn first_difference(&self, other: &Entries, from: usize, end: usize) -> Option<usize> {
        let end = end.min(self.len).min(other.len);
        let mut i = from;
        while i < end {
            let (a, b) = (&self.chunks[i / CHUNK], &other.chunks[i / CHUNK]);
            if Arc::ptr_eq(a, b) {
                i = (i / CHUNK + 1) * CHUNK;
                continue;
            }
            if a[i % CHUNK] != b[i % CHUNK] {
                return Some(i);
            }
            i += 1;
        }
        None
    }

    /// Makes `self` share `other`'s chunks wherever the two hold the same entries, so that
    /// later comparisons of the two go by pointer. Chunks already shared cost nothing.
    pub fn share_with(&mut self, other: &Entries) {
        for (mine, theirs) in self.chunks.iter_mut().zip(&other.chunks) {
            if !Arc::ptr_eq(mine, theirs) && mine == theirs {
                *mine = theirs.clone();
            }
        }
    }

    /// Whether every chunk of `self` is `other`'s own allocation (for tests of the sharing).
    #[cfg(test)]
    pub(crate) fn shares_every_chunk_with(&self, other: &Entries) -> bool {
        self.chunks.len() == other.chunks.len()
            && (self.chunks.iter().zip(&other.chunks)).all(|(a, b)| Arc::ptr_eq(a, b))
    }

    /// Where `self` still has a chunk of `was` (by pointer), takes `was_shared`'s chunk there
    /// instead: `was_shared` is `was` after [`Entries::share_with`], and this carries its
    /// sharing over to a later copy without comparing the chunks again.
    pub fn carry_sharing(&mut self, was: &Entries, was_shared: &Entries) {
        debug_assert!(was == was_shared, "was_shared must hold what was holds");
        let pairs = was.chunks.iter().zip(&was_shared.chunks);
        for (mine, (old, shared)) in self.chunks.iter_mut().zip(pairs) {
            if Arc::ptr_eq(mine, old) {
                *mine = shared.clone();
            }
        }
    }
}

impl FromIterator<Entry> for Entries {
    fn from_iter<I: IntoIterator<Item = Entry>>(iter: I) -> Self {
        let mut entries = Entries::default();
        for e in iter {
            entries.push(e);
        }
        entries
    }
}

impl From<Vec<Entry>> for Entries {
    fn from(v: Vec<Entry>) -> Self {
        v.into_iter().collect()
    }
}

impl PartialEq for Entries {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len
            && self
                .chunks
                .iter()
                .zip(&other.chunks)
                .all(|(a, b)| Arc::ptr_eq(a, b) || a == b)
    }
}

impl Eq for Entries {}

impl Hash for Entries {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_usize(self.len);
        for e in self.iter() {
            e.hash(state);
        }
    }
}

impl fmt::Debug for Entries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for Entries {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<Entry>::deserialize(d).map(Entries::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::types::{Command, Op};
    use proptest::prelude::*;

    fn entry(term: u64) -> Entry {
        Entry {
            term,
            command: Arc::new(Command {
                client: 1,
                request_id: term,
                op: Op::Get { key: "k".into() },
            }),
        }
    }

    #[derive(Clone, Debug)]
    enum Change {
        Push(u64),
        Truncate(usize),
        /// Truncates this many entries off the end (a conflict replacing a suffix).
        Cut(usize),
        RemoveFront(usize),
        Clone,
    }

    fn change() -> impl Strategy<Value = Change> {
        prop_oneof![
            12 => (0..4u64).prop_map(Change::Push),
            1 => (0..8usize).prop_map(Change::Cut),
            1 => (0..4usize).prop_map(|k| Change::Truncate(k * CHUNK)),
            1 => (0..8usize).prop_map(Change::RemoveFront),
            1 => Just(Change::Clone),
        ]
    }

    proptest! {
        /// Chunked entries behave as a vector under any pushes, truncations and compactions,
        /// and clones taken along the way never see later changes.
        #[test]
        fn chunked_entries_behave_as_a_vector(
            changes in proptest::collection::vec(change(), 0..600)
        ) {
            let (mut chunked, mut plain) = (Entries::default(), Vec::new());
            let mut clones: Vec<(Entries, Vec<Entry>)> = Vec::new();
            for c in changes {
                // A copy taken before the change, made to share chunks with an equal log of
                // other allocations, as the simulator's checks do.
                let before = chunked.clone();
                let mut before_shared: Entries = plain.iter().cloned().collect();
                before_shared.share_with(&before);
                match c {
                    Change::Push(t) => {
                        chunked.push(entry(t));
                        plain.push(entry(t));
                    }
                    Change::Truncate(n) => {
                        chunked.truncate(n);
                        plain.truncate(n);
                    }
                    Change::Cut(k) => {
                        chunked.truncate(plain.len().saturating_sub(k));
                        plain.truncate(plain.len().saturating_sub(k));
                    }
                    Change::RemoveFront(n) => {
                        chunked.remove_front(n);
                        plain.drain(..n.min(plain.len()));
                    }
                    Change::Clone => clones.push((chunked.clone(), plain.clone())),
                }
                prop_assert_eq!(chunked.len(), plain.len());
                prop_assert_eq!(chunked.is_empty(), plain.is_empty());
                prop_assert!(chunked.iter().eq(plain.iter()));
                prop_assert_eq!(chunked.last(), plain.last());
                prop_assert_eq!(chunked.get(plain.len()), None);
                let mut carried = chunked.clone();
                carried.carry_sharing(&before, &before_shared);
                prop_assert!(carried.iter().eq(plain.iter()));
            }
            for (c, p) in &clones {
                prop_assert!(c.iter().eq(p.iter()));
                let rebuilt: Entries = p.iter().cloned().collect();
                prop_assert_eq!(c, &rebuilt);
                prop_assert_eq!(c == &chunked, p == &plain, "equal as the vectors are");
                let expected = (0..p.len().min(plain.len())).find(|&i| p[i] != plain[i]);
                prop_assert_eq!(c.first_difference(&chunked, 0, usize::MAX), expected);
                let mut shared = c.clone();
                shared.share_with(&chunked);
                prop_assert_eq!(&shared, c);
            }
        }
    }

    #[test]
    fn the_serialized_form_is_the_vectors() {
        let v: Vec<Entry> = (0..130).map(entry).collect();
        let chunked = Entries::from(v.clone());
        let json = serde_json::to_string(&chunked).unwrap();
        assert_eq!(json, serde_json::to_string(&v).unwrap());
        assert_eq!(serde_json::from_str::<Entries>(&json).unwrap(), chunked);
    }

    /// Truncating copies only the chunk it cuts: a chunk kept whole stays shared with the
    /// clone it came from (the model's states share their logs' chunks, which saves memory).
    #[test]
    fn truncating_copies_only_the_chunk_it_cuts() {
        let original = Entries::from((0..2 * CHUNK as u64).map(entry).collect::<Vec<_>>());
        let shared = |cut: &Entries, i: usize| Arc::ptr_eq(&cut.chunks[i], &original.chunks[i]);
        let mut at_boundary = original.clone();
        at_boundary.truncate(CHUNK);
        assert!(shared(&at_boundary, 0));
        let mut inside = original.clone();
        inside.truncate(CHUNK + 1);
        assert!(shared(&inside, 0) && !shared(&inside, 1));
        assert_eq!(inside.len(), CHUNK + 1);
    }
}

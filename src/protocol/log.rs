//! The Raft log after compaction: a snapshot boundary (`base_index`, `base_term`) followed by the
//! entries that are still kept. Indices are logical: entry `i` is `entries[i - base_index - 1]`.

use crate::protocol::entries::Entries;
use crate::protocol::types::{Entry, LogIndex, Term};
use serde::{Deserialize, Serialize};

/// A server's log[] (Figure 2) after compaction (§7): only the entries not yet in the snapshot are
/// stored, but every index stays the one the paper would use.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Log {
    /// Index of the last entry folded into the snapshot (0 when there is no snapshot).
    pub base_index: LogIndex,
    /// Term of that entry (0 when there is no snapshot).
    pub base_term: Term,
    /// The kept entries, in order: `entries[0]` is entry `base_index + 1`.
    pub entries: Entries,
}

impl Log {
    /// Index of the last entry, or of the snapshot boundary when none is kept: the RequestVote
    /// lastLogIndex (§5.4.1), and the leader's nextIndex - 1 after an election.
    pub fn last_index(&self) -> LogIndex {
        self.base_index + self.entries.len() as LogIndex
    }

    /// Term of the last entry, or of the snapshot boundary when none is kept: the RequestVote
    /// lastLogTerm, compared first in the up-to-date check (§5.4.1).
    pub fn last_term(&self) -> Term {
        self.entries.last().map_or(self.base_term, |e| e.term)
    }

    /// The term at `index`, if known: the snapshot boundary counts, compacted entries do not.
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index == self.base_index {
            Some(self.base_term)
        } else {
            self.get(index).map(|e| e.term)
        }
    }

    /// The entry at `index`, if kept: None past the end or inside the snapshot.
    pub fn get(&self, index: LogIndex) -> Option<&Entry> {
        if index <= self.base_index {
            return None;
        }
        self.entries.get((index - self.base_index - 1) as usize)
    }

    /// Entries from `from` (inclusive) to the end, at most `max` of them.
    pub fn entries_from(&self, from: LogIndex, max: usize) -> impl Iterator<Item = &Entry> + '_ {
        let start = (from.max(self.base_index + 1) - self.base_index - 1) as usize;
        self.entries.range(start, max)
    }

    /// The first index in `from..=to` at which the two logs hold different entries; both must
    /// keep every entry in that range (above both snapshot boundaries, up to both ends). Chunks
    /// the two logs share are skipped whole.
    pub fn first_difference(&self, other: &Log, from: LogIndex, to: LogIndex) -> Option<LogIndex> {
        if self.base_index != other.base_index {
            return (from..=to).find(|&i| self.get(i) != other.get(i));
        }
        if from > to {
            return None;
        }
        debug_assert!(from > self.base_index && to <= self.last_index().min(other.last_index()));
        let position = |i: LogIndex| (i - self.base_index - 1) as usize;
        self.entries
            .first_difference(&other.entries, position(from), position(to) + 1)
            .map(|p| self.base_index + 1 + p as LogIndex)
    }

    /// Shares `other`'s chunks of entries wherever they hold the same entries at the same
    /// indices (see [`Entries::share_with`]); logs with different snapshot boundaries share
    /// nothing.
    pub fn share_with(&mut self, other: &Log) {
        if self.base_index == other.base_index {
            self.entries.share_with(&other.entries);
        }
    }

    /// Carries `was_shared`'s sharing over to `self`, a later copy of `was` (see
    /// [`Entries::carry_sharing`]).
    pub fn carry_sharing(&mut self, was: &Log, was_shared: &Log) {
        if self.base_index == was.base_index && was.base_index == was_shared.base_index {
            self.entries
                .carry_sharing(&was.entries, &was_shared.entries);
        }
    }

    /// The first index holding `term`, scanning back from `index` (the conflict hint).
    pub fn first_index_of_term(&self, term: Term, index: LogIndex) -> LogIndex {
        let mut first = index;
        while first > self.base_index + 1 && self.term_at(first - 1) == Some(term) {
            first -= 1;
        }
        first
    }

    /// The last index holding `term`, if the log has any entry of that term.
    pub fn last_index_of_term(&self, term: Term) -> Option<LogIndex> {
        let from_end = self.entries.iter().rev().position(|e| e.term == term)?;
        Some(self.base_index + (self.entries.len() - from_end) as LogIndex)
    }

    /// Appends one entry at `last_index() + 1`: a leader's new command, or AppendEntries rule 4.
    pub fn push(&mut self, entry: Entry) {
        self.entries.push(entry);
    }

    /// Deletes the entry at `index` and all that follow it.
    pub fn truncate_from(&mut self, index: LogIndex) {
        let keep = index.saturating_sub(self.base_index + 1) as usize;
        self.entries.truncate(keep);
    }

    /// Folds the prefix through `index` into the snapshot boundary; `index` must be in the log.
    pub fn compact_through(&mut self, index: LogIndex, term: Term) {
        let drop = (index - self.base_index) as usize;
        self.entries.remove_front(drop);
        self.base_index = index;
        self.base_term = term;
    }

    /// Replaces the whole log by an empty one that starts after a snapshot.
    pub fn reset_to(&mut self, index: LogIndex, term: Term) {
        self.entries = Entries::default();
        self.base_index = index;
        self.base_term = term;
    }

    /// `term:op` list, e.g. `[1:x=1 2:?x]`, with `…3|` marking a snapshot boundary at index 3.
    pub fn summary(&self) -> String {
        let mut s = String::from("[");
        if self.base_index > 0 {
            s.push_str(&format!("…{}|", self.base_index));
        }
        // A long log (a simulated run's, replayed) shows its ends: a trace's columns must fit.
        let n = self.entries.len();
        let long = n > Self::SHOWN_WHOLE;
        for (i, e) in self.entries.iter().enumerate() {
            if long && (3..n - 3).contains(&i) {
                if i == 3 {
                    s.push_str(&format!(" …{} more…", n - 6));
                }
                continue;
            }
            if i > 0 {
                s.push(' ');
            }
            s.push_str(&e.to_string());
        }
        s.push(']');
        s
    }

    /// The most entries `summary` shows one by one.
    const SHOWN_WHOLE: usize = 12;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::types::{Command, Op};

    #[test]
    fn a_long_log_shows_its_ends_and_how_many_between() {
        let mut log = Log {
            entries: (1..=13).map(entry).collect(),
            ..Log::default()
        };
        assert_eq!(
            log.summary(),
            "[1:?x 2:?x 3:?x …7 more… 11:?x 12:?x 13:?x]",
            "the first three, how many between (once), and the last three"
        );
        log.entries.truncate(12);
        assert!(!log.summary().contains("more"), "{}", log.summary());
    }

    fn entry(term: Term) -> Entry {
        Entry {
            term,
            command: std::sync::Arc::new(Command {
                client: 3,
                request_id: 1,
                op: Op::Get { key: "x".into() },
            }),
        }
    }

    #[test]
    fn indices_are_logical_after_compaction() {
        let mut log = Log::default();
        for t in [1, 1, 2, 3] {
            log.push(entry(t));
        }
        log.compact_through(2, 1);
        assert_eq!(log.last_index(), 4);
        assert_eq!(log.term_at(2), Some(1));
        assert_eq!(log.term_at(1), None);
        assert_eq!(log.term_at(3), Some(2));
        assert_eq!(log.entries_from(1, 10).count(), 2);
        assert_eq!(log.entries_from(4, 10).count(), 1);
        assert_eq!(log.entries_from(5, 10).count(), 0);
        log.truncate_from(4);
        assert_eq!(log.last_index(), 3);
        assert_eq!(log.summary(), "[…2|2:?x]");
    }

    #[test]
    fn first_difference_looks_through_the_last_index_of_its_range() {
        let mut a = Log::default();
        let mut b = Log::default();
        for t in [1, 1, 2] {
            a.push(entry(t));
        }
        for t in [1, 1, 3] {
            b.push(entry(t));
        }
        assert_eq!(a.first_difference(&b, 1, 3), Some(3));
        assert_eq!(a.first_difference(&b, 1, 2), None);
        assert_eq!(
            a.first_difference(&b, 3, 3),
            Some(3),
            "a range of one index"
        );
        a.compact_through(1, 1);
        b.compact_through(1, 1);
        assert_eq!(a.first_difference(&b, 2, 3), Some(3));
    }

    /// Equal logs of other allocations (as each server decodes what it receives) share their
    /// chunks once compared, and a later copy of a log carries its sharing over without
    /// comparing again: the simulator's checks then compare logs by pointer.
    #[test]
    fn equal_logs_share_their_chunks_and_later_copies_keep_the_sharing() {
        let log = || Log {
            entries: (1..=130).map(entry).collect(),
            ..Log::default()
        };
        let (first, was) = (log(), log());
        assert!(!was.entries.shares_every_chunk_with(&first.entries));
        let mut was_shared = was.clone();
        was_shared.share_with(&first);
        assert!(was_shared.entries.shares_every_chunk_with(&first.entries));
        let mut later = was.clone();
        later.carry_sharing(&was, &was_shared);
        assert!(later.entries.shares_every_chunk_with(&first.entries));
    }

    #[test]
    fn conflict_hint_finds_the_first_index_of_a_term() {
        let mut log = Log::default();
        for t in [1, 2, 2, 2, 3] {
            log.push(entry(t));
        }
        assert_eq!(log.first_index_of_term(2, 4), 2);
        // The scan stops at the snapshot: the hint names an index the log still holds.
        log.compact_through(2, 2);
        assert_eq!(log.first_index_of_term(2, 4), 3);
        assert_eq!(log.last_index_of_term(2), Some(4));
        assert_eq!(log.last_index_of_term(5), None);
    }
}

//! Log compaction (§7) and InstallSnapshot (Figure 13).

use super::{Handler, Role};
use crate::protocol::bug::Bug;
use crate::protocol::types::{LogIndex, Msg, Snapshot, Term};
use std::sync::Arc;

impl Handler<'_, '_> {
    // ---- InstallSnapshot (Figure 13). ----

    pub(super) fn on_install_snapshot(&mut self, leader: u64, term: Term, snapshot: Snapshot) {
        if !self.takes_leaders() {
            return; // Recovering: see `Recovery`.
        }
        // Rule 1: "Reply immediately if term < currentTerm".
        if term < self.s.term {
            let term = self.s.term;
            self.send(
                leader,
                Msg::InstallSnapshotReply {
                    term,
                    last_index: 0,
                },
            );
            return;
        }
        self.follow(leader, term);

        let last_index = snapshot.last_index;
        if self.bug(Bug::SnapshotDiscardsLog) {
            // BUG: throws away newer entries and may move commitIndex backwards.
            self.install(snapshot, false);
        } else if last_index > self.s.commit_index {
            // Rule 6: "If existing log entry has same index and term as snapshot's last included
            // entry, retain log entries following it"; rule 7: "Discard the entire log".
            let keep_suffix = self.s.log.term_at(last_index) == Some(snapshot.last_term);
            self.install(snapshot, keep_suffix);
        }
        // A snapshot at or below commitIndex covers only what we already have: keep it all.
        self.note_matched(last_index);
        let term = self.s.term;
        self.send(leader, Msg::InstallSnapshotReply { term, last_index });
    }

    /// Rule 8: "Reset state machine using snapshot contents".
    pub(super) fn install(&mut self, snapshot: Snapshot, keep_suffix: bool) {
        if keep_suffix {
            self.s
                .to_mut()
                .log
                .compact_through(snapshot.last_index, snapshot.last_term);
        } else {
            self.s
                .to_mut()
                .log
                .reset_to(snapshot.last_index, snapshot.last_term);
        }
        self.s.to_mut().kv = snapshot.state.clone();
        self.s.to_mut().commit_index = snapshot.last_index;
        self.s.to_mut().last_applied = snapshot.last_index;
        self.s.to_mut().snapshot = Some(Arc::new(snapshot));
        self.persist = true;
    }

    pub(super) fn on_install_snapshot_reply(
        &mut self,
        follower: u64,
        term: Term,
        last_index: LogIndex,
    ) {
        self.observe_term(term);
        if term < self.s.term || self.bug(Bug::IgnoreSnapshotReplies) {
            return; // BUG (IgnoreSnapshotReplies): the follower's progress is never learnt.
        }
        // No snapshot this leader sent ends past its own log: a reply claiming more is forged.
        if last_index > self.s.log.last_index() {
            return;
        }
        let Role::Leader {
            next_index,
            match_index,
        } = &mut self.s.to_mut().role
        else {
            return;
        };
        let f = follower as usize;
        match_index[f] = match_index[f].max(last_index);
        next_index[f] = next_index[f].max(last_index + 1);
        let behind = next_index[f] <= self.s.log.last_index();
        self.advance_commit();
        if behind {
            self.replicate_to(follower);
        }
    }

    /// Log compaction (§7): once enough applied entries sit in the log, fold them into a snapshot.
    pub(super) fn maybe_compact(&mut self) {
        let Some(threshold) = self.cfg.snapshot_after else {
            return;
        };
        let applied = self.s.last_applied;
        if applied - self.s.log.base_index < threshold {
            return;
        }
        let last_term = self
            .s
            .log
            .term_at(applied)
            .expect("applied entries are in the log");
        self.s.to_mut().snapshot = Some(Arc::new(Snapshot {
            last_index: applied,
            last_term,
            state: self.s.kv.clone(),
        }));
        self.s.to_mut().log.compact_through(applied, last_term);
        self.persist = true;
    }
}

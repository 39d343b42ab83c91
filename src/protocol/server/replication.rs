//! Log replication (§5.3) and the commitment rule (§5.4.2): heartbeats, AppendEntries and its
//! replies, and advancing commitIndex.

use super::{heartbeat_range, Handler, Role};
use crate::protocol::bug::Bug;
use crate::protocol::types::{AppendOutcome, Entry, LogIndex, Msg, ServerTimer, Term};

impl Handler<'_, '_> {
    /// Figure 2, leaders: "repeat during idle periods to prevent election timeouts (§5.2)".
    /// §5.2: heartbeats are "AppendEntries RPCs that carry no log entries"; a follower that is
    /// behind answers with the index it matches, and that reply sends it the entries.
    pub(super) fn on_heartbeat(&mut self) {
        if self.s.is_leader() {
            for peer in self.peers() {
                self.append_to(peer, 0);
            }
            self.out
                .set_timer(ServerTimer::Heartbeat, heartbeat_range(self.cfg));
        }
    }

    // ---- AppendEntries (§5.3). ----

    pub(super) fn on_append_entries(
        &mut self,
        leader: u64,
        term: Term,
        prev_log_index: LogIndex,
        prev_log_term: Term,
        entries: Vec<Entry>,
        leader_commit: LogIndex,
    ) {
        if !self.takes_leaders() {
            return; // Recovering: see `Recovery`.
        }
        // Rule 1: "Reply false if term < currentTerm (§5.1)"; our term tells it to step down.
        if term < self.s.term {
            let first_index = self.s.log.last_index() + 1;
            let outcome = AppendOutcome::Conflict {
                term: None,
                first_index,
            };
            self.reply_append(leader, outcome);
            return;
        }
        let candidate = matches!(self.s.role, Role::Candidate { .. }) && term == self.s.term;
        if candidate && self.bug(Bug::CandidateIgnoresLeader) {
            return; // BUG: a candidate must follow the leader of its term.
        }
        self.follow(leader, term);
        let Some((prev_log_index, entries)) =
            self.skip_compacted(leader, prev_log_index, prev_log_term, entries)
        else {
            return;
        };
        let last_new = prev_log_index + entries.len() as LogIndex;
        if !self.append_new_entries(prev_log_index, entries) {
            return;
        }
        // Rule 5: "If leaderCommit > commitIndex, set commitIndex = min(leaderCommit, index of
        // last new entry)".
        let known_good = if self.bug(Bug::CommitWithoutMin) {
            self.s.log.last_index() // BUG: trusts entries this RPC did not vouch for.
        } else {
            last_new
        };
        let commit = leader_commit.min(known_good);
        if commit > self.s.commit_index {
            self.s.to_mut().commit_index = commit;
            self.apply_committed();
        }
        self.note_matched(last_new);
        let outcome = AppendOutcome::Matched {
            match_index: last_new,
        };
        self.reply_append(leader, outcome);
    }

    /// An RPC of the current leader (AppendEntries or InstallSnapshot): adopt its term, and
    /// candidates: "If AppendEntries RPC received from new leader: convert to follower"; it
    /// resets the election timer.
    pub(super) fn follow(&mut self, leader: u64, term: Term) {
        self.observe_term(term);
        self.become_follower();
        self.s.to_mut().leader = Some(leader);
        self.out
            .set_timer(ServerTimer::Election, self.cfg.election_timeout.clone());
    }

    /// Entries at or below our snapshot are committed, so they match the leader's: skips them.
    /// Then rule 2: "Reply false if log doesn't contain an entry at prevLogIndex whose term
    /// matches prevLogTerm", with the hint that lets the leader skip a whole term. Returns the
    /// entries to append after prevLogIndex, or None when it has replied already.
    fn skip_compacted(
        &mut self,
        leader: u64,
        mut prev_log_index: LogIndex,
        mut prev_log_term: Term,
        mut entries: Vec<Entry>,
    ) -> Option<(LogIndex, Vec<Entry>)> {
        let base = self.s.log.base_index;
        if prev_log_index < base {
            let covered = ((base - prev_log_index) as usize).min(entries.len());
            entries.drain(..covered);
            prev_log_index += covered as LogIndex;
            if prev_log_index < base {
                let outcome = AppendOutcome::Matched {
                    match_index: prev_log_index,
                };
                self.reply_append(leader, outcome);
                return None;
            }
            prev_log_term = self.s.log.base_term;
        }
        let outcome = match self.s.log.term_at(prev_log_index) {
            Some(t) if t == prev_log_term => return Some((prev_log_index, entries)),
            None => AppendOutcome::Conflict {
                term: None,
                first_index: self.s.log.last_index() + 1,
            },
            Some(t) => AppendOutcome::Conflict {
                term: Some(t),
                first_index: self.s.log.first_index_of_term(t, prev_log_index),
            },
        };
        self.reply_append(leader, outcome);
        None
    }

    /// Rule 3: "If an existing entry conflicts with a new one (same index but different
    /// terms), delete the existing entry and all that follow it"; rule 4: "Append any new
    /// entries not already in the log". A matching entry is never deleted...
    ///
    /// ...and neither is a committed one: no leader's log conflicts with an entry committed
    /// before it (§5.4.3, Leader Completeness), so entries that would replace one are forged or
    /// corrupt, and the whole message is dropped (false) rather than let the commit index pass
    /// the end of the log. (Found by the arbitrary-fields property test: two AppendEntries of
    /// one term with contradicting logs.)
    fn append_new_entries(&mut self, prev_log_index: LogIndex, entries: Vec<Entry>) -> bool {
        if self.bug(Bug::TruncateOnEveryAppend) && self.s.log.last_index() > prev_log_index {
            // BUG: ...but here a stale or reordered AppendEntries cuts off what it does not carry.
            self.s.to_mut().log.truncate_from(prev_log_index + 1);
            self.persist = true;
        }
        let commit = self.s.commit_index;
        let replaces_committed = (entries.iter().enumerate()).any(|(offset, entry)| {
            let index = prev_log_index + 1 + offset as LogIndex;
            index <= commit && self.s.log.term_at(index).is_some_and(|t| t != entry.term)
        });
        if replaces_committed {
            return false;
        }
        for (offset, entry) in entries.into_iter().enumerate() {
            let index = prev_log_index + 1 + offset as LogIndex;
            match self.s.log.term_at(index) {
                Some(t) if t == entry.term => continue,
                Some(_) => self.s.to_mut().log.truncate_from(index),
                None => {}
            }
            self.s.to_mut().log.push(entry);
            self.persist = true;
        }
        true
    }

    pub(super) fn reply_append(&mut self, leader: u64, outcome: AppendOutcome) {
        let term = self.s.term;
        self.send(leader, Msg::AppendEntriesReply { term, outcome });
    }

    pub(super) fn on_append_entries_reply(
        &mut self,
        follower: u64,
        term: Term,
        outcome: AppendOutcome,
    ) {
        self.observe_term(term);
        // A reply to an RPC of an earlier term says nothing about this term's log.
        if (term < self.s.term && !self.bug(Bug::AcceptStaleReplies)) || !self.s.is_leader() {
            return;
        }
        // "If AppendEntries fails ... decrement nextIndex and retry"; a follower that is behind
        // gets the entries in answer to its reply.
        // This leader sent nothing past its own last entry (it never truncates its log in its
        // term): a reply that claims more is forged or corrupt, and counting it would commit
        // entries no follower holds.
        if matches!(outcome, AppendOutcome::Matched { match_index } if match_index > self.s.log.last_index())
        {
            return;
        }
        // A follower's first index is at least 1 (its log length + 1): a hint of 0 is forged or
        // corrupt, and would move nextIndex to 0, before any log.
        if matches!(outcome, AppendOutcome::Conflict { first_index: 0, .. }) {
            return;
        }
        let retry = !self.bug(Bug::NoAppendRetry); // BUG when false: entries go out only when added.
        let backoff = !self.bug(Bug::NoNextIndexBackoff); // BUG when false: nextIndex never drops.
        let s = self.s.to_mut();
        let Role::Leader {
            next_index,
            match_index,
        } = &mut s.role
        else {
            return;
        };
        let f = follower as usize;
        match outcome {
            AppendOutcome::Matched { match_index: m } => {
                // matchIndex only grows: a reordered older reply must not pull it back.
                match_index[f] = match_index[f].max(m);
                next_index[f] = next_index[f].max(m + 1);
                let behind = next_index[f] <= s.log.last_index();
                self.advance_commit();
                if behind && retry {
                    self.replicate_to(follower);
                }
            }
            AppendOutcome::Conflict {
                term: None,
                first_index,
            } if first_index <= match_index[f] && backoff => {
                // The follower's log ends before what it acknowledged in this term: it lost
                // entries (its disk was wiped), or the reply is older than that acknowledgement.
                // matchIndex only counts towards commits, so moving it back is safe either way;
                // keeping it would leave nextIndex past the follower's log, and it would never
                // catch up under this leader. A stale reply costs one resend.
                match_index[f] = first_index - 1;
                next_index[f] = first_index;
                if retry {
                    self.replicate_to(follower);
                }
            }
            AppendOutcome::Conflict { term, first_index } => {
                // "If AppendEntries fails because of log inconsistency: decrement nextIndex and
                // retry", a whole term at a time: past our last entry of the conflicting term,
                // or to the follower's first index of it.
                let hint = term
                    .and_then(|t| s.log.last_index_of_term(t).map(|i| i + 1))
                    .unwrap_or(first_index);
                let next = hint.max(match_index[f] + 1);
                if next < next_index[f] && backoff {
                    next_index[f] = next;
                    if retry {
                        self.replicate_to(follower);
                    }
                }
            }
        }
    }

    /// Figure 2, leaders: "If there exists an N such that N > commitIndex, a majority of
    /// matchIndex[i] ≥ N, and log[N].term == currentTerm: set commitIndex = N (§5.3, §5.4)".
    pub(super) fn advance_commit(&mut self) {
        let Role::Leader { match_index, .. } = &self.s.role else {
            return;
        };
        let last = self.s.log.last_index();
        let me = self.me as usize;
        let replicated = |n: LogIndex| {
            (0..self.cfg.servers)
                .filter(|&i| {
                    if i == me {
                        last >= n
                    } else {
                        match_index[i] >= n
                    }
                })
                .count()
        };
        let mut commit = self.s.commit_index;
        for n in (self.s.commit_index + 1)..=last {
            // §5.4.2 (Figure 8): only entries of the current term are committed by counting.
            let counts = self.s.log.term_at(n) == Some(self.s.term)
                || self.bug(Bug::CommitPreviousTermEntries);
            if counts && replicated(n) >= self.cfg.majority() {
                commit = n;
            }
        }
        if commit > self.s.commit_index {
            self.s.to_mut().commit_index = commit;
            self.apply_committed();
        }
    }

    pub(super) fn replicate_to_all(&mut self) {
        for peer in self.peers() {
            self.replicate_to(peer);
        }
    }

    /// Sends the follower what it lacks from nextIndex on: AppendEntries, or the snapshot when
    /// the entries it needs were compacted away (Figure 13).
    pub(super) fn replicate_to(&mut self, peer: u64) {
        self.append_to(peer, self.cfg.max_entries_per_append);
    }

    /// AppendEntries from nextIndex with at most `max_entries` entries (0: a heartbeat), or the
    /// snapshot when the entry before nextIndex was compacted away.
    pub(super) fn append_to(&mut self, peer: u64, max_entries: usize) {
        let Role::Leader { next_index, .. } = &self.s.role else {
            return;
        };
        let next = next_index[peer as usize];
        let term = self.s.term;
        let msg = if next <= self.s.log.base_index {
            let snapshot = self
                .s
                .snapshot
                .as_deref()
                .cloned()
                .expect("a compacted log always has its snapshot");
            Msg::InstallSnapshot { term, snapshot }
        } else {
            let prev_log_index = next - 1;
            Msg::AppendEntries {
                term,
                prev_log_index,
                prev_log_term: self.s.log.term_at(prev_log_index).unwrap_or(0),
                entries: self
                    .s
                    .log
                    .entries_from(next, max_entries)
                    .cloned()
                    .collect(),
                leader_commit: self.s.commit_index,
            }
        };
        self.send(peer, msg);
    }
}

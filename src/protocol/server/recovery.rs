//! Recovery from lost durable state, after Protocol-Aware Recovery (Alagappan et al., FAST '18).
//!
//! A server whose storage was damaged (its vote, its term, entries it had made durable) may have
//! promised things it no longer remembers: a vote in some term, an acknowledgement that helped
//! commit an entry. Restarting as if new would let it vote twice in a term, or help elect a leader
//! that lacks a committed entry it had held. So it restarts *recovering*:
//!
//! 1. It neither votes nor stands for election. It asks every peer for its term (`RecoveryQuery`)
//!    until every peer has answered. Every vote that helped elect a leader went to a candidate
//!    that a majority of voters had saved that term for, and every entry it acknowledged came
//!    from such a leader; with damage on a minority, at least one of those voters is undamaged
//!    and answers that term or a later one. So the highest term a peer that is not recovering
//!    itself answers is a *floor*: it may have promised something in any term up to it, and in
//!    none above it. (A recovering peer's answer counts as an answer, so two damaged servers of
//!    five do not wait for each other forever, but its term bounds nothing: it lost it too.)
//! 2. It stays recovering until it holds the log of a leader of a term at or above the floor,
//!    through that leader's last index: that log holds every committed entry (Leader
//!    Completeness), so it holds again everything it may have acknowledged. Then it votes again:
//!    in that term its vote counts as given to that leader (who has won it already), and in later
//!    terms, where it never promised anything, as any server's.
//!
//! A server that starts from an empty data directory (a new server's or a deleted one's: they
//! look the same, `Storage::maybe_new`) recovers too, with one more way out: if every peer has
//! answered, none holds an entry or a snapshot, none recovers from damage it detected, and it
//! holds nothing either, then nothing was ever written (a committed entry stays on an undamaged
//! server of its majority, in its log or under its snapshot), so nothing can be lost, and it
//! starts as new, at the floor, its vote in that term counted as given (to itself): any vote it
//! gave before was in a term no higher. Without this a brand-new cluster, whose servers all start
//! this way, would wait forever for a leader to repair them. Deleted directories on a majority,
//! where the rest never received an entry, look like a new cluster: the one loss of state it
//! cannot refuse (README, Damaged storage).
//!
//! While recovering it takes AppendEntries and InstallSnapshot only once it knows its floor,
//! and then refuses every leader below it (its term is at least the floor): before the damage it
//! may have refused older leaders, and its acknowledgement must not help one of them commit. A
//! leader that hears a `RecoveryQuery` also stops counting the asker's earlier acknowledgements
//! (matchIndex back to 0): they may be gone.
//!
//! With damage on a majority, no term above the floor can gather a majority of votes, so no
//! leader is elected and the cluster serves nothing rather than a history missing acknowledged
//! writes. The checker proves both within bounds (`models/damage.toml`); `Bug::RecoverAsNew`
//! restarts a damaged server as if new, and the checker shows it voting twice in one term.

use super::{Handler, Role};
use crate::protocol::types::{LogIndex, Msg, ServerTimer, Term};
use serde::{Deserialize, Serialize};

/// What a recovering server knows so far; `None` in `ServerState::recovery` once repaired.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Recovery {
    /// Bit `i` set: peer `i` answered a `RecoveryQuery`.
    pub heard: u64,
    /// The highest term heard (and its own saved term, if it kept it): it abstains through it.
    pub floor: Term,
    /// How far its log is known to match the leader of its current term: the last index it
    /// accepted from that leader (None: nothing yet in this term).
    pub matched: Option<LogIndex>,
    /// The last index the leader of its current term said it had (after its election, so its
    /// log through it holds every committed entry): repaired once `matched` reaches it.
    pub target: Option<LogIndex>,
    /// It started from an empty data directory (`Storage::maybe_new`): it may be new.
    pub maybe_new: bool,
    /// Some peer that answered holds an entry or a snapshot, or is recovering from damage it
    /// detected: something was written, and this server may not start as new.
    pub written: bool,
}

/// A peer's answer to a `RecoveryQuery`, beyond its term (`Msg::RecoveryReply`).
pub(super) struct Answer {
    /// The peer is recovering too: its term bounds nothing.
    pub recovering: bool,
    /// The leader's last index, when the peer leads its term.
    pub leader_last: Option<LogIndex>,
    /// The peer holds an entry or a snapshot.
    pub holds_entries: bool,
    /// The peer recovers from an empty data directory, not from detected damage.
    pub maybe_new: bool,
}

impl Handler<'_, '_> {
    fn peer_mask(&self) -> u64 {
        self.peers().iter().fold(0, |mask, p| mask | 1 << p)
    }

    /// The floor, once every peer has answered; None before.
    fn known_floor(&self) -> Option<Term> {
        let r = self.s.recovery.as_ref()?;
        (r.heard == self.peer_mask()).then_some(r.floor)
    }

    /// On start and on each election timeout while recovering: ask the peers not yet heard, or,
    /// once the floor is known, the leader (every peer while none is known); or, once the floor
    /// is known and nothing was written, start as new.
    pub(super) fn ask_peers(&mut self) {
        let Some(r) = &self.s.recovery else {
            return;
        };
        let unheard = !r.heard;
        let floor_known = self.known_floor().is_some();
        if floor_known && self.nothing_was_written() {
            // A server with no peers to ask (a one-server cluster) knows at once.
            self.start_as_new();
            return;
        }
        let leader = self.s.leader;
        for peer in self.peers() {
            let ask = if floor_known {
                leader.is_none_or(|l| l == peer)
            } else {
                unheard & 1 << peer != 0
            };
            if ask {
                self.send(peer, Msg::RecoveryQuery);
            }
        }
        self.out
            .set_timer(ServerTimer::Election, self.cfg.election_timeout.clone());
    }

    /// Any server answers with its term; a leader also gives its last index, and stops counting
    /// what the asker acknowledged before: the asker may have lost it.
    pub(super) fn on_recovery_query(&mut self, from: u64) {
        let f = from as usize;
        let mut resend = false;
        if let Role::Leader { match_index, .. } = &self.s.role {
            if match_index[f] != 0 {
                if let Role::Leader { match_index, .. } = &mut self.s.to_mut().role {
                    match_index[f] = 0;
                }
            }
            resend = true;
        }
        let leader_last = self.s.is_leader().then(|| self.s.log.last_index());
        let reply = Msg::RecoveryReply {
            term: self.s.term,
            recovering: self.s.recovery.is_some(),
            leader_last,
            holds_entries: self.s.log.last_index() > 0,
            maybe_new: self.s.recovery.as_ref().is_some_and(|r| r.maybe_new),
        };
        self.send(from, reply);
        if resend {
            self.replicate_to(from);
        }
        // A recovering server that has not heard from the asker asks it back at once: the
        // asker is up now, and servers started together learn their floors in one round trip
        // instead of one election timeout (a brand-new cluster then starts as new together).
        let unheard = self
            .s
            .recovery
            .as_ref()
            .is_some_and(|r| r.heard & 1 << from == 0);
        if unheard {
            self.send(from, Msg::RecoveryQuery);
        }
    }

    /// Phase 1: count the answer towards the floor. Phase 2: repaired once the leader of a term
    /// at or above the floor says its log ends where ours is known to match it.
    pub(super) fn on_recovery_reply(&mut self, from: u64, term: Term, answer: Answer) {
        if self.s.recovery.is_none() {
            return; // Repaired already: the answer is stale.
        }
        self.observe_term(term);
        let floor = self.known_floor();
        let r = self.s.recovery.as_ref().expect("checked above");
        match floor {
            None => {
                if r.heard & 1 << from != 0 {
                    return;
                }
                let r = self.s.to_mut().recovery.as_mut().expect("checked above");
                r.heard |= 1 << from;
                // A peer that detected damage held something, and may have lost it all.
                r.written |= answer.holds_entries || (answer.recovering && !answer.maybe_new);
                if !answer.recovering {
                    r.floor = r.floor.max(term); // A recovering peer lost its term too.
                }
                if self.known_floor().is_some() {
                    self.ask_peers(); // Or starts as new, if nothing was written.
                }
            }
            Some(floor) => {
                let from_leader =
                    term == self.s.term && term >= floor && self.s.leader == Some(from);
                if let (true, Some(last), None) = (from_leader, answer.leader_last, r.target) {
                    // The first answer of this term's leader is the target: later entries,
                    // appended after, need not be waited for (under load they never stop).
                    self.s.to_mut().recovery.as_mut().expect("checked").target = Some(last);
                    self.repair_if_matched();
                }
            }
        }
    }

    /// This server started from an empty data directory, every peer has answered, and none
    /// holds an entry or a snapshot or detected damage: nothing was ever written (with damage on
    /// a minority), so nothing can have been committed.
    fn nothing_was_written(&self) -> bool {
        self.s
            .recovery
            .as_ref()
            .is_some_and(|r| r.maybe_new && !r.written && self.s.log.last_index() == 0)
    }

    /// Ends a recovery with nothing to repair: the server starts as new at the floor, its vote in
    /// that term counted as given (to itself), since it may have voted in it before.
    fn start_as_new(&mut self) {
        let floor = self.known_floor().expect("every peer answered");
        self.observe_term(floor);
        let me = self.me;
        let s = self.s.to_mut();
        s.voted_for = Some(me);
        s.recovery = None;
        self.persist = true;
        self.out
            .set_timer(ServerTimer::Election, self.cfg.election_timeout.clone());
    }

    /// Whether it may take AppendEntries or InstallSnapshot at all: not while it
    /// recovers and does not know its floor yet. Before the damage it may have reached a later
    /// term than a stale leader's and refused it; acknowledging that leader now could help it
    /// commit an entry that a later leader lacks (the checker found that run: a lossy network,
    /// 19 steps). Once the floor is known its term is at least the floor, so Figure 2's rule 1
    /// refuses every leader below it, and that refusal's term deposes it.
    pub(super) fn takes_leaders(&self) -> bool {
        self.s.recovery.is_none() || self.known_floor().is_some()
    }

    /// The follower side of replication while recovering: its log now matches the leader of its
    /// term through `index`. It asks that leader whether this is all, at each AppendEntries
    /// taken: heartbeats keep its election timer from firing, and an answer may be lost.
    pub(super) fn note_matched(&mut self, index: LogIndex) {
        let Some(r) = &self.s.recovery else {
            return;
        };
        if r.matched.is_none_or(|m| m < index) {
            self.s.to_mut().recovery.as_mut().expect("checked").matched = Some(index);
        }
        if self.s.recovery.as_ref().is_some_and(|r| r.target.is_some()) {
            self.repair_if_matched();
        } else if let Some(leader) = self.s.leader {
            self.send(leader, Msg::RecoveryQuery);
        }
    }

    /// Repaired once its log matches the leader of its term through the target: that log holds
    /// every committed entry (Leader Completeness), so it holds again all it may have
    /// acknowledged.
    fn repair_if_matched(&mut self) {
        let Some(r) = &self.s.recovery else {
            return;
        };
        let (Some(leader), Some(target)) = (self.s.leader, r.target) else {
            return;
        };
        if r.matched.is_some_and(|m| m >= target) {
            // It may have voted in this term before the damage (if it is the floor): counting
            // its vote as the leader's, who has won already, gives none away.
            let s = self.s.to_mut();
            s.voted_for = Some(leader);
            s.recovery = None;
            self.persist = true;
        }
    }
}

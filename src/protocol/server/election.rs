//! Leader election (§5.2) and the voting restriction (§5.4.1): the election timer,
//! RequestVote and the votes it collects.

use super::{Handler, Role};
use crate::protocol::bug::Bug;
use crate::protocol::types::{LogIndex, Msg, ServerTimer, Term};

impl Handler<'_, '_> {
    // ---- Timers. ----

    /// Figure 2, followers: "If election timeout elapses without receiving AppendEntries RPC from
    /// current leader or granting vote to candidate: convert to candidate"; candidates start a
    /// new election.
    pub(super) fn on_election_timeout(&mut self) {
        if self.s.recovery.is_some() {
            self.ask_peers(); // It may not stand until repaired: it asks again instead.
        } else if !self.s.is_leader() {
            self.become_candidate();
        }
    }

    // ---- RequestVote (§5.2, §5.4.1). ----

    pub(super) fn on_request_vote(
        &mut self,
        candidate: u64,
        term: Term,
        last_log_index: LogIndex,
        last_log_term: Term,
    ) {
        self.observe_term(term);
        // §5.4.1: the candidate's log is at least as up-to-date: later last term, or the same
        // last term and at least as long.
        let up_to_date = (last_log_term, last_log_index)
            >= (self.s.log.last_term(), self.s.log.last_index())
            || self.bug(Bug::VoteWithoutLogCheck);
        // RequestVote rule 1: "Reply false if term < currentTerm"; rule 2: "If votedFor is null
        // or candidateId, and candidate's log is at least as up-to-date as receiver's log, grant".
        // A recovering server may have voted in this term and forgotten it: it abstains.
        let granted = term == self.s.term
            && self.s.voted_for.is_none_or(|v| v == candidate)
            && up_to_date
            && self.s.recovery.is_none();
        if granted && self.s.voted_for != Some(candidate) {
            self.s.to_mut().voted_for = Some(candidate);
            self.persist = true;
        }
        // Figure 2 resets the timer only when the vote is granted.
        let refused_reset = self.s.role == Role::Follower && self.bug(Bug::ResetTimerOnRefusedVote);
        if granted || refused_reset {
            self.out
                .set_timer(ServerTimer::Election, self.cfg.election_timeout.clone());
        }
        let term = self.s.term;
        self.send(candidate, Msg::RequestVoteReply { term, granted });
    }

    pub(super) fn on_vote(&mut self, voter: u64, term: Term, granted: bool) {
        self.observe_term(term);
        // Votes from an earlier term are stale and do not count.
        if term != self.s.term || !granted {
            return;
        }
        if let Role::Candidate { votes } = &mut self.s.to_mut().role {
            *votes |= 1 << voter;
            self.count_votes();
        }
    }

    /// Figure 2, candidates: "If votes received from majority of servers: become leader".
    pub(super) fn count_votes(&mut self) {
        if let Role::Candidate { votes } = self.s.role {
            if votes.count_ones() as usize >= self.cfg.majority() {
                self.become_leader();
            }
        }
    }
}

//! The Raft server as one deterministic stateright actor: no clock, no randomness, no I/O.
//! Every handler follows Figure 2 (and Figure 13 for snapshots) of the Raft paper; the comment at
//! each rule quotes the rule it implements. The same code is model-checked and run over UDP.
//!
//! A `Bug` in the configuration swaps exactly one rule for a classic mistake, at the line where the
//! correct rule lives, so the checker can show what each rule prevents.

use crate::log::Log;
use crate::types::*;
use serde::{Deserialize, Serialize};
use stateright::actor::{Actor, Id, Out};
use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

/// Classic Raft mistakes the checker can inject, one at a time (see README, "The bug zoo").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bug {
    /// Figure 8: commit an entry of an earlier term by counting replicas.
    CommitPreviousTermEntries,
    /// votedFor is not written to stable storage, so a restarted server votes again.
    VoteNotPersisted,
    /// Grant a vote without the §5.4.1 "candidate's log is at least as up-to-date" check.
    VoteWithoutLogCheck,
    /// Truncate after prevLogIndex on every AppendEntries, not only on a conflict.
    TruncateOnEveryAppend,
    /// Follower sets commitIndex = min(leaderCommit, last log index), not the last *new* entry.
    CommitWithoutMin,
    /// Adopt a higher term but keep being leader or candidate.
    NoStepDown,
    /// Leader takes AppendEntries replies of an older term into matchIndex.
    AcceptStaleReplies,
    /// InstallSnapshot discards the whole log and resets commitIndex to the snapshot, even when
    /// the follower already has more.
    SnapshotDiscardsLog,
    /// Apply every committed command, even a retry that was already applied.
    NoDeduplication,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ServerConfig {
    /// Cluster size; servers are ids 0..servers.
    pub servers: usize,
    pub bug: Option<Bug>,
    /// Snapshot once this many applied entries sit in the log (None: never compact).
    pub snapshot_after: Option<u64>,
    /// Cap on entries per AppendEntries (keeps a UDP datagram small).
    pub max_entries_per_append: usize,
    pub election_timeout: Range<Duration>,
    pub heartbeat_interval: Duration,
}

impl ServerConfig {
    pub fn new(servers: usize) -> Self {
        ServerConfig {
            servers,
            bug: None,
            snapshot_after: None,
            max_entries_per_append: 64,
            election_timeout: Duration::from_millis(300)..Duration::from_millis(600),
            heartbeat_interval: Duration::from_millis(75),
        }
    }

    fn majority(&self) -> usize {
        self.servers / 2 + 1
    }
}

/// What Figure 2 says is "updated on stable storage before responding to RPCs", plus the snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Storage {
    pub term: Term,
    pub voted_for: Option<u64>,
    pub log: Log,
    /// Shared, not copied, by every save that does not change it.
    pub snapshot: Option<Arc<Snapshot>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    Follower,
    /// `votes` is a bit set of the servers that granted their vote in this term.
    Candidate {
        votes: u64,
    },
    Leader {
        next_index: Vec<LogIndex>,
        match_index: Vec<LogIndex>,
    },
}

#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServerState {
    // Persistent state (Figure 2), restored from `Storage`.
    pub term: Term,
    pub voted_for: Option<u64>,
    pub log: Log,
    pub snapshot: Option<Arc<Snapshot>>,
    // Volatile state.
    pub role: Role,
    /// The leader this server last heard from in its current term (for client redirects).
    pub leader: Option<u64>,
    pub commit_index: LogIndex,
    pub last_applied: LogIndex,
    pub kv: KvStore,
}

impl ServerState {
    /// Figure 2's initial state, or the state restored from storage after a crash: persistent
    /// fields come back, the state machine restarts from the snapshot and replays the log.
    pub fn restore(storage: Option<&Storage>) -> Self {
        let storage = storage.cloned().unwrap_or(Storage {
            term: 0,
            voted_for: None,
            log: Log::default(),
            snapshot: None,
        });
        let kv = storage
            .snapshot
            .as_ref()
            .map(|s| s.state.clone())
            .unwrap_or_default();
        let applied = storage.log.base_index;
        ServerState {
            term: storage.term,
            voted_for: storage.voted_for,
            log: storage.log,
            snapshot: storage.snapshot,
            role: Role::Follower,
            leader: None,
            commit_index: applied,
            last_applied: applied,
            kv,
        }
    }

    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader { .. })
    }

    pub fn role_name(&self) -> &'static str {
        match self.role {
            Role::Follower => "follower",
            Role::Candidate { .. } => "candidate",
            Role::Leader { .. } => "leader",
        }
    }
}

impl fmt::Debug for ServerState {
    /// One line a person can read: `leader t2 vote=S0 log=[1:x=1] commit=1 applied=1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let vote = self.voted_for.map_or("-".to_string(), |v| format!("S{v}"));
        write!(
            f,
            "{} t{} vote={} log={} commit={} applied={}",
            self.role_name(),
            self.term,
            vote,
            self.log.summary(),
            self.commit_index,
            self.last_applied
        )
    }
}

/// The Raft server actor.
#[derive(Clone, Debug)]
pub struct RaftServer {
    pub cfg: ServerConfig,
}

impl RaftServer {
    pub fn new(cfg: ServerConfig) -> Self {
        RaftServer { cfg }
    }

    fn step<'a, 'b>(&'a self, id: Id, s: &'a mut Cow<'b, ServerState>) -> Step<'a, 'b> {
        Step {
            cfg: &self.cfg,
            me: usize::from(id) as u64,
            s,
            out: Out::new(),
            persist: false,
        }
    }

    /// Whether `msg` can no longer change anything at a server in state `s`, now or later: a
    /// reply whose moment has passed. A server's term never goes back (it is saved before
    /// anything that depends on it leaves, Figure 2), and it is a candidate, then maybe leader,
    /// of a term only by starting that term. So:
    /// - a reply from an earlier term is ignored (§5.1);
    /// - a vote of its own term counts only if granted, and only while it is a candidate;
    /// - an AppendEntries or InstallSnapshot reply of its own term is for its leader: a
    ///   follower of that term never leads it.
    ///
    /// The handlers below ignore such replies by the paper's rules; the model discards them as
    /// soon as they are moot, since a later delivery would be a step that changes nothing. A
    /// model test checks both claims against the handlers in every reachable state.
    pub fn is_moot(&self, s: &ServerState, msg: &Msg) -> bool {
        let (term, may_count) = match *msg {
            Msg::Vote { term, granted } => {
                (term, granted && matches!(s.role, Role::Candidate { .. }))
            }
            // The injected bug takes replies of any earlier term into matchIndex.
            Msg::AppendEntriesReply { .. } if self.cfg.bug == Some(Bug::AcceptStaleReplies) => {
                return false
            }
            Msg::AppendEntriesReply { term, .. } | Msg::InstallSnapshotReply { term, .. } => {
                (term, s.role != Role::Follower)
            }
            _ => return false,
        };
        term < s.term || (term == s.term && !may_count)
    }
}

impl Actor for RaftServer {
    type Msg = Msg;
    type Timer = Timer;
    type State = ServerState;
    type Storage = Storage;
    type Random = ();

    fn on_start(&self, _id: Id, storage: &Option<Storage>, o: &mut Out<Self>) -> ServerState {
        o.set_timer(Timer::Election, self.cfg.election_timeout.clone());
        ServerState::restore(storage.as_ref())
    }

    fn on_msg(&self, id: Id, state: &mut Cow<ServerState>, src: Id, msg: Msg, o: &mut Out<Self>) {
        let mut step = self.step(id, state);
        let from = usize::from(src) as u64;
        match msg {
            Msg::RequestVote {
                term,
                last_log_index,
                last_log_term,
            } => step.on_request_vote(from, term, last_log_index, last_log_term),
            Msg::Vote { term, granted } => step.on_vote(from, term, granted),
            Msg::AppendEntries {
                term,
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
            } => step.on_append_entries(
                from,
                term,
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
            ),
            Msg::AppendEntriesReply { term, outcome } => {
                step.on_append_entries_reply(from, term, outcome)
            }
            Msg::InstallSnapshot { term, snapshot } => {
                step.on_install_snapshot(from, term, snapshot)
            }
            Msg::InstallSnapshotReply { term, last_index } => {
                step.on_install_snapshot_reply(from, term, last_index)
            }
            Msg::ClientRequest(command) => step.on_client_request(src, command),
            // Servers never receive client responses.
            Msg::ClientResponse { .. } => {}
        }
        step.finish(o);
    }

    fn on_timeout(&self, id: Id, state: &mut Cow<ServerState>, timer: &Timer, o: &mut Out<Self>) {
        let mut step = self.step(id, state);
        match timer {
            Timer::Election => step.on_election_timeout(),
            Timer::Heartbeat => step.on_heartbeat(),
            Timer::ClientRetry => {}
        }
        step.finish(o);
    }
}

/// One handler invocation: the state being changed, the commands it emits, and whether the
/// persistent state changed (then `finish` saves it *before* any message leaves).
struct Step<'a, 'b> {
    cfg: &'a ServerConfig,
    me: u64,
    /// Copied on the first write only: a message that changes nothing costs no copy.
    s: &'a mut Cow<'b, ServerState>,
    out: Out<RaftServer>,
    persist: bool,
}

impl Step<'_, '_> {
    fn bug(&self, bug: Bug) -> bool {
        self.cfg.bug == Some(bug)
    }

    fn peers(&self) -> Vec<u64> {
        (0..self.cfg.servers as u64)
            .filter(|&p| p != self.me)
            .collect()
    }

    fn send(&mut self, to: u64, msg: Msg) {
        self.out.send(Id::from(to as usize), msg);
    }

    /// Figure 2: persistent state is "updated on stable storage before responding to RPCs", so
    /// the save comes first among this handler's commands.
    fn finish(self, o: &mut Out<RaftServer>) {
        if self.persist {
            let voted_for = if self.bug(Bug::VoteNotPersisted) {
                None // BUG: the vote is lost on restart.
            } else {
                self.s.voted_for
            };
            o.save(Storage {
                term: self.s.term,
                voted_for,
                log: self.s.log.clone(),
                snapshot: self.s.snapshot.clone(),
            });
        }
        let mut out = self.out;
        o.append(&mut out);
    }

    // ---- Role transitions: one place each. ----

    /// Figure 2, all servers: "If RPC request or response contains term T > currentTerm: set
    /// currentTerm = T, convert to follower (§5.1)".
    fn observe_term(&mut self, term: Term) {
        if term > self.s.term {
            self.s.to_mut().term = term;
            self.s.to_mut().voted_for = None;
            self.s.to_mut().leader = None;
            self.persist = true;
            if self.bug(Bug::NoStepDown) {
                return; // BUG: keeps its role in the new term.
            }
            self.become_follower();
        }
    }

    fn become_follower(&mut self) {
        if self.s.is_leader() {
            self.out.cancel_timer(Timer::Heartbeat);
        }
        if self.s.role != Role::Follower {
            self.s.to_mut().role = Role::Follower;
            self.out
                .set_timer(Timer::Election, self.cfg.election_timeout.clone());
        }
    }

    /// Figure 2, candidates (§5.2): "increment currentTerm, vote for self, reset election timer,
    /// send RequestVote RPCs to all other servers".
    fn become_candidate(&mut self) {
        self.s.to_mut().term += 1;
        self.s.to_mut().voted_for = Some(self.me);
        self.s.to_mut().leader = None;
        self.s.to_mut().role = Role::Candidate {
            votes: 1 << self.me,
        };
        self.persist = true;
        self.out
            .set_timer(Timer::Election, self.cfg.election_timeout.clone());
        let msg = Msg::RequestVote {
            term: self.s.term,
            last_log_index: self.s.log.last_index(),
            last_log_term: self.s.log.last_term(),
        };
        for peer in self.peers() {
            self.send(peer, msg.clone());
        }
        self.count_votes();
    }

    /// Figure 2, leaders: "Upon election: send initial empty AppendEntries RPCs (heartbeat) to
    /// each server"; nextIndex starts after the leader's last entry, matchIndex at 0.
    fn become_leader(&mut self) {
        let n = self.cfg.servers;
        let last = self.s.log.last_index();
        let mut match_index = vec![0; n];
        match_index[self.me as usize] = last;
        self.s.to_mut().role = Role::Leader {
            next_index: vec![last + 1; n],
            match_index,
        };
        self.s.to_mut().leader = Some(self.me);
        self.out.cancel_timer(Timer::Election);
        self.out
            .set_timer(Timer::Heartbeat, heartbeat_range(self.cfg));
        self.replicate_to_all();
    }

    // ---- Timers. ----

    /// Figure 2, followers: "If election timeout elapses without receiving AppendEntries RPC from
    /// current leader or granting vote to candidate: convert to candidate"; candidates start a
    /// new election.
    fn on_election_timeout(&mut self) {
        if !self.s.is_leader() {
            self.become_candidate();
        }
    }

    /// Figure 2, leaders: "repeat during idle periods to prevent election timeouts (§5.2)".
    /// §5.2: heartbeats are "AppendEntries RPCs that carry no log entries"; a follower that is
    /// behind answers with the index it matches, and that reply sends it the entries.
    fn on_heartbeat(&mut self) {
        if self.s.is_leader() {
            for peer in self.peers() {
                self.append_to(peer, 0);
            }
            self.out
                .set_timer(Timer::Heartbeat, heartbeat_range(self.cfg));
        }
    }

    // ---- RequestVote (§5.2, §5.4.1). ----

    fn on_request_vote(
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
        let granted =
            term == self.s.term && self.s.voted_for.is_none_or(|v| v == candidate) && up_to_date;
        if granted && self.s.voted_for != Some(candidate) {
            self.s.to_mut().voted_for = Some(candidate);
            self.persist = true;
        }
        if granted {
            self.out
                .set_timer(Timer::Election, self.cfg.election_timeout.clone());
        }
        let term = self.s.term;
        self.send(candidate, Msg::Vote { term, granted });
    }

    fn on_vote(&mut self, voter: u64, term: Term, granted: bool) {
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
    fn count_votes(&mut self) {
        if let Role::Candidate { votes } = self.s.role {
            if votes.count_ones() as usize >= self.cfg.majority() {
                self.become_leader();
            }
        }
    }

    // ---- AppendEntries (§5.3). ----

    fn on_append_entries(
        &mut self,
        leader: u64,
        term: Term,
        mut prev_log_index: LogIndex,
        mut prev_log_term: Term,
        mut entries: Vec<Entry>,
        leader_commit: LogIndex,
    ) {
        // Rule 1: "Reply false if term < currentTerm (§5.1)"; our term tells it to step down.
        if term < self.s.term {
            let outcome = AppendOutcome::Conflict {
                term: None,
                first_index: self.s.log.last_index() + 1,
            };
            self.reply_append(leader, outcome);
            return;
        }
        self.observe_term(term);
        // Candidates: "If AppendEntries RPC received from new leader: convert to follower".
        self.become_follower();
        self.s.to_mut().leader = Some(leader);
        self.out
            .set_timer(Timer::Election, self.cfg.election_timeout.clone());

        // Entries at or below our snapshot are committed, so they match the leader's: skip them.
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
                return;
            }
            prev_log_term = self.s.log.base_term;
        }

        // Rule 2: "Reply false if log doesn't contain an entry at prevLogIndex whose term
        // matches prevLogTerm", with the hint that lets the leader skip a whole term.
        match self.s.log.term_at(prev_log_index) {
            None => {
                let first_index = self.s.log.last_index() + 1;
                self.reply_append(
                    leader,
                    AppendOutcome::Conflict {
                        term: None,
                        first_index,
                    },
                );
                return;
            }
            Some(t) if t != prev_log_term => {
                let first_index = self.s.log.first_index_of_term(t, prev_log_index);
                let outcome = AppendOutcome::Conflict {
                    term: Some(t),
                    first_index,
                };
                self.reply_append(leader, outcome);
                return;
            }
            Some(_) => {}
        }

        let last_new = prev_log_index + entries.len() as LogIndex;
        if self.bug(Bug::TruncateOnEveryAppend) {
            // BUG: a stale or reordered AppendEntries cuts off entries it does not carry.
            if self.s.log.last_index() > prev_log_index || !entries.is_empty() {
                self.s.to_mut().log.truncate_from(prev_log_index + 1);
                self.s.to_mut().log.entries.extend(entries);
                self.persist = true;
            }
        } else {
            // Rule 3: "If an existing entry conflicts with a new one (same index but different
            // terms), delete the existing entry and all that follow it"; rule 4: "Append any new
            // entries not already in the log". A matching entry is never deleted.
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
        let outcome = AppendOutcome::Matched {
            match_index: last_new,
        };
        self.reply_append(leader, outcome);
    }

    fn reply_append(&mut self, leader: u64, outcome: AppendOutcome) {
        let term = self.s.term;
        self.send(leader, Msg::AppendEntriesReply { term, outcome });
    }

    fn on_append_entries_reply(&mut self, follower: u64, term: Term, outcome: AppendOutcome) {
        self.observe_term(term);
        // A reply to an RPC of an earlier term says nothing about this term's log.
        if (term < self.s.term && !self.bug(Bug::AcceptStaleReplies)) || !self.s.is_leader() {
            return;
        }
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
                if behind {
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
                if next < next_index[f] {
                    next_index[f] = next;
                    self.replicate_to(follower);
                }
            }
        }
    }

    /// Figure 2, leaders: "If there exists an N such that N > commitIndex, a majority of
    /// matchIndex[i] ≥ N, and log[N].term == currentTerm: set commitIndex = N (§5.3, §5.4)".
    fn advance_commit(&mut self) {
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

    fn replicate_to_all(&mut self) {
        for peer in self.peers() {
            self.replicate_to(peer);
        }
    }

    /// Sends the follower what it lacks from nextIndex on: AppendEntries, or the snapshot when
    /// the entries it needs were compacted away (Figure 13).
    fn replicate_to(&mut self, peer: u64) {
        self.append_to(peer, self.cfg.max_entries_per_append);
    }

    /// AppendEntries from nextIndex with at most `max_entries` entries (0: a heartbeat), or the
    /// snapshot when the entry before nextIndex was compacted away.
    fn append_to(&mut self, peer: u64, max_entries: usize) {
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
                entries: self.s.log.entries_from(next, max_entries).to_vec(),
                leader_commit: self.s.commit_index,
            }
        };
        self.send(peer, msg);
    }

    // ---- InstallSnapshot (Figure 13). ----

    fn on_install_snapshot(&mut self, leader: u64, term: Term, snapshot: Snapshot) {
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
        self.observe_term(term);
        self.become_follower();
        self.s.to_mut().leader = Some(leader);
        self.out
            .set_timer(Timer::Election, self.cfg.election_timeout.clone());

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
        let term = self.s.term;
        self.send(leader, Msg::InstallSnapshotReply { term, last_index });
    }

    /// Rule 8: "Reset state machine using snapshot contents".
    fn install(&mut self, snapshot: Snapshot, keep_suffix: bool) {
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

    fn on_install_snapshot_reply(&mut self, follower: u64, term: Term, last_index: LogIndex) {
        self.observe_term(term);
        if term < self.s.term {
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

    // ---- The key/value service. ----

    /// The last result for this client's request, if it was applied already (§8: "the state
    /// machine tracks the latest serial number processed for each client").
    fn applied_result(&self, client: u64, request_id: u64) -> Option<&(u64, OpResult)> {
        if self.bug(Bug::NoDeduplication) {
            return None; // BUG: every retry looks new.
        }
        self.s
            .kv
            .sessions
            .get(&client)
            .filter(|(applied, _)| *applied >= request_id)
    }

    fn on_client_request(&mut self, src: Id, command: Command) {
        if !self.s.is_leader() {
            let reply = ClientReply::NotLeader {
                leader: self.s.leader,
            };
            let request_id = command.request_id;
            self.out
                .send(src, Msg::ClientResponse { request_id, reply });
            return;
        }
        if let Some((applied, result)) = self.applied_result(command.client, command.request_id) {
            // An older request than the last applied one is a stale duplicate: ignore it.
            if *applied == command.request_id {
                let reply = ClientReply::Done(result.clone());
                let request_id = command.request_id;
                self.out
                    .send(src, Msg::ClientResponse { request_id, reply });
            }
            return;
        }
        // Already in our log in this term and not yet applied: it is answered when applied.
        let term = self.s.term;
        let unapplied = self.s.log.entries_from(self.s.last_applied + 1, usize::MAX);
        let pending = unapplied.iter().any(|e| {
            e.term == term
                && e.command.client == command.client
                && e.command.request_id == command.request_id
        });
        if pending {
            return;
        }
        // Figure 2, leaders: "If command received from client: append entry to local log".
        // Followers that were caught up get the entry now; the others already have an
        // AppendEntries in flight whose reply brings them the rest (or the reply to the next
        // heartbeat does), so a burst of requests does not multiply the messages per follower.
        let caught_up: Vec<u64> = match &self.s.role {
            Role::Leader { next_index, .. } => {
                let last = self.s.log.last_index();
                self.peers()
                    .into_iter()
                    .filter(|&p| next_index[p as usize] > last)
                    .collect()
            }
            _ => Vec::new(),
        };
        self.s.to_mut().log.push(Entry { term, command });
        self.persist = true;
        for peer in caught_up {
            self.replicate_to(peer);
        }
        self.advance_commit();
    }

    /// Figure 2, all servers: "If commitIndex > lastApplied: increment lastApplied, apply
    /// log[lastApplied] to state machine (§5.3)". The leader answers the client.
    fn apply_committed(&mut self) {
        while self.s.last_applied < self.s.commit_index {
            let index = self.s.last_applied + 1;
            let Some(entry) = self.s.log.get(index).cloned() else {
                break; // commitIndex beyond the log only happens with an injected bug.
            };
            self.s.to_mut().last_applied = index;
            let command = entry.command;
            let result = match self.applied_result(command.client, command.request_id) {
                Some((applied, result)) if *applied == command.request_id => Some(result.clone()),
                Some(_) => None,
                None => {
                    let kv = &mut self.s.to_mut().kv;
                    let result = kv.execute(&command.op);
                    kv.sessions
                        .insert(command.client, (command.request_id, result.clone()));
                    Some(result)
                }
            };
            if let (true, Some(result)) = (self.s.is_leader(), result) {
                let msg = Msg::ClientResponse {
                    request_id: command.request_id,
                    reply: ClientReply::Done(result),
                };
                self.send(command.client, msg);
            }
        }
        self.maybe_compact();
    }

    /// Log compaction (§7): once enough applied entries sit in the log, fold them into a snapshot.
    fn maybe_compact(&mut self) {
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

fn heartbeat_range(cfg: &ServerConfig) -> Range<Duration> {
    cfg.heartbeat_interval..cfg.heartbeat_interval + Duration::from_millis(1)
}

#[cfg(test)]
mod tests {
    //! Handler tests: a state and one message in, the exact new state and commands out.
    use super::*;
    use stateright::actor::Command as Cmd;

    fn server(bug: Option<Bug>) -> RaftServer {
        let mut cfg = ServerConfig::new(3);
        cfg.bug = bug;
        RaftServer::new(cfg)
    }

    fn entry(term: Term, value: &str) -> Entry {
        Entry {
            term,
            command: Command {
                client: 3,
                request_id: 1,
                op: Op::Put {
                    key: "x".into(),
                    value: value.into(),
                },
            },
        }
    }

    fn follower(term: Term, entries: Vec<Entry>) -> ServerState {
        let mut s = ServerState::restore(None);
        s.term = term;
        s.log.entries = entries;
        s
    }

    fn deliver(
        a: &RaftServer,
        s: &ServerState,
        from: usize,
        msg: Msg,
    ) -> (ServerState, Vec<String>) {
        let mut cow = Cow::Borrowed(s);
        let mut out = Out::new();
        a.on_msg(Id::from(0), &mut cow, Id::from(from), msg, &mut out);
        let cmds = out.iter().map(|c| format!("{c:?}")).collect();
        (cow.into_owned(), cmds)
    }

    /// AppendEntries(term, (prevLogIndex, prevLogTerm), entries, leaderCommit).
    fn append_entries(
        term: Term,
        (prev_log_index, prev_log_term): (LogIndex, Term),
        entries: Vec<Entry>,
        leader_commit: LogIndex,
    ) -> Msg {
        Msg::AppendEntries {
            term,
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
        }
    }

    fn send(to: usize, msg: Msg) -> String {
        format!(
            "{:?}",
            Cmd::<Msg, Timer, (), Storage>::Send(Id::from(to), msg)
        )
    }

    fn storage_of(s: &ServerState) -> String {
        format!(
            "{:?}",
            Cmd::<Msg, Timer, (), Storage>::Save(Storage {
                term: s.term,
                voted_for: s.voted_for,
                log: s.log.clone(),
                snapshot: s.snapshot.clone(),
            })
        )
    }

    #[test]
    fn higher_term_vote_request_is_saved_before_the_vote_is_sent() {
        // Figure 2: term and vote reach stable storage before the reply leaves.
        let a = server(None);
        let s = follower(1, vec![]);
        let (next, cmds) = deliver(
            &a,
            &s,
            1,
            Msg::RequestVote {
                term: 2,
                last_log_index: 0,
                last_log_term: 0,
            },
        );
        assert_eq!(next.term, 2);
        assert_eq!(next.voted_for, Some(1));
        assert_eq!(cmds[0], storage_of(&next));
        assert!(cmds[1].starts_with("SetTimer(Election"));
        let vote = Msg::Vote {
            term: 2,
            granted: true,
        };
        assert_eq!(cmds[2], send(1, vote));
        assert_eq!(cmds.len(), 3);
    }

    #[test]
    fn vote_refused_to_a_candidate_with_an_older_log() {
        // §5.4.1: last term 1 < our last term 2.
        let a = server(None);
        let s = follower(2, vec![entry(2, "a")]);
        let (next, cmds) = deliver(
            &a,
            &s,
            1,
            Msg::RequestVote {
                term: 3,
                last_log_index: 5,
                last_log_term: 1,
            },
        );
        assert_eq!(next.voted_for, None);
        assert_eq!(next.term, 3);
        assert!(cmds.last().unwrap().contains("granted: false"));
        // The bug grants it.
        let (next, _) = deliver(
            &server(Some(Bug::VoteWithoutLogCheck)),
            &s,
            1,
            Msg::RequestVote {
                term: 3,
                last_log_index: 5,
                last_log_term: 1,
            },
        );
        assert_eq!(next.voted_for, Some(1));
    }

    #[test]
    fn stale_append_entries_does_not_truncate_matching_entries() {
        // AppendEntries rule 3: delete only on a real conflict.
        let a = server(None);
        let s = follower(1, vec![entry(1, "a"), entry(1, "b")]);
        let stale = append_entries(1, (0, 0), vec![entry(1, "a")], 0);
        let (next, cmds) = deliver(&a, &s, 1, stale.clone());
        assert_eq!(next.log.entries.len(), 2);
        assert!(cmds.last().unwrap().contains("Matched { match_index: 1 }"));
        let (next, _) = deliver(&server(Some(Bug::TruncateOnEveryAppend)), &s, 1, stale);
        assert_eq!(next.log.entries.len(), 1);
    }

    #[test]
    fn conflicting_entry_is_replaced_and_commit_is_capped_at_last_new_entry() {
        // Rule 3 and rule 5: commit = min(leaderCommit, index of last new entry).
        let a = server(None);
        let s = follower(1, vec![entry(1, "a"), entry(1, "stale")]);
        let msg = append_entries(2, (0, 0), vec![entry(1, "a")], 2);
        let (next, _) = deliver(&a, &s, 1, msg.clone());
        assert_eq!(next.commit_index, 1);
        let (next, _) = deliver(&server(Some(Bug::CommitWithoutMin)), &s, 1, msg);
        assert_eq!(next.commit_index, 2);
    }

    #[test]
    fn heartbeat_carries_no_entries_and_the_reply_brings_them() {
        // §5.2: heartbeats are AppendEntries with no entries; a follower that is behind answers
        // with the index it matches, and that answer sends it what it lacks.
        let a = server(None);
        let mut s = follower(2, vec![entry(1, "a"), entry(2, "b")]);
        s.commit_index = 2;
        s.role = Role::Leader {
            next_index: vec![3, 2, 3],
            match_index: vec![2, 1, 2],
        };
        let mut cow = Cow::Borrowed(&s);
        let mut out = Out::new();
        a.on_timeout(Id::from(0), &mut cow, &Timer::Heartbeat, &mut out);
        let cmds: Vec<String> = out.iter().map(|c| format!("{c:?}")).collect();
        assert_eq!(cmds.len(), 3, "{cmds:?}");
        assert_eq!(cmds[0], send(1, append_entries(2, (1, 1), vec![], 2)));
        assert_eq!(cmds[1], send(2, append_entries(2, (2, 2), vec![], 2)));
        assert!(cmds[2].starts_with("SetTimer(Heartbeat"));

        let reply = Msg::AppendEntriesReply {
            term: 2,
            outcome: AppendOutcome::Matched { match_index: 1 },
        };
        let (_, cmds) = deliver(&a, &s, 1, reply);
        let catch_up = append_entries(2, (1, 1), vec![entry(2, "b")], 2);
        assert_eq!(cmds, vec![send(1, catch_up)]);
    }

    #[test]
    fn heartbeat_commit_is_capped_at_the_entry_it_vouches_for() {
        // Rule 5 on a heartbeat: prevLogIndex 0 vouches for nothing, so a stale entry at index 1
        // stays uncommitted whatever leaderCommit says.
        let s = follower(1, vec![entry(1, "stale")]);
        let heartbeat = append_entries(2, (0, 0), vec![], 1);
        let (next, _) = deliver(&server(None), &s, 1, heartbeat.clone());
        assert_eq!((next.commit_index, next.last_applied), (0, 0));
        let (next, _) = deliver(&server(Some(Bug::CommitWithoutMin)), &s, 1, heartbeat);
        assert_eq!((next.commit_index, next.last_applied), (1, 1));
    }

    #[test]
    fn conflict_hint_names_the_term_and_its_first_index() {
        let a = server(None);
        let s = follower(2, vec![entry(1, "a"), entry(2, "b"), entry(2, "c")]);
        let msg = append_entries(3, (3, 3), vec![], 0);
        let (_, cmds) = deliver(&a, &s, 1, msg);
        assert!(
            cmds.last()
                .unwrap()
                .contains("Conflict { term: Some(2), first_index: 2 }"),
            "{cmds:?}"
        );
    }

    #[test]
    fn install_snapshot_edge_cases() {
        // Figure 13: (base index, entries kept, commit index) after installing a snapshot
        // through `last_index` (term 1) on a follower with two term-1 entries.
        let install = |commit: LogIndex, last_index: LogIndex| {
            let mut s = follower(1, vec![entry(1, "a"), entry(1, "b")]);
            s.commit_index = commit;
            s.last_applied = commit;
            let snapshot = Snapshot {
                last_index,
                last_term: 1,
                state: KvStore::default(),
            };
            let msg = Msg::InstallSnapshot { term: 1, snapshot };
            let (next, cmds) = deliver(&server(None), &s, 1, msg);
            assert!(cmds.last().unwrap().contains("InstallSnapshotReply"));
            (
                next.log.base_index,
                next.log.entries.len(),
                next.commit_index,
            )
        };
        // Older than the commit index: nothing changes but the reply.
        assert_eq!(install(2, 1), (0, 2, 2));
        // Covers part of the log with a matching entry: the suffix is kept (rule 6).
        assert_eq!(install(0, 1), (1, 1, 1));
        // Beyond the log: the log is replaced (rule 7).
        assert_eq!(install(0, 5), (5, 0, 5));
    }

    #[test]
    fn leader_does_not_commit_an_earlier_term_entry_by_counting() {
        // §5.4.2, Figure 8.
        let mut s = follower(3, vec![entry(1, "a")]);
        s.role = Role::Leader {
            next_index: vec![2, 2, 2],
            match_index: vec![1, 0, 0],
        };
        let reply = Msg::AppendEntriesReply {
            term: 3,
            outcome: AppendOutcome::Matched { match_index: 1 },
        };
        let (next, _) = deliver(&server(None), &s, 1, reply.clone());
        assert_eq!(next.commit_index, 0);
        let (next, _) = deliver(&server(Some(Bug::CommitPreviousTermEntries)), &s, 1, reply);
        assert_eq!(next.commit_index, 1);
    }
}

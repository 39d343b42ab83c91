//! The Raft server as one deterministic stateright actor: no clock, no randomness, no I/O.
//! Every handler follows Figure 2 (and Figure 13 for snapshots) of the Raft paper; the comment at
//! each rule quotes the rule it implements. The same code is model-checked and run over UDP.
//!
//! A `Bug` in the configuration swaps exactly one rule for a classic mistake, at the line where the
//! correct rule lives, so the checker can show what each rule prevents.

pub use crate::protocol::bug::Bug;
use crate::protocol::log::Log;
use crate::protocol::types::*;
use recovery::Answer;
pub use recovery::Recovery;
use serde::{Deserialize, Serialize};
use stateright::actor::{Actor, Id, Out};
use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

/// What a server is given at start and never changes: cluster size, the bug to inject, compaction,
/// message size and timing.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerConfig {
    /// Cluster size; servers are ids 0..servers.
    pub servers: usize,
    /// The classic mistake to inject, or None to run the protocol as the paper gives it.
    pub bug: Option<Bug>,
    /// Snapshot once this many applied entries sit in the log (None: never compact).
    pub snapshot_after: Option<u64>,
    /// Cap on entries per AppendEntries (keeps a UDP datagram small).
    pub max_entries_per_append: usize,
    /// Range the election timeout is drawn from, randomized so split votes resolve (§5.2); only the
    /// UDP node waits for it.
    pub election_timeout: Range<Duration>,
    /// How often a leader sends heartbeats: well below the election timeout, so followers that hear
    /// from it do not start elections (§5.6).
    pub heartbeat_interval: Duration,
    /// Refuse writes that would grow the store's keys and values past this many bytes
    /// (`OpResult::NoSpace`); None: no quota. The models set none.
    pub max_db_bytes: Option<u64>,
    /// The most client sessions the deduplication table keeps (Raft thesis §6.3); beyond it the
    /// oldest session (lowest id: ids grow with the time a client starts) expires. None: no
    /// bound. Every server of a cluster must use the same bound: expiry is decided when an entry
    /// is applied, so replicas agree only if they apply the same rule.
    pub max_sessions: Option<usize>,
}

impl ServerConfig {
    /// The defaults for a cluster of `servers`: no bug, no compaction, 64 entries per
    /// AppendEntries, elections after 300-600 ms, heartbeats every 75 ms.
    pub fn new(servers: usize) -> Self {
        ServerConfig {
            servers,
            bug: None,
            snapshot_after: None,
            max_entries_per_append: 64,
            election_timeout: Duration::from_millis(300)..Duration::from_millis(600),
            heartbeat_interval: Duration::from_millis(75),
            max_db_bytes: None,
            max_sessions: None,
        }
    }

    fn majority(&self) -> usize {
        self.servers / 2 + 1
    }
}

/// What Figure 2 says is "updated on stable storage before responding to RPCs", plus the snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Storage {
    /// currentTerm: the latest term this server has seen (Figure 2).
    pub term: Term,
    /// votedFor: who got this server's vote in `term`; saved so a restart cannot vote twice (§5.2).
    pub voted_for: Option<u64>,
    /// log[]: the entries after the snapshot, with the snapshot boundary.
    pub log: Log,
    /// Shared, not copied, by every save that does not change it.
    pub snapshot: Option<Arc<Snapshot>>,
    /// Set when storage was found damaged (lost or cut), and kept until the server is repaired
    /// (`Recovery`): a restart in between recovers again rather than trusting what is left.
    #[serde(default)]
    pub recovering: bool,
    /// Set, with `recovering`, when the server holds nothing and cannot tell whether it ever
    /// held anything: an empty data directory is a new server's or a deleted one's. Unlike
    /// damage it detected, it may start as new when no peer holds anything (`Recovery`). Not
    /// kept on disk: a restart after any save recovers as damaged, which can only make it wait.
    #[serde(default)]
    pub maybe_new: bool,
}

/// Hashed as the derived hash would be, but `maybe_new` only when set: the states of models
/// without it hash (so fingerprint, and are explored) exactly as before it existed.
impl std::hash::Hash for Storage {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.term.hash(h);
        self.voted_for.hash(h);
        self.log.hash(h);
        self.snapshot.hash(h);
        self.recovering.hash(h);
        if self.maybe_new {
            self.maybe_new.hash(h);
        }
    }
}

impl Storage {
    /// What a server that lost everything restarts from: nothing, marked damaged.
    pub fn wiped() -> Self {
        Storage {
            term: 0,
            voted_for: None,
            log: Log::default(),
            snapshot: None,
            recovering: true,
            maybe_new: false,
        }
    }

    /// What a server starts from when its data directory is empty: nothing, and no knowledge of
    /// whether it ever held anything (`maybe_new`).
    pub fn unknown() -> Self {
        Storage {
            maybe_new: true,
            ..Storage::wiped()
        }
    }
}

/// The three roles of §5.1, each with the volatile state only it keeps (Figure 2).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Answers leaders and candidates; becomes a candidate if no leader is heard from in time.
    Follower,
    /// `votes` is a bit set of the servers that granted their vote in this term.
    Candidate {
        /// Bit `i` set: server `i` granted its vote; the candidate's own bit is set from the start.
        votes: u64,
    },
    /// Replicates its log and serves clients; its state is Figure 2's "volatile state on leaders",
    /// reinitialized after each election.
    Leader {
        /// nextIndex[]: per server, the next log index to send it (starts after the leader's last).
        next_index: Vec<LogIndex>,
        /// matchIndex[]: per server, the highest index known to be replicated on it (starts at 0).
        match_index: Vec<LogIndex>,
    },
}

/// A server's whole state: Figure 2's persistent and volatile state, the snapshot, and the
/// key/value state machine it applies committed entries to.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServerState {
    // Persistent state (Figure 2), restored from `Storage`.
    /// currentTerm: the latest term this server has seen (Figure 2), saved before it answers.
    pub term: Term,
    /// votedFor: the candidate that received this server's vote in the current term, or None.
    pub voted_for: Option<u64>,
    /// log[]: the entries after the snapshot boundary, with indices kept logical.
    pub log: Log,
    /// The latest snapshot (Figure 13), sent to followers that need compacted entries; shared, not
    /// copied, by every state and save that does not change it.
    pub snapshot: Option<Arc<Snapshot>>,
    // Volatile state.
    /// Follower, candidate or leader, with that role's volatile state.
    pub role: Role,
    /// The leader this server last heard from in its current term (for client redirects).
    pub leader: Option<u64>,
    /// commitIndex: index of the highest log entry known to be committed (Figure 2).
    pub commit_index: LogIndex,
    /// lastApplied: index of the highest log entry applied to `kv` (Figure 2).
    pub last_applied: LogIndex,
    /// The state machine: the key/value store with every entry through `last_applied` applied.
    pub kv: KvStore,
    /// Some while it recovers from damaged storage: it neither votes nor stands (`Recovery`).
    pub recovery: Option<Recovery>,
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
            recovering: false,
            maybe_new: false,
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
            // Damaged storage: it may have promised what it no longer remembers.
            recovery: storage.recovering.then(|| Recovery {
                floor: storage.term,
                maybe_new: storage.maybe_new,
                ..Recovery::default()
            }),
        }
    }

    /// Whether it leads its current term: only a leader accepts client commands.
    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader { .. })
    }

    /// `"follower"`, `"candidate"` or `"leader"`, for traces, reports and node status.
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
        let recovering = if self.recovery.is_some() {
            " recovering"
        } else {
            ""
        };
        write!(
            f,
            "{}{} t{} vote={} log={} commit={} applied={}",
            self.role_name(),
            recovering,
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
    /// The fixed configuration; everything that changes is in `ServerState`.
    pub cfg: ServerConfig,
}

impl RaftServer {
    /// The server actor for `cfg`; one value serves every server id of the cluster.
    pub fn new(cfg: ServerConfig) -> Self {
        RaftServer { cfg }
    }

    fn handler<'a, 'b>(&'a self, id: Id, s: &'a mut Cow<'b, ServerState>) -> Handler<'a, 'b> {
        Handler {
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
            Msg::RequestVoteReply { term, granted } => {
                (term, granted && matches!(s.role, Role::Candidate { .. }))
            }
            // The injected bug takes replies of any earlier term into matchIndex.
            Msg::AppendEntriesReply { .. } if self.cfg.bug == Some(Bug::AcceptStaleReplies) => {
                return false
            }
            Msg::AppendEntriesReply { term, .. } | Msg::InstallSnapshotReply { term, .. } => {
                (term, s.role != Role::Follower)
            }
            // Only a recovering server reads these (a new recovery asks again).
            Msg::RecoveryReply { .. } => return s.recovery.is_none(),
            _ => return false,
        };
        term < s.term || (term == s.term && !may_count)
    }
}

impl Actor for RaftServer {
    type Msg = Msg;
    type Timer = ServerTimer;
    type State = ServerState;
    type Storage = Storage;
    type Random = ();

    fn on_start(&self, id: Id, storage: &Option<Storage>, o: &mut Out<Self>) -> ServerState {
        let mut state = ServerState::restore(storage.as_ref());
        if self.cfg.bug == Some(Bug::RecoverAsNew) {
            state.recovery = None; // BUG: trusts what is left of damaged storage.
        }
        let mut cow = Cow::Owned(state);
        let mut step = self.handler(id, &mut cow);
        step.out
            .set_timer(ServerTimer::Election, self.cfg.election_timeout.clone());
        step.ask_peers();
        step.finish(o);
        cow.into_owned()
    }

    fn on_msg(&self, id: Id, state: &mut Cow<ServerState>, src: Id, msg: Msg, o: &mut Out<Self>) {
        let from = usize::from(src) as u64;
        // Only servers speak the server protocol, and the handlers index per-server arrays
        // (votes, nextIndex, matchIndex) by the sender. The real node drops such datagrams
        // before they get here (`unknown_sender`); this keeps every handler total regardless.
        if from >= self.cfg.servers as u64 && !matches!(msg, Msg::ClientRequest(_)) {
            return;
        }
        let mut step = self.handler(id, state);
        match msg {
            Msg::RequestVote {
                term,
                last_log_index,
                last_log_term,
            } => step.on_request_vote(from, term, last_log_index, last_log_term),
            Msg::RequestVoteReply { term, granted } => step.on_vote(from, term, granted),
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
            Msg::RecoveryQuery => step.on_recovery_query(from),
            Msg::RecoveryReply {
                term,
                recovering,
                leader_last,
                holds_entries,
                maybe_new,
            } => step.on_recovery_reply(
                from,
                term,
                Answer {
                    recovering,
                    leader_last,
                    holds_entries,
                    maybe_new,
                },
            ),
            // No server sends one to a server; over UDP any holder of the key can, and the
            // message is ignored (untrusted input, not an unreachable case).
            Msg::ClientResponse { .. } => {}
        }
        step.finish(o);
    }

    fn on_timeout(
        &self,
        id: Id,
        state: &mut Cow<ServerState>,
        timer: &ServerTimer,
        o: &mut Out<Self>,
    ) {
        let mut step = self.handler(id, state);
        match timer {
            ServerTimer::Election => step.on_election_timeout(),
            ServerTimer::Heartbeat => step.on_heartbeat(),
        }
        step.finish(o);
    }
}

/// One handler invocation: the state being changed, the commands it emits, and whether the
/// persistent state changed (then `finish` saves it *before* any message leaves).
struct Handler<'a, 'b> {
    cfg: &'a ServerConfig,
    me: u64,
    /// Copied on the first write only: a message that changes nothing costs no copy.
    s: &'a mut Cow<'b, ServerState>,
    out: Out<RaftServer>,
    persist: bool,
}

impl Handler<'_, '_> {
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
                recovering: self.s.recovery.is_some(),
                // Not kept, as on disk: a restart after a save recovers as damaged.
                maybe_new: false,
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
            if let Some(r) = &mut self.s.to_mut().recovery {
                // It matched the leader of the old term, not of this one.
                r.matched = None;
                r.target = None;
            }
            self.persist = true;
            if self.bug(Bug::NoStepDown) {
                return; // BUG: keeps its role in the new term.
            }
            self.become_follower();
        }
    }

    fn become_follower(&mut self) {
        if self.s.is_leader() {
            self.out.cancel_timer(ServerTimer::Heartbeat);
        }
        if self.s.role != Role::Follower {
            self.s.to_mut().role = Role::Follower;
            self.out
                .set_timer(ServerTimer::Election, self.cfg.election_timeout.clone());
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
            .set_timer(ServerTimer::Election, self.cfg.election_timeout.clone());
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
        self.out.cancel_timer(ServerTimer::Election);
        self.out
            .set_timer(ServerTimer::Heartbeat, heartbeat_range(self.cfg));
        self.replicate_to_all();
    }
}

fn heartbeat_range(cfg: &ServerConfig) -> Range<Duration> {
    cfg.heartbeat_interval..cfg.heartbeat_interval + Duration::from_millis(1)
}

mod election;
mod recovery;
mod replication;
mod service;
mod snapshot;
#[cfg(test)]
mod tests;

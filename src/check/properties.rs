//! The properties checked, named as in the Raft paper (Figure 3), plus monotonicity invariants,
//! client linearizability, "sometimes" reachability checks that prove the model is not vacuous,
//! and one liveness property.
//!
//! Properties that are about history (who was ever leader, what was ever committed, how a log
//! changed within a step) read ghost state that the model records; the protocol never reads it.

use crate::check::liveness::Kind;
use crate::model::ghost::{Ghost, COMMIT_MONOTONIC, LEADER_APPEND_ONLY, STATE_MACHINE_SAFETY};
use crate::model::{RaftModel, SystemState};
use crate::protocol::log::Log;
use crate::protocol::server::ServerState;
use crate::protocol::types::{LogIndex, Term};
use crate::protocol::view::ServerView;
use stateright::{Expectation, Property};

fn up(state: &SystemState) -> impl Iterator<Item = (usize, &ServerState)> {
    state
        .servers
        .iter()
        .enumerate()
        .filter(|(i, _)| !state.down[*i])
        .map(|(i, s)| (i, &**s))
}

/// Election Safety: at most one leader can be elected in a given term (§5.2).
fn election_safety(_: &RaftModel, state: &SystemState) -> bool {
    state.ghost.leaders.windows(2).all(|w| w[0].0 != w[1].0)
}

/// Leader Append-Only: a leader never overwrites or deletes entries in its log (§5.3).
fn leader_append_only(_: &RaftModel, state: &SystemState) -> bool {
    state.ghost.violations & LEADER_APPEND_ONLY == 0
}

/// Log Matching: if two logs contain an entry with the same index and term, the logs are
/// identical in all entries up through that index (§5.3). Compared where both logs hold entries.
fn log_matching(_: &RaftModel, state: &SystemState) -> bool {
    let servers = &state.servers;
    servers.iter().enumerate().all(|(a, x)| {
        servers[a + 1..]
            .iter()
            .all(|y| log_mismatch(x.log(), y.log()).is_none())
    })
}

/// Where two logs break Log Matching: the highest index `top` where they hold entries of the
/// same term, and the first index at or below it where their entries differ. Shared with
/// `check::explain`, which names the servers and entries.
pub fn log_mismatch(x: &Log, y: &Log) -> Option<(LogIndex, LogIndex)> {
    let from = x.base_index.max(y.base_index) + 1;
    let to = x.last_index().min(y.last_index());
    let top = (from..=to).rev().find(|&i| x.term_at(i) == y.term_at(i))?;
    let differ = x.first_difference(y, from, top)?;
    Some((top, differ))
}

/// Whether `s`'s log holds every entry committed in a term before `before` (entries folded into
/// its snapshot count as held).
fn holds_committed(ghost: &Ghost, s: &ServerState, before: Term) -> bool {
    ghost
        .committed
        .iter()
        .filter(|(_, (_, term))| *term < before)
        .all(|(&idx, (entry, _))| idx <= s.log().base_index || s.log().get(idx) == Some(entry))
}

/// Leader Completeness: if an entry is committed in a term, it is present in the logs of the
/// leaders of all higher terms (§5.4).
fn leader_completeness(_: &RaftModel, state: &SystemState) -> bool {
    up(state)
        .filter(|(_, s)| s.is_leader())
        .all(|(_, s)| holds_committed(&state.ghost, s, s.term()))
}

/// Leader Completeness before the fact, from §5.4.3's proof: a committed entry is on a majority,
/// and each of those servers refuses its vote to a candidate whose log lacks it. So a server
/// whose log is at least as up-to-date (§5.4.1) as the logs of a majority, itself included,
/// could win the next election and must hold every committed entry. Down servers count: their
/// logs are on disk. This fails at the step that commits wrongly, elections before a leader
/// overwrites the entry (Figure 8).
fn electable_logs_hold_committed(_: &RaftModel, state: &SystemState) -> bool {
    let majority = state.servers.len() / 2 + 1;
    let freshness = |s: &ServerState| (s.log().last_term(), s.log().last_index());
    // A recovering server neither votes nor stands (`Recovery`); a down one whose storage was
    // damaged restarts recovering.
    let votes = |i: usize| match state.down[i] {
        true => state.storage[i].as_ref().is_none_or(|st| !st.recovering),
        false => state.servers[i].recovery.is_none(),
    };
    state.servers.iter().enumerate().all(|(i, s)| {
        let outvotes = (state.servers.iter().enumerate())
            .filter(|&(v, sv)| v == i || (votes(v) && freshness(sv) <= freshness(s)))
            .count();
        !votes(i) || outvotes < majority || holds_committed(&state.ghost, s, Term::MAX)
    })
}

/// State Machine Safety: if a server has applied an entry at an index, no other server ever
/// applies a different entry for that index (§5.4.3).
fn state_machine_safety(_: &RaftModel, state: &SystemState) -> bool {
    state.ghost.violations & STATE_MACHINE_SAFETY == 0
}

fn commit_never_decreases(_: &RaftModel, state: &SystemState) -> bool {
    state.ghost.violations & COMMIT_MONOTONIC == 0
}

fn applied_le_commit_le_last(_: &RaftModel, state: &SystemState) -> bool {
    up(state).all(|(_, s)| {
        s.last_applied() <= s.commit_index() && s.commit_index() <= s.log().last_index()
    })
}

fn linearizable(_: &RaftModel, state: &SystemState) -> bool {
    state.ghost.linearizable
}

fn leader_elected(_: &RaftModel, state: &SystemState) -> bool {
    !state.ghost.leaders.is_empty()
}

fn entry_committed(_: &RaftModel, state: &SystemState) -> bool {
    !state.ghost.committed.is_empty()
}

fn get_returns_written_value(_: &RaftModel, state: &SystemState) -> bool {
    state.ghost.read_a_write
}

/// Figure 3's Election Safety: at most one leader is elected in a term (§5.2). Property names are
/// the keys of reports and suites.
pub const ELECTION_SAFETY: &str = "Election Safety";
/// Figure 3's Leader Append-Only: a leader never overwrites or deletes entries in its log (§5.3).
pub const LEADER_APPEND_ONLY_NAME: &str = "Leader Append-Only";
/// Figure 3's Log Matching: two logs with an entry of the same index and term agree up to it
/// (§5.3).
pub const LOG_MATCHING: &str = "Log Matching";
/// Figure 3's Leader Completeness: a leader holds every entry committed in an earlier term (§5.4).
pub const LEADER_COMPLETENESS: &str = "Leader Completeness";
/// Leader Completeness before any election: a server that could win one holds every committed
/// entry, so a wrong commit fails at once, not terms later (Figure 8).
pub const ELECTABLE_LOGS_HOLD_COMMITTED: &str = "electable logs hold every committed entry";
/// Figure 3's State Machine Safety: no two servers apply different entries at an index (§5.4.3).
pub const STATE_MACHINE_SAFETY_NAME: &str = "State Machine Safety";
/// A server's commitIndex never goes back (a restart, which starts it over, excepted).
pub const COMMIT_NEVER_DECREASES: &str = "commit index never decreases";
/// Every running server applies only committed entries it holds: lastApplied <= commitIndex <= its
/// last log index.
pub const APPLIED_LE_COMMIT: &str = "applied <= commit <= last log index";
/// The clients' operations, as invoked and answered, are linearizable against a plain key/value
/// map: retries and leader changes neither lose nor repeat a write (§8).
pub const LINEARIZABLE: &str = "client operations are linearizable";
/// Reachability: some run elects a leader; without it, a model where nothing happens would hold.
pub const SOME_LEADER: &str = "a leader is elected";
/// Reachability: some run commits an entry, so the safety properties about commits are not vacuous.
pub const SOME_COMMIT: &str = "an entry is committed";
/// Reachability: some client Get returns a written value (a Put's or an Append's).
pub const SOME_READ: &str = "a Get returns a value a Put wrote";
/// Liveness: every run that ends within the bounds has elected a leader, under the model's timing
/// assumptions (`[timing]`).
pub const EVENTUALLY_LEADER: &str = "a leader is eventually elected";

/// Every property the checker checks, in report order: Figure 3's, the invariants, linearizability,
/// reachability and liveness. The model is handed these (`with_properties`).
pub fn all() -> Vec<Property<RaftModel>> {
    vec![
        Property::always(ELECTION_SAFETY, election_safety),
        Property::always(LEADER_APPEND_ONLY_NAME, leader_append_only),
        Property::always(LOG_MATCHING, log_matching),
        Property::always(LEADER_COMPLETENESS, leader_completeness),
        Property::always(ELECTABLE_LOGS_HOLD_COMMITTED, electable_logs_hold_committed),
        Property::always(STATE_MACHINE_SAFETY_NAME, state_machine_safety),
        Property::always(COMMIT_NEVER_DECREASES, commit_never_decreases),
        Property::always(APPLIED_LE_COMMIT, applied_le_commit_le_last),
        Property::always(LINEARIZABLE, linearizable),
        Property::sometimes(SOME_LEADER, leader_elected),
        Property::sometimes(SOME_COMMIT, entry_committed),
        Property::sometimes(SOME_READ, get_returns_written_value),
    ]
}

/// A liveness property: its goal, and which runs must reach it (`liveness::Kind`). Checked on
/// the explored graph under the model's fairness (`check::liveness`, `check::fairness`).
pub struct LivenessProperty {
    /// Its name in reports and suites.
    pub name: &'static str,
    /// `Eventually`: every fair run reaches the goal; `AlwaysEventually`: every fair run
    /// reaches it again from every state (a leads-to).
    pub kind: Kind,
    /// The goal, as a condition on a state.
    pub goal: fn(&RaftModel, &SystemState) -> bool,
    /// Whether only periodic heartbeats guarantee it: followers learn a commit index from
    /// AppendEntries, and without heartbeats (`[timing] heartbeats = false`) none may come.
    /// Such a model makes no claim about it, and it is not checked there.
    pub needs_heartbeats: bool,
}

/// Every client operation eventually completes.
pub const EVENTUALLY_CLIENTS_DONE: &str = "every client operation eventually completes";
/// What a live leader has committed is eventually applied by every live server.
pub const EVENTUALLY_APPLIED: &str =
    "every entry a live leader committed is eventually applied by every live server";
/// An entry accepted by a leader that stays leader is eventually committed.
pub const EVENTUALLY_COMMITTED: &str =
    "an entry accepted by a leader that stays leader is eventually committed";

/// Every server whose storage was damaged is eventually repaired from its peers (`Recovery`).
pub const EVENTUALLY_REPAIRED: &str = "every damaged server is eventually repaired";

/// The liveness properties, in report order (after `all()`'s).
pub fn liveness() -> Vec<LivenessProperty> {
    vec![
        LivenessProperty {
            name: EVENTUALLY_LEADER,
            kind: Kind::Eventually,
            goal: leader_elected,
            needs_heartbeats: false,
        },
        LivenessProperty {
            name: EVENTUALLY_CLIENTS_DONE,
            kind: Kind::Eventually,
            goal: clients_done,
            needs_heartbeats: false,
        },
        LivenessProperty {
            name: EVENTUALLY_APPLIED,
            kind: Kind::AlwaysEventually,
            goal: committed_entries_applied,
            needs_heartbeats: true,
        },
        LivenessProperty {
            name: EVENTUALLY_COMMITTED,
            kind: Kind::AlwaysEventually,
            goal: leaders_entries_committed,
            needs_heartbeats: false,
        },
        LivenessProperty {
            name: EVENTUALLY_REPAIRED,
            kind: Kind::AlwaysEventually,
            goal: no_server_recovering,
            needs_heartbeats: false,
        },
    ]
}

/// No live server is recovering from damaged storage.
fn no_server_recovering(_: &RaftModel, state: &SystemState) -> bool {
    up(state).all(|(_, s)| s.recovery.is_none())
}

/// Every client has run all its operations. Monotone: a client never takes an operation back,
/// so the `eventually` check's stem through goal-missing states is a real run.
fn clients_done(m: &RaftModel, state: &SystemState) -> bool {
    // An expired session's last answer is final: it runs nothing more (Raft thesis §6.3).
    (0..state.clients.len()).all(|c| {
        let client = &state.clients[c];
        client.next_op() >= m.clients[c].cfg.ops.len() || client.expired()
    })
}

/// Every live server has applied everything a live leader has committed (a snapshot counts as
/// applied). Why not every entry ever seen committed: a leader learns that an earlier term's
/// entry is committed only by committing one of its own term (§5.4.2), so without a new command
/// (or the no-op entry of §8, which this server does not append) a follower may never learn it.
fn committed_entries_applied(_: &RaftModel, state: &SystemState) -> bool {
    let leaders = up(state).filter(|(_, s)| s.is_leader());
    let Some(commit) = leaders.map(|(_, s)| s.commit_index()).max() else {
        return true;
    };
    up(state).all(|(_, s)| s.last_applied() >= commit)
}

/// Every live leader has committed every entry it accepted in its own term.
fn leaders_entries_committed(_: &RaftModel, state: &SystemState) -> bool {
    up(state).filter(|(_, s)| s.is_leader()).all(|(_, s)| {
        s.log()
            .last_index_of_term(s.term())
            .is_none_or(|own| s.commit_index() >= own)
    })
}

/// The name of every property the checker knows, safety and reachability first, then liveness:
/// what `--property` and suites may name.
pub fn names() -> Vec<&'static str> {
    let safety = all().into_iter().map(|p| p.name);
    safety
        .chain(liveness().into_iter().map(|p| p.name))
        .collect()
}

/// The kind a liveness property reports (`kind` in JSON).
pub fn liveness_kind(kind: Kind) -> &'static str {
    match kind {
        Kind::Eventually => "eventually",
        Kind::AlwaysEventually => "leads_to",
    }
}

/// `always`, `sometimes` or `eventually`: the property's `kind` in reports.
pub fn kind(expectation: &Expectation) -> &'static str {
    match expectation {
        Expectation::Always => "always",
        Expectation::Sometimes => "sometimes",
        Expectation::Eventually => "eventually",
    }
}

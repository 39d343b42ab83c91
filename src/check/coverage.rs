//! What a search exercised: how many of the transitions it took won an election, changed the
//! leader, crashed or restarted a server, dropped a message, took or installed a snapshot,
//! retried a client request, advanced a commit index or completed a client operation.
//!
//! A verdict of `holds` says nothing about a path the search never took: a model written to
//! exercise snapshots that never takes one proves nothing about them. Every run prints these
//! counts so that shows (the swarm's walks and the exhaustive searches alike).
//!
//! The searches are generic over the model; they see an [`Observer`], two functions this file
//! gives for the Raft model: one reads the action before it is taken (what kind of step, at
//! which actor: a cheap tag, so the action need not be cloned), the other compares the states
//! before and after it.

use crate::model::{Action, RaftModel, SystemState};
use crate::protocol::types::{Msg, Timer};
use crate::protocol::view::ServerView as _;
use serde::Serialize;
use stateright::Model;

/// Counts of transitions taken by a search, one per behaviour: `coverage` in `check --json`.
///
/// BFS and DFS count every transition of the graph they explored (a state reached along two
/// paths counts twice); the swarm counts every step of every walk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Coverage {
    /// Transitions in which a server became leader.
    pub elections_won: u64,
    /// Elections won by a server other than the leader of the latest earlier term.
    pub leader_changes: u64,
    /// Servers crashed.
    pub crashes: u64,
    /// Crashed servers restarted from storage.
    pub restarts: u64,
    /// Messages the network lost.
    pub drops: u64,
    /// Servers that compacted their own log into a snapshot.
    pub snapshots_taken: u64,
    /// Servers that installed a snapshot a leader sent (Figure 13).
    pub snapshots_installed: u64,
    /// Client retry timers that fired with an operation still open.
    pub client_retries: u64,
    /// Transitions in which a server's commit index moved forward.
    pub commit_advances: u64,
    /// Client operations that completed (the client got its result).
    pub operations_completed: u64,
    /// Client sessions told that their session expired (Raft thesis §6.3, `[sessions]`).
    pub sessions_expired: u64,
    /// Crashed servers whose storage was damaged (`[faults] max_damage`).
    pub storage_damaged: u64,
    /// Recovering servers repaired from their peers: they vote again (`Recovery`).
    pub recoveries_completed: u64,
}

impl Coverage {
    /// Adds another part's counts (another thread's, another walk's) to these.
    pub fn add(&mut self, other: &Coverage) {
        for (mine, theirs) in self.counts_mut().into_iter().zip(other.counts()) {
            *mine += theirs;
        }
    }

    /// Each behaviour's name (as in JSON) and count, in declaration order.
    pub fn named(&self) -> [(&'static str, u64); 13] {
        let [a, b, c, d, e, f, g, h, i, j, k, l, m] = self.counts();
        [
            ("elections_won", a),
            ("leader_changes", b),
            ("crashes", c),
            ("restarts", d),
            ("drops", e),
            ("snapshots_taken", f),
            ("snapshots_installed", g),
            ("client_retries", h),
            ("commit_advances", i),
            ("operations_completed", j),
            ("sessions_expired", k),
            ("storage_damaged", l),
            ("recoveries_completed", m),
        ]
    }

    /// One line for people: `12 elections won, 3 leader changes, …` (every behaviour, zeros
    /// included: a zero is what says a path was never taken).
    pub fn summary(&self) -> String {
        let words = self
            .named()
            .iter()
            .map(|(name, n)| format!("{n} {}", name.replace('_', " ")))
            .collect::<Vec<_>>();
        words.join(", ")
    }

    fn counts(&self) -> [u64; 13] {
        [
            self.elections_won,
            self.leader_changes,
            self.crashes,
            self.restarts,
            self.drops,
            self.snapshots_taken,
            self.snapshots_installed,
            self.client_retries,
            self.commit_advances,
            self.operations_completed,
            self.sessions_expired,
            self.storage_damaged,
            self.recoveries_completed,
        ]
    }

    fn counts_mut(&mut self) -> [&mut u64; 13] {
        [
            &mut self.elections_won,
            &mut self.leader_changes,
            &mut self.crashes,
            &mut self.restarts,
            &mut self.drops,
            &mut self.snapshots_taken,
            &mut self.snapshots_installed,
            &mut self.client_retries,
            &mut self.commit_advances,
            &mut self.operations_completed,
            &mut self.sessions_expired,
            &mut self.storage_damaged,
            &mut self.recoveries_completed,
        ]
    }
}

/// What kind of step an action is, and at which actor: read before the action is consumed.
pub type Tag = u16;

/// Adds what a transition with a tag, from one state to the next, exercised.
pub type Count<S> = dyn Fn(Tag, &S, &S, &mut Coverage) + Sync;

/// How a search learns what its transitions exercised (see the module doc).
pub struct Observer<'a, M: Model> {
    /// The action's tag, read from the state it is taken in.
    pub tag: &'a (dyn Fn(&M::State, &M::Action) -> Tag + Sync),
    /// Adds what the transition tagged so, from `before` to `after`, exercised.
    pub count: &'a Count<M::State>,
}

/// Observes `before --action--> after` with an optional observer: the one call every search
/// makes, so that a search without one pays a branch and nothing else.
pub fn observe<M: Model>(
    observer: Option<&Observer<M>>,
    tag: Tag,
    before: &M::State,
    after: &M::State,
    into: &mut Coverage,
) {
    if let Some(o) = observer {
        (o.count)(tag, before, after, into);
    }
}

/// The tag of `action` for an optional observer (0 without one).
pub fn tag_of<M: Model>(
    observer: Option<&Observer<M>>,
    state: &M::State,
    action: &M::Action,
) -> Tag {
    observer.map_or(0, |o| (o.tag)(state, action))
}

const DROP: Tag = 1 << 8;
const CRASH: Tag = 2 << 8;
const RESTART: Tag = 3 << 8;
const CLIENT_RETRY: Tag = 4 << 8;
/// A step of the actor in the low byte: a delivery, a timer or a proposal.
const STEP: Tag = 5 << 8;
/// A delivery of InstallSnapshot to the server in the low byte.
const INSTALL: Tag = 6 << 8;
const DAMAGE: Tag = 7 << 8;

/// The Raft model's tag of an action (see [`Observer::tag`]).
pub fn raft_tag(_: &SystemState, action: &Action) -> Tag {
    match action {
        Action::Drop(_) => DROP,
        Action::Crash(i) => CRASH | Tag::from(*i),
        Action::Restart(i) => RESTART | Tag::from(*i),
        Action::Damage(i, _) => DAMAGE | Tag::from(*i),
        Action::Timeout(i, Timer::ClientRetry) => CLIENT_RETRY | Tag::from(*i),
        Action::Deliver(e) if matches!(*e.msg, Msg::InstallSnapshot { .. }) => {
            INSTALL | Tag::from(e.dst)
        }
        Action::Deliver(e) => STEP | Tag::from(e.dst),
        Action::Timeout(i, _) | Action::Propose(i, _) | Action::Request(i, _) => {
            STEP | Tag::from(*i)
        }
    }
}

/// The Raft model's count of one transition (see [`Observer::count`]).
pub fn raft_count(tag: Tag, before: &SystemState, after: &SystemState, into: &mut Coverage) {
    let actor = usize::from(tag & 0xff);
    match tag & 0xff00 {
        DROP => into.drops += 1,
        CRASH => into.crashes += 1,
        RESTART => into.restarts += 1,
        DAMAGE => into.storage_damaged += 1,
        CLIENT_RETRY => into.client_retries += 1,
        STEP | INSTALL if actor >= before.servers.len() => {
            let client = actor - before.servers.len();
            let done = |s: &SystemState| s.clients.get(client).map_or(0, |c| c.results.len());
            // An answer "session expired" ends the session without completing its operation.
            let expired = |s: &SystemState| s.clients.get(client).is_some_and(|c| c.expired());
            let newly_expired = u64::from(expired(after) && !expired(before));
            let answered = done(after).saturating_sub(done(before)) as u64;
            into.operations_completed += answered - newly_expired.min(answered);
            into.sessions_expired += newly_expired;
        }
        kind @ (STEP | INSTALL) => server_step(kind == INSTALL, actor, before, after, into),
        _ => {}
    }
}

/// What one server's step exercised: an election won (and whether the leader changed), a
/// commit, a snapshot taken or installed.
fn server_step(
    install: bool,
    i: usize,
    before: &SystemState,
    after: &SystemState,
    into: &mut Coverage,
) {
    let (b, a) = (&*before.servers[i], &*after.servers[i]);
    if a.is_leader() && !b.is_leader() {
        into.elections_won += 1;
        let previous = before
            .ghost
            .leaders
            .iter()
            .filter(|(t, _)| *t < a.term())
            .max();
        if previous.is_some_and(|(_, leader)| *leader != i) {
            into.leader_changes += 1;
        }
    }
    if a.commit_index() > b.commit_index() {
        into.commit_advances += 1;
    }
    if a.recovery.is_none() && b.recovery.is_some() {
        into.recoveries_completed += 1;
    }
    if a.log().base_index > b.log().base_index {
        if install {
            into.snapshots_installed += 1;
        } else {
            into.snapshots_taken += 1;
        }
    }
}

/// The Raft model's observer.
pub fn raft_observer() -> Observer<'static, RaftModel> {
    Observer {
        tag: &raft_tag,
        count: &raft_count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adding_sums_every_count_and_the_summary_names_zeros() {
        let mut a = Coverage {
            elections_won: 2,
            drops: 5,
            ..Coverage::default()
        };
        let b = Coverage {
            elections_won: 1,
            operations_completed: 4,
            ..Coverage::default()
        };
        a.add(&b);
        assert_eq!(a.elections_won, 3);
        assert_eq!(a.drops, 5);
        assert_eq!(a.operations_completed, 4);
        let line = a.summary();
        assert!(
            line.starts_with("3 elections won, 0 leader changes, 0 crashes"),
            "{line}"
        );
        assert!(
            line.ends_with(
                "4 operations completed, 0 sessions expired, 0 storage damaged, \
                 0 recoveries completed"
            ),
            "{line}"
        );
    }
}

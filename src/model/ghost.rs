//! Ghost history: what the properties need to know about the past of a run (who was ever
//! leader, what was ever committed, the client history), recorded by the model at each step.
//! The protocol never reads it; it only makes properties about history checkable on a state.

use crate::model::shared::Shared;
use crate::protocol::server::ServerState;
use crate::protocol::types::{Entry, KvStore, LogIndex, Op, OpResult, Term};
use crate::protocol::view::ServerView;
use stateright::semantics::{ConsistencyTester, LinearizabilityTester, SequentialSpec};
use std::collections::BTreeMap;

/// The sequential specification clients are checked against: a plain key/value map.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct KvSpec(KvStore);

impl SequentialSpec for KvSpec {
    type Op = Op;
    type Ret = OpResult;
    fn invoke(&mut self, op: &Op) -> OpResult {
        self.0.execute(op)
    }
}

/// Transition invariants that a state alone cannot show; set when a step breaks them.
/// This bit: a leader overwrote or deleted an entry of its own log in its term (Figure 3).
pub const LEADER_APPEND_ONLY: u8 = 1;
/// Bit set when a server's commitIndex went backwards without a restart.
pub const COMMIT_MONOTONIC: u8 = 2;
/// Bit set when a server committed, at some index, another entry than the one first committed there
/// (State Machine Safety, Figure 3).
pub const STATE_MACHINE_SAFETY: u8 = 4;

/// The ghost history each state carries: the facts about its run's past that the history properties
/// (Figure 3, linearizability) check, updated by the model at each step.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ghost {
    /// Every (term, server) that was ever leader: Election Safety.
    pub leaders: Vec<(Term, usize)>,
    /// The first entry seen committed at each index and the term in which it was seen.
    pub committed: BTreeMap<LogIndex, (Entry, Term)>,
    /// The transition invariants some step broke, as bits (`LEADER_APPEND_ONLY`...); never cleared.
    pub violations: u8,
    /// The clients' invocations and returns, for stateright's linearizability tester (`KvSpec`).
    pub history: LinearizabilityTester<u64, KvSpec>,
    /// False once the client history has no linearization: the linearizability property reads it.
    pub linearizable: bool,
    /// A Get returned a value some Put or Append wrote.
    pub read_a_write: bool,
}

impl Default for Ghost {
    fn default() -> Self {
        Ghost {
            leaders: Vec::new(),
            committed: BTreeMap::new(),
            violations: 0,
            history: LinearizabilityTester::new(KvSpec::default()),
            linearizable: true,
            read_a_write: false,
        }
    }
}

impl Ghost {
    /// Records what one server step did. `old` is None when the server just restarted (its
    /// volatile state, such as commitIndex, legitimately starts over). States share their
    /// history: it is copied only when this step adds to it.
    pub fn observe_server(
        ghost: &mut Shared<Ghost>,
        i: usize,
        old: Option<&ServerState>,
        new: &ServerState,
    ) {
        let elected = new.is_leader() && ghost.leaders.binary_search(&(new.term(), i)).is_err();
        let mut violated = 0;
        let mut committed = Vec::new();
        if let Some(old) = old {
            // Leader Append-Only: "a leader never overwrites or deletes entries in its log".
            if old.is_leader() && new.is_leader() && old.term() == new.term() {
                let kept = (new.log().base_index + 1..=old.log().last_index()).all(|idx| {
                    old.log().get(idx).is_none() || old.log().get(idx) == new.log().get(idx)
                });
                if !kept {
                    violated |= LEADER_APPEND_ONLY;
                }
            }
            if new.commit_index() < old.commit_index() {
                violated |= COMMIT_MONOTONIC;
            }
            // State Machine Safety: no two servers commit (and so apply) different entries at
            // an index.
            let new_log = new.log();
            // The old log still holds what this step folded into a snapshot when the snapshot
            // ends where the old log has the same entry (a compaction of its own, or an
            // InstallSnapshot that keeps the log, Figure 13 step 6). A snapshot installed over a
            // log that differs there replaced it: the old entries are not what was committed.
            let old_is_prefix = old.log().term_at(new_log.base_index) == Some(new_log.base_term);
            for idx in old.commit_index() + 1..=new.commit_index() {
                let kept = || old_is_prefix.then(|| old.log().get(idx)).flatten();
                let Some(entry) = new_log.get(idx).or_else(kept) else {
                    continue; // Arrived inside an installed snapshot.
                };
                match ghost.committed.get(&idx) {
                    Some((first, _)) if first != entry => violated |= STATE_MACHINE_SAFETY,
                    Some(_) => {}
                    None => committed.push((idx, entry.clone())),
                }
            }
        }
        if elected || !committed.is_empty() || ghost.violations | violated != ghost.violations {
            ghost.update(|g| {
                if elected {
                    g.leaders.push((new.term(), i));
                    g.leaders.sort();
                }
                for (idx, entry) in committed {
                    g.committed.insert(idx, (entry, new.term()));
                }
                g.violations |= violated;
            });
        }
    }

    /// Client `client` starts `op` (None: it has none left); records the invocation in `history`.
    pub fn client_invoked(&mut self, client: u64, op: Option<&Op>) {
        if let Some(op) = op {
            if self.history.on_invoke(client, op.clone()).is_err() {
                self.linearizable = false;
            }
        }
    }

    /// A client got the answer to its current operation and moved on to `next`.
    pub fn client_returned(&mut self, client: u64, result: OpResult, next: Option<&Op>) {
        if result == OpResult::SessionExpired {
            // The servers no longer know whether it happened: it stays in flight (the tester may
            // linearize it or not), and the session runs nothing more.
            return;
        }
        if matches!(result, OpResult::Value(Some(_))) {
            self.read_a_write = true;
        }
        if self.history.on_return(client, result).is_err() {
            self.linearizable = false;
        }
        if self.linearizable {
            self.linearizable = self.history.serialized_history().is_some();
        }
        self.client_invoked(client, next);
    }
}

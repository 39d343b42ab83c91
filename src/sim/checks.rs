//! The model checker's own `always` properties, checked on the sequence of cluster states a
//! simulated run goes through: the simulator builds the model's system state from its nodes and
//! records history in the model's ghost (`Ghost::observe_server`), then evaluates the very
//! property functions `check` uses. Client linearizability is left to the per-key checker, which
//! handles histories of thousands of operations.

use crate::check::{explain, properties};
use crate::model::ghost::Ghost;
use crate::model::shared::Shared;
use crate::model::{spec, RaftModel, SystemState};
use crate::protocol::log::Log;
use crate::protocol::server::ServerState;
use stateright::{Expectation, Property};
use std::path::Path;

/// The cluster as the model's properties see it, with the run's ghost history.
pub struct ClusterChecks {
    model: RaftModel,
    state: SystemState,
    properties: Vec<Property<RaftModel>>,
    /// Each server's log as last observed, before sharing (see `observe`).
    observed: Vec<Log>,
}

impl ClusterChecks {
    /// Checks for a cluster of `servers` servers (1..=7, as models allow).
    pub fn new(servers: usize) -> Result<ClusterChecks, String> {
        let text = format!("servers = {servers}\n[bounds]\nmax_term = 20\nmax_log_len = 20\n");
        let cfg = spec::parse("sim", Path::new("sim"), &text).map_err(|e| e.to_string())?;
        let model = RaftModel::new(cfg);
        let state = model.fresh_state();
        let properties = properties::all()
            .into_iter()
            .filter(|p| matches!(p.expectation, Expectation::Always))
            .filter(|p| p.name != properties::LINEARIZABLE)
            .collect();
        Ok(ClusterChecks {
            observed: vec![Log::default(); servers],
            model,
            state,
            properties,
        })
    }

    /// Records server `i`'s new state after a round (`restarted`: its first after a restart,
    /// whose volatile state legitimately starts over).
    pub fn observe(&mut self, i: usize, new: &ServerState, restarted: bool) {
        // A round may run many handlers; the ghost reads the old log only through a snapshot
        // that agrees with it, so a snapshot that replaced a conflicting suffix is not misread.
        let old = (!restarted).then(|| self.state.servers[i].clone());
        let new = self.shared(i, new);
        Ghost::observe_server(&mut self.state.ghost, i, old.as_deref(), &new);
        self.state.servers[i] = Shared::new(new);
        self.state.down[i] = false;
    }

    /// A copy of `new` whose log shares, chunk by chunk, what the other servers' logs hold
    /// alike. The servers decode the entries they receive, so equal entries are different
    /// allocations, and the properties compared every log with every other entry by entry at
    /// each check; shared chunks compare by pointer. Chunks unchanged since the last check keep
    /// the sharing they had, so a check compares contents only where a log changed.
    fn shared(&mut self, i: usize, new: &ServerState) -> ServerState {
        let mut copy = new.clone();
        copy.log
            .carry_sharing(&self.observed[i], &self.state.servers[i].log);
        for (j, other) in self.state.servers.iter().enumerate() {
            if j != i {
                copy.log.share_with(&other.log);
            }
        }
        self.observed[i] = new.log.clone();
        copy
    }

    /// Marks server `i` crashed: properties about live servers leave it out; its log counts as
    /// on disk where the model counts one.
    pub fn crashed(&mut self, i: usize) {
        self.state.down[i] = true;
    }

    /// Server `i` lost its disk: what it held is gone, so its last state no longer counts.
    pub fn wiped(&mut self, i: usize, fresh: &ServerState) {
        self.state.servers[i] = Shared::new(fresh.clone());
        self.observed[i] = fresh.log.clone();
    }

    /// The first property the current state violates.
    pub fn violated(&self) -> Option<&'static str> {
        self.properties
            .iter()
            .find(|p| !(p.condition)(&self.model, &self.state))
            .map(|p| p.name)
    }

    /// What a violation of property `name` on the current state concerns, in the words of
    /// `check`'s traces ("two leaders in term 2: S0 and S2").
    pub fn explain(&self, name: &str) -> Vec<String> {
        explain::concerns(&self.model, name, std::slice::from_ref(&self.state))
    }

    /// The model, for rendering messages in its words.
    pub fn model(&self) -> &RaftModel {
        &self.model
    }
}

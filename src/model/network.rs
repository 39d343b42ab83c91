//! Network semantics: how a message joins the network (a set, a multiset or FIFO links) and
//! leaves it, and which replies are moot and leave at once.

use super::{Envelope, RaftModel, SystemState};
use crate::model::shared::Shared;
use crate::model::spec::Semantics;
use crate::protocol::server::ServerState;

impl RaftModel {
    /// Takes out of the network every reply its server would ignore, now and later
    /// (`RaftServer::is_moot`). Delivering it later would be a step that changes nothing, and
    /// keeping it would multiply the states by the places where it can wait: for Figure 8,
    /// five times as many. Every state a server can reach stays reachable (a test compares
    /// both ways), and traces lose only steps that change no server.
    pub(super) fn discard_moot(&self, state: &mut SystemState) {
        if !self.discard_moot {
            return;
        }
        let SystemState {
            network, servers, ..
        } = state;
        network.retain(|e| !self.is_moot(servers, e));
    }

    /// Whether the server `e` is addressed to, as it is in `servers`, would ignore it now and
    /// later (`RaftServer::is_moot`; messages to clients always matter).
    pub(super) fn is_moot(&self, servers: &[Shared<ServerState>], e: &Envelope) -> bool {
        let dst = e.dst as usize;
        dst < self.n() && self.servers[dst].is_moot(&servers[dst], &e.msg)
    }

    pub(super) fn send(&self, state: &mut SystemState, env: Envelope) {
        let net = &mut state.network;
        match self.semantics() {
            Semantics::UnorderedDuplicating => {
                if let Err(at) = net.binary_search(&env) {
                    net.insert(at, env);
                }
            }
            Semantics::UnorderedNonduplicating => {
                let at = net.partition_point(|e| *e <= env);
                net.insert(at, env);
            }
            Semantics::Ordered => {
                let key = (env.src, env.dst);
                let at = net.partition_point(|e| (e.src, e.dst) <= key);
                net.insert(at, env);
            }
        }
    }

    pub(super) fn remove(&self, state: &mut SystemState, env: &Envelope) {
        if let Some(at) = state.network.iter().position(|e| e == env) {
            state.network.remove(at);
        }
    }
}

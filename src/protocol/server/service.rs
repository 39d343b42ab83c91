//! The key/value service (§8): client requests, applying committed commands, and the
//! per-client deduplication that makes a retry apply once.

use super::{Handler, Role};
use crate::protocol::bug::Bug;
use crate::protocol::types::{ClientReply, Command, Entry, Msg, OpResult};
use stateright::actor::Id;

impl Handler<'_, '_> {
    // ---- The key/value service. ----

    /// The last result for this client's request, if it was applied already (§8: "the state
    /// machine tracks the latest serial number processed for each client").
    pub(super) fn applied_result(&self, client: u64, request_id: u64) -> Option<&(u64, OpResult)> {
        if self.bug(Bug::NoDeduplication) {
            return None; // BUG: every retry looks new.
        }
        self.s
            .kv
            .sessions
            .get(&client)
            .filter(|(applied, _)| *applied >= request_id)
    }

    pub(super) fn on_client_request(&mut self, src: Id, command: Command) {
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
        let same_request = |e: &Entry| {
            e.term == term
                && e.command.client == command.client
                && e.command.request_id == command.request_id
        };
        let pending = (self.s.log)
            .entries_from(self.s.last_applied + 1, usize::MAX)
            .any(same_request);
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
        self.s.to_mut().log.push(Entry {
            term,
            command: command.into(),
        });
        self.persist = true;
        for peer in caught_up {
            self.replicate_to(peer);
        }
        self.advance_commit();
    }

    /// Figure 2, all servers: "If commitIndex > lastApplied: increment lastApplied, apply
    /// log[lastApplied] to state machine (§5.3)". The leader answers the client.
    pub(super) fn apply_committed(&mut self) {
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
                None => Some(self.apply_new(&command)),
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

    /// Applies a request not applied before, unless its session expired (Raft thesis §6.3);
    /// a new session beyond `max_sessions` expires the oldest.
    fn apply_new(&mut self, command: &Command) -> OpResult {
        let max_sessions = self.cfg.max_sessions;
        let kv = &mut self.s.to_mut().kv;
        let known = kv.sessions.contains_key(&command.client);
        if !known && command.client <= kv.expired_through {
            return OpResult::SessionExpired;
        }
        let result = kv.execute_within(&command.op, self.cfg.max_db_bytes);
        kv.sessions
            .insert(command.client, (command.request_id, result.clone()));
        while max_sessions.is_some_and(|max| kv.sessions.len() > max) {
            let (oldest, _) = kv.sessions.pop_first().expect("over the bound");
            kv.expired_through = kv.expired_through.max(oldest);
        }
        result
    }
}

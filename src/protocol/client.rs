//! A key/value client as a stateright actor: it runs its operations one at a time, follows
//! redirects to the leader, and retries with the *same* request id so a retry is applied once.

use crate::protocol::bug::Bug;
use crate::protocol::server::Storage;
use crate::protocol::types::*;
use stateright::actor::{Actor, Id, Out};
use std::borrow::Cow;
use std::ops::Range;
use std::time::Duration;

/// What a client is given at start: its session, the cluster size and the operations to run.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientConfig {
    /// The client's session id; in the model it is also its actor id.
    pub session: u64,
    /// Cluster size: with no leader hint the client tries servers 0..servers in turn.
    pub servers: usize,
    /// The operations to run, one at a time, in this order.
    pub ops: Vec<Op>,
    /// How long to wait for an answer before retrying at the next server (the checker lets the
    /// timer fire at any time).
    pub retry_timeout: Range<Duration>,
    /// The injected mistake, if any (only `Bug::ClientNoRetry` concerns the client).
    pub bug: Option<Bug>,
}

/// Where the client is in its list of operations, and what the completed ones returned.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientState {
    /// The server the client currently believes leads.
    pub target: u64,
    /// The results of the completed operations, in order: the one place where completion is
    /// decided, so the model's history and the UDP client read it instead of each inferring it
    /// from the responses they see.
    pub results: Vec<OpResult>,
}

impl ClientState {
    /// Index of the operation in flight (== ops.len() when all are done).
    pub fn next_op(&self) -> usize {
        self.results.len()
    }

    /// Whether the servers answered that this session expired (Raft thesis §6.3): it then runs
    /// nothing more, and the operation they refused may or may not have happened before.
    pub fn expired(&self) -> bool {
        self.results.last() == Some(&OpResult::SessionExpired)
    }

    /// Request ids start at 1 and grow by one per operation.
    pub fn request_id(&self) -> u64 {
        self.next_op() as u64 + 1
    }
}

/// The key/value client actor: the model explores it and the UDP client runs it, unchanged.
#[derive(Clone, Debug)]
pub struct KvClient {
    /// Its fixed configuration; everything that changes is in `ClientState`.
    pub cfg: ClientConfig,
}

impl KvClient {
    fn send_current(&self, s: &ClientState, o: &mut Out<Self>) {
        if s.expired() {
            return;
        }
        if let Some(op) = self.cfg.ops.get(s.next_op()) {
            let command = Command {
                client: self.cfg.session,
                request_id: s.request_id(),
                op: op.clone(),
            };
            o.send(Id::from(s.target as usize), Msg::ClientRequest(command));
            if self.cfg.bug != Some(Bug::ClientNoRetry) {
                // No answer in time: retry (BUG when skipped: a lost request is never retried).
                o.set_timer(ClientTimer::Retry, self.cfg.retry_timeout.clone());
            }
        }
    }
}

impl Actor for KvClient {
    type Msg = Msg;
    type Timer = ClientTimer;
    type State = ClientState;
    type Storage = Storage;
    type Random = ();

    fn on_start(&self, _id: Id, _storage: &Option<Storage>, o: &mut Out<Self>) -> ClientState {
        let state = ClientState {
            target: 0,
            results: Vec::new(),
        };
        self.send_current(&state, o);
        state
    }

    fn on_msg(&self, _id: Id, state: &mut Cow<ClientState>, src: Id, msg: Msg, o: &mut Out<Self>) {
        let Msg::ClientResponse { request_id, reply } = msg else {
            return;
        };
        if request_id != state.request_id() || state.next_op() >= self.cfg.ops.len() {
            return; // An answer to an operation that already completed.
        }
        if state.expired() {
            return;
        }
        let s = state.to_mut();
        match reply {
            ClientReply::Done(result) => {
                s.results.push(result);
                if s.next_op() == self.cfg.ops.len() || s.expired() {
                    o.cancel_timer(ClientTimer::Retry);
                }
            }
            ClientReply::NotLeader { leader } => {
                let from = usize::from(src) as u64;
                s.target = leader
                    .filter(|&l| l != from)
                    .unwrap_or((from + 1) % self.cfg.servers as u64);
            }
        }
        self.send_current(s, o);
    }

    fn on_timeout(
        &self,
        _id: Id,
        state: &mut Cow<ClientState>,
        _timer: &ClientTimer,
        o: &mut Out<Self>,
    ) {
        if state.next_op() >= self.cfg.ops.len() || state.expired() {
            return;
        }
        // No answer: the server may be down or deposed; try the next one with the same id.
        let s = state.to_mut();
        s.target = (s.target + 1) % self.cfg.servers as u64;
        self.send_current(s, o);
    }
}

//! The model: servers and clients (the unchanged actors), a network with the chosen semantics,
//! crashes and restarts, and ghost history for the history-based properties. It implements
//! stateright's `Model`, and the checker's own searches (BFS, DFS and the swarm) and explorer,
//! in the check layer, run on it.

pub mod diagram;
pub mod fingerprint;
pub mod ghost;
pub mod shared;
pub mod spec;

mod given;
mod network;
mod render;

pub use render::{message as describe_message, DROP_EVENT};

use crate::protocol::client::{ClientConfig, ClientState, KvClient};
use crate::protocol::server::{RaftServer, ServerConfig, ServerState, Storage};
use crate::protocol::types::*;
use crate::protocol::view::ServerView;
use ghost::Ghost;
use shared::Shared;
use spec::{ModelConfig, Semantics};
use stateright::actor::{Actor, Command as OutCommand, Id, Out};
use stateright::{Model, Property};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

/// A message in flight. Servers are actors 0..n, clients n..n+c.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Envelope {
    /// Sender's actor id (servers 0..n, clients n..n+c); the receiver sees it as the RPC's source.
    pub src: u8,
    /// Receiver's actor id; only sends to existing actors enter the network.
    pub dst: u8,
    /// The message, shared so that every state holding it in flight hashes it once.
    pub msg: Shared<Msg>,
}

/// One state of the whole cluster as the checker explores it: every actor's state and storage,
/// armed timers, crashes, the messages in flight and the ghost history.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct SystemState {
    /// Each server's state, shared with earlier states until a step changes it.
    pub servers: Vec<Shared<ServerState>>,
    /// Each client's state: the server it targets and the results of its finished operations.
    pub clients: Vec<ClientState>,
    /// What each server last saved; restarts restore from it.
    pub storage: Vec<Option<Shared<Storage>>>,
    /// Armed timers per actor, one bit per `Timer`.
    pub timers: Vec<u8>,
    /// Which servers are crashed: no delivery to them and no timers until they restart.
    pub down: Vec<bool>,
    /// Crashes so far in this run; restarts do not give them back (`faults.max_crashes`).
    pub crashes: u8,
    /// Damage faults so far in this run (`faults.max_damage`).
    pub damaged: u8,
    /// How many of the workload's proposals a leader has accepted.
    pub proposed: u8,
    /// Canonical order: sorted for unordered networks (a set or a multiset), grouped by
    /// (src, dst) in send order for the ordered network.
    pub network: Vec<Envelope>,
    /// What the properties need of the run's past (leaders, commits, client history); the protocol
    /// never reads it.
    pub ghost: Shared<Ghost>,
}

/// One step of the model: the checker chooses among the enabled ones in a state; traces and given
/// steps name each in one line (`describe`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Action {
    /// The network hands this message to its receiver, which must be up.
    Deliver(Envelope),
    /// The network loses this message (lossy networks, and given steps that clear the network).
    Drop(Envelope),
    /// Actor `.0`'s armed timer `.1` fires; durations are ignored, so any armed timer may fire.
    Timeout(u8, Timer),
    /// Server `.0` stops: its timers are cleared and its messages wait, until it restarts.
    Crash(u8),
    /// Crashed server `.0` starts again as a follower from what it last saved (Figure 2).
    Restart(u8),
    /// Crashed server `.0` loses part of its storage (`faults.max_damage`); it finds the damage
    /// when it restarts.
    Damage(u8, Damage),
    /// Server `.0`, which leads, accepts workload proposal `.1`.
    Propose(u8, u8),
    /// Server `.0` gets a request from a client session outside the model (`.1.client`): only
    /// in given steps, as `sim --emit-model` writes them; a search never takes it.
    Request(u8, Arc<Command>),
}

/// What a damage fault takes from a crashed server's storage. The storage layer detects each
/// (a missing file, a checksum that fails, a log shorter than its last sync), so the server
/// restarts knowing it was damaged, not what it lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Damage {
    /// Everything: the data directory is gone.
    Wipe,
    /// The term and vote (the meta file), keeping the log and snapshot.
    LoseVote,
    /// The last log entry, though it was made durable (and maybe acknowledged).
    LoseLastEntry,
    /// Everything, undetected: the data directory was deleted and the server restarts empty,
    /// as a new server would (`Storage::maybe_new`); `node` without `--recover`.
    Delete,
}

impl Damage {
    /// Every kind, in the order the checker tries them.
    pub const ALL: [Damage; 4] = [
        Damage::Wipe,
        Damage::LoseVote,
        Damage::LoseLastEntry,
        Damage::Delete,
    ];

    /// The kind a model file or trace names.
    pub fn from_word(word: &str) -> Option<Damage> {
        Damage::ALL.into_iter().find(|d| d.word() == word)
    }

    /// The word model files and traces use.
    pub fn word(self) -> &'static str {
        match self {
            Damage::Wipe => "wipe",
            Damage::LoseVote => "lose-vote",
            Damage::LoseLastEntry => "lose-last-entry",
            Damage::Delete => "delete",
        }
    }

    /// What is left of `storage` after this damage, marked damaged; None when there is nothing
    /// this damage can take (an entry from an empty log).
    pub fn apply(self, storage: &Storage) -> Option<Storage> {
        let mut left = match self {
            Damage::Wipe => Storage::wiped(),
            Damage::Delete => return Some(Storage::unknown()),
            Damage::LoseVote => Storage {
                term: 0,
                voted_for: None,
                ..storage.clone()
            },
            Damage::LoseLastEntry => {
                let last = storage.log.last_index();
                if last <= storage.log.base_index {
                    return None;
                }
                let mut cut = storage.clone();
                cut.log.truncate_from(last);
                cut
            }
        };
        left.recovering = true;
        Some(left)
    }
}

/// What one handler did: its new state (None: unchanged) and the commands it emitted.
type ServerStep = (Option<ServerState>, Out<RaftServer>);
type ClientStep = (Option<ClientState>, Out<KvClient>);

/// Raft as a stateright `Model`: the unchanged actors, the model file's settings, and the start
/// state (after the given steps) every search begins from.
#[derive(Clone)]
pub struct RaftModel {
    /// The parsed model file: cluster, clients, workload, network, faults, bounds, timing, bug.
    pub cfg: ModelConfig,
    /// True (the default) discards moot replies as soon as they are moot (`discard_moot`).
    pub discard_moot: bool,
    /// One server actor per server id, all with the same configuration.
    pub servers: Vec<RaftServer>,
    /// One client actor per `[[client]]` table, in order; client `c` is actor `n + c`.
    pub clients: Vec<KvClient>,
    /// The model's given steps (`[given]`), replayed from a fresh cluster; searches start from
    /// the state they lead to.
    pub given: Vec<Action>,
    start: SystemState,
    /// What the checker checks on this model's states (`with_properties`); the model itself
    /// knows none: properties belong to the checker, which hands them in.
    properties: Arc<Vec<Property<RaftModel>>>,
}

impl RaftModel {
    /// A model of a parsed config (`spec::parse` has already replayed its given steps).
    pub fn new(cfg: ModelConfig) -> Self {
        Self::try_new(cfg).unwrap_or_else(|(field, e)| panic!("{field}: {e}"))
    }

    /// Fails with the model-file field of the first given step that cannot be taken, and why.
    pub fn try_new(cfg: ModelConfig) -> Result<Self, (String, String)> {
        let n = cfg.file.servers;
        let mut server_cfg = ServerConfig::new(n);
        server_cfg.bug = cfg.file.bug;
        server_cfg.snapshot_after = cfg.file.snapshot.after;
        server_cfg.max_sessions = cfg.file.sessions.max;
        if let Some(max) = cfg.file.replication.max_entries_per_append {
            server_cfg.max_entries_per_append = max;
        }
        let servers = (0..n)
            .map(|_| RaftServer::new(server_cfg.clone()))
            .collect();
        let clients = cfg
            .client_ops
            .iter()
            .enumerate()
            .map(|(c, ops)| KvClient {
                cfg: ClientConfig {
                    session: (n + c) as u64,
                    servers: n,
                    ops: ops.clone(),
                    retry_timeout: Duration::from_millis(500)..Duration::from_millis(500),
                    bug: cfg.file.bug,
                },
            })
            .collect();
        let mut model = RaftModel {
            cfg,
            discard_moot: true,
            servers,
            clients,
            given: Vec::new(),
            start: SystemState::default(),
            properties: Arc::default(),
        };
        let (start, given) = model.replay_given()?;
        model.start = start;
        model.given = given;
        Ok(model)
    }

    /// This model with `properties` to check (the checker's; see `check::properties`).
    pub fn with_properties(mut self, properties: Vec<Property<RaftModel>>) -> Self {
        self.properties = Arc::new(properties);
        self
    }

    /// Number of servers; they are actors 0..n and the clients follow them.
    pub fn n(&self) -> usize {
        self.servers.len()
    }

    /// `S<i>` for a server, `C<j>` for a client: the names traces and given steps use.
    pub fn actor_name(&self, id: u8) -> String {
        let n = self.n() as u8;
        if id < n {
            format!("S{id}")
        } else {
            format!("C{}", id - n)
        }
    }

    /// Actors are servers then clients; ids past them are the sessions of workload proposals,
    /// whose answers nobody receives.
    fn actors(&self) -> usize {
        self.n() + self.clients.len()
    }

    fn semantics(&self) -> Semantics {
        self.cfg.file.network.semantics
    }

    /// Applies what a handler emitted: saves, timers, messages.
    fn apply_out<A>(&self, state: &mut SystemState, actor: usize, out: Out<A>)
    where
        A: Actor<Msg = Msg, Storage = Storage>,
        A::Timer: Into<Timer>,
    {
        for command in out {
            match command {
                OutCommand::Send(dst, _) if usize::from(dst) >= self.actors() => {}
                OutCommand::Send(dst, msg) => {
                    let env = Envelope {
                        src: actor as u8,
                        dst: usize::from(dst) as u8,
                        msg: Shared::new(msg),
                    };
                    self.send(state, env);
                }
                OutCommand::SetTimer(t, _) => state.timers[actor] |= t.into().bit(),
                OutCommand::CancelTimer(t) => state.timers[actor] &= !t.into().bit(),
                OutCommand::Save(s) => state.storage[actor] = Some(Shared::new(s)),
                OutCommand::ChooseRandom(..) => {}
            }
        }
    }

    /// Runs one server handler against `last` without copying the system state: `None` when the
    /// handler changed nothing and emitted nothing.
    fn run_server(
        &self,
        last: &SystemState,
        i: usize,
        run: impl FnOnce(&RaftServer, &mut Cow<ServerState>, &mut Out<RaftServer>),
    ) -> Option<ServerStep> {
        let mut cow = Cow::Borrowed(&*last.servers[i]);
        let mut out = Out::new();
        run(&self.servers[i], &mut cow, &mut out);
        match cow {
            Cow::Borrowed(_) if out.is_empty() => None,
            Cow::Borrowed(_) => Some((None, out)),
            Cow::Owned(new) => Some((Some(new), out)),
        }
    }

    /// Applies a server step to the next state and records what it did in the ghost history.
    fn apply_server(&self, state: &mut SystemState, i: usize, (new, out): ServerStep) {
        if let Some(new) = new {
            let new = Shared::new(new);
            Ghost::observe_server(&mut state.ghost, i, Some(&state.servers[i]), &new);
            state.servers[i] = new;
        }
        self.apply_out(state, i, out);
    }

    fn run_client(
        &self,
        last: &SystemState,
        c: usize,
        run: impl FnOnce(&KvClient, &mut Cow<ClientState>, &mut Out<KvClient>),
    ) -> Option<ClientStep> {
        let mut cow = Cow::Borrowed(&last.clients[c]);
        let mut out = Out::new();
        run(&self.clients[c], &mut cow, &mut out);
        match cow {
            Cow::Borrowed(_) if out.is_empty() => None,
            Cow::Borrowed(_) => Some((None, out)),
            Cow::Owned(new) => Some((Some(new), out)),
        }
    }

    /// Applies a client step; an operation the client completed in it (`ClientState::results`)
    /// completes in the linearizability history too.
    fn apply_client(&self, state: &mut SystemState, c: usize, (new, out): ClientStep) {
        if let Some(new) = new {
            if new.next_op() > state.clients[c].next_op() {
                let result = new.results.last().expect("a completed operation").clone();
                let next = self.clients[c].cfg.ops.get(new.next_op());
                state
                    .ghost
                    .update(|g| g.client_returned(c as u64, result, next));
            }
            state.clients[c] = new;
        }
        self.apply_out(state, self.n() + c, out);
    }

    /// Delivers a message. The handler runs before the system state is copied: in a
    /// duplicating network most deliveries change nothing and are dropped without a copy.
    fn deliver(&self, last: &SystemState, env: &Envelope) -> Option<SystemState> {
        let n = self.n();
        let consumed = self.semantics() != Semantics::UnorderedDuplicating;
        let (src, dst) = (Id::from(env.src as usize), env.dst as usize);
        let mut state;
        if dst < n {
            let step = self.run_server(last, dst, |a, s, o| {
                a.on_msg(Id::from(dst), s, src, (*env.msg).clone(), o)
            });
            if step.is_none() && !consumed {
                return None;
            }
            state = last.clone();
            if let Some(step) = step {
                self.apply_server(&mut state, dst, step);
            }
        } else {
            let step = self.run_client(last, dst - n, |a, s, o| {
                a.on_msg(Id::from(dst), s, src, (*env.msg).clone(), o)
            });
            if step.is_none() && !consumed {
                return None;
            }
            state = last.clone();
            if let Some(step) = step {
                self.apply_client(&mut state, dst - n, step);
            }
        }
        if consumed {
            self.remove(&mut state, env);
        }
        self.discard_moot(&mut state);
        (state != *last).then_some(state)
    }

    /// Fires actor `i`'s timer: it is disarmed, and the handler may arm it again.
    fn fire(&self, last: &SystemState, i: usize, timer: Timer) -> SystemState {
        let n = self.n();
        let mut state = last.clone();
        state.timers[i] &= !timer.bit();
        // Each actor arms only its own kind of timer, so only that kind is ever armed for it.
        if let (true, Ok(t)) = (i < n, ServerTimer::try_from(timer)) {
            let step = self.run_server(last, i, |a, s, o| a.on_timeout(Id::from(i), s, &t, o));
            if let Some(step) = step {
                self.apply_server(&mut state, i, step);
            }
        } else if let (true, Ok(t)) = (i >= n, ClientTimer::try_from(timer)) {
            let step = self.run_client(last, i - n, |a, s, o| a.on_timeout(Id::from(i), s, &t, o));
            if let Some(step) = step {
                self.apply_client(&mut state, i - n, step);
            }
        }
        state
    }

    /// Leader `i` accepts workload proposal `k` as a request from a session of its own, whose
    /// answer nobody receives (raft.tla's ClientRequest).
    fn propose(&self, last: &SystemState, i: usize, k: u8) -> SystemState {
        let mut state = last.clone();
        let session = self.actors() + k as usize;
        let command = Command {
            client: session as u64,
            request_id: 1,
            op: self.cfg.proposals[k as usize].clone(),
        };
        let msg = Msg::ClientRequest(command);
        let step = self.run_server(last, i, |a, s, o| {
            a.on_msg(Id::from(i), s, Id::from(session), msg, o)
        });
        if let Some(step) = step {
            self.apply_server(&mut state, i, step);
        }
        state.proposed += 1;
        state
    }

    /// Server `i` handles a request from a client outside the model (a real client, in a trace
    /// `check --validate-trace` replays): the session is no actor, so its answer goes nowhere.
    /// None when the request changed nothing.
    pub fn external_request(
        &self,
        last: &SystemState,
        i: usize,
        session: u64,
        msg: Msg,
    ) -> Option<SystemState> {
        let from = Id::from(usize::try_from(session).ok()?);
        let step = self.run_server(last, i, |a, s, o| a.on_msg(Id::from(i), s, from, msg, o))?;
        let mut state = last.clone();
        self.apply_server(&mut state, i, step);
        self.discard_moot(&mut state);
        Some(state)
    }

    /// Server `i` starts again from what it last saved.
    fn restart(&self, last: &SystemState, i: usize) -> SystemState {
        let mut state = last.clone();
        let mut out = Out::new();
        let storage = state.storage[i].as_deref().cloned();
        let restored = self.servers[i].on_start(Id::from(i), &storage, &mut out);
        let restored = Shared::new(restored);
        Ghost::observe_server(&mut state.ghost, i, None, &restored);
        state.servers[i] = restored;
        state.down[i] = false;
        self.apply_out(&mut state, i, out);
        state
    }

    /// Whether `action` certainly leads outside the bounds from `state`, known without running
    /// it: a server that stands for election at `max_term` (it would reach the next term), or a
    /// leader whose log is `max_log_len` long taking a proposal (each proposal comes from a
    /// session of its own, so the leader always appends it). A random walk skips these instead
    /// of running them to find out: at the last term, most of a walk's election timeouts are
    /// such. False when in doubt; `futile_actions_never_stay_in_bounds` checks it against
    /// `next_state` on every state of the shipped models' first levels.
    pub fn surely_leaves_bounds(&self, state: &SystemState, action: &Action) -> bool {
        let b = &self.cfg.file.bounds;
        let server = |i: u8| state.servers.get(i as usize);
        match *action {
            Action::Timeout(i, Timer::Election) => server(i)
                .is_some_and(|s| s.recovery.is_none() && !s.is_leader() && s.term() >= b.max_term),
            Action::Propose(i, _) => {
                server(i).is_some_and(|s| s.is_leader() && s.log().last_index() >= b.max_log_len)
            }
            _ => false,
        }
    }

    /// The timing assumptions: only one server stands for an uncontested term (the final one,
    /// behind `eventually`, or every one), the first to reach it.
    fn election_allowed(&self, state: &SystemState, i: usize) -> bool {
        if state.servers[i].recovery.is_some() {
            return true; // A recovering server never stands: its timer only asks again.
        }
        let timing = &self.cfg.file.timing;
        let next_term = state.servers[i].term() + 1;
        let uncontested = timing.all_elections_uncontested
            || (timing.last_election_uncontested && next_term >= self.cfg.file.bounds.max_term);
        !uncontested || state.servers.iter().all(|s| s.term() < next_term)
    }

    /// A cluster that has just started: every server a follower of term 0 with an empty log.
    pub fn fresh_state(&self) -> SystemState {
        let n = self.n();
        let actors = n + self.clients.len();
        let mut state = SystemState {
            servers: Vec::with_capacity(n),
            clients: Vec::with_capacity(self.clients.len()),
            storage: vec![None; n],
            timers: vec![0; actors],
            down: vec![false; n],
            crashes: 0,
            damaged: 0,
            proposed: 0,
            network: Vec::new(),
            ghost: Shared::default(),
        };
        for (i, server) in self.servers.iter().enumerate() {
            let mut out = Out::new();
            let s = server.on_start(Id::from(i), &None, &mut out);
            state.servers.push(Shared::new(s));
            self.apply_out(&mut state, i, out);
        }
        for (c, client) in self.clients.iter().enumerate() {
            let mut out = Out::new();
            let s = client.on_start(Id::from(n + c), &None, &mut out);
            state.clients.push(s);
            self.apply_out(&mut state, n + c, out);
            let first = client.cfg.ops.first();
            state.ghost.update(|g| g.client_invoked(c as u64, first));
        }
        state
    }
}

impl Model for RaftModel {
    type State = SystemState;
    type Action = Action;

    fn init_states(&self) -> Vec<SystemState> {
        vec![self.start.clone()]
    }

    fn actions(&self, state: &SystemState, actions: &mut Vec<Action>) {
        let n = self.n();
        let lossy = self.cfg.file.network.lossy;
        let ordered = self.semantics() == Semantics::Ordered;
        let mut prev: Option<&Envelope> = None;
        for env in &state.network {
            // Ordered: only the head of each (src, dst) flow; multiset: each distinct once.
            if let Some(p) = prev {
                let same_flow = ordered && (p.src, p.dst) == (env.src, env.dst);
                if same_flow || (!ordered && env == p) {
                    continue;
                }
            }
            prev = Some(env);
            if lossy {
                actions.push(Action::Drop(env.clone()));
            }
            let dst = env.dst as usize;
            if dst >= n || !state.down[dst] {
                actions.push(Action::Deliver(env.clone()));
            }
        }
        for (i, &bits) in state.timers.iter().enumerate() {
            for timer in Timer::ALL {
                if bits & timer.bit() == 0 {
                    continue;
                }
                if timer == Timer::Election && !self.election_allowed(state, i) {
                    continue;
                }
                if timer == Timer::Heartbeat && !self.cfg.file.timing.heartbeats {
                    continue;
                }
                actions.push(Action::Timeout(i as u8, timer));
            }
        }
        if (state.proposed as usize) < self.cfg.proposals.len() {
            for (i, s) in state.servers.iter().enumerate() {
                if s.is_leader() && !state.down[i] {
                    actions.push(Action::Propose(i as u8, state.proposed));
                }
            }
        }
        let budget_left = state.crashes < self.cfg.file.faults.max_crashes;
        let damage_left = state.damaged < self.cfg.file.faults.max_damage;
        for (i, &down) in state.down.iter().enumerate() {
            if down {
                actions.push(Action::Restart(i as u8));
                if damage_left {
                    let storage = state.storage[i].as_deref();
                    let kinds = self.cfg.file.faults.damage.as_ref();
                    let allowed =
                        |k: Damage| kinds.is_none_or(|ws| ws.iter().any(|w| w == k.word()));
                    for kind in Damage::ALL.into_iter().filter(|&k| allowed(k)) {
                        if storage.and_then(|s| kind.apply(s)).is_some() {
                            actions.push(Action::Damage(i as u8, kind));
                        }
                    }
                }
            } else if budget_left {
                actions.push(Action::Crash(i as u8));
            }
        }
    }

    fn next_state(&self, last: &SystemState, action: Action) -> Option<SystemState> {
        let mut state = match action {
            Action::Deliver(env) => return self.deliver(last, &env),
            Action::Drop(env) => {
                let mut state = last.clone();
                self.remove(&mut state, &env);
                state
            }
            Action::Timeout(actor, timer) => self.fire(last, actor as usize, timer),
            Action::Crash(i) => {
                let mut state = last.clone();
                let i = i as usize;
                state.down[i] = true;
                state.timers[i] = 0;
                state.crashes += 1;
                state
            }
            Action::Propose(i, k) => self.propose(last, i as usize, k),
            Action::Restart(i) => self.restart(last, i as usize),
            Action::Damage(i, kind) => {
                let mut state = last.clone();
                let i = i as usize;
                let left = match kind {
                    // Nothing need be there to lose: a server that never saved still may not
                    // know that it never did.
                    Damage::Delete => Storage::unknown(),
                    Damage::Wipe => Storage::wiped(),
                    _ => kind.apply(state.storage[i].as_deref()?)?,
                };
                state.storage[i] = Some(Shared::new(left));
                state.damaged += 1;
                state
            }
            Action::Request(i, command) => {
                let msg = Msg::ClientRequest(Command::clone(&command));
                self.external_request(last, i as usize, command.client, msg)?
            }
        };
        self.discard_moot(&mut state);
        (state != *last).then_some(state)
    }

    fn within_boundary(&self, state: &SystemState) -> bool {
        let b = &self.cfg.file.bounds;
        state
            .servers
            .iter()
            .all(|s| s.term() <= b.max_term && s.log().last_index() <= b.max_log_len)
            && b.max_messages.is_none_or(|m| state.network.len() <= m)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        self.properties.iter().map(copy_property).collect()
    }

    fn format_action(&self, action: &Action) -> String {
        self.describe(action)
    }

    fn format_step(&self, last: &SystemState, action: Action) -> Option<String> {
        let next = self.next_state(last, action)?;
        Some(self.render_state(&next))
    }

    /// A path as a sequence diagram (`diagram`), from the fresh cluster: the model's given
    /// steps (greyed) lead to where the path starts. For stateright's own tools; the crate's
    /// explorer draws with `sequence_diagram` directly.
    fn as_svg(&self, path: stateright::Path<SystemState, Action>) -> Option<String> {
        let mut actions = self.given.clone();
        actions.extend(path.into_actions());
        let ending = diagram::Ending::default();
        let drawing = self.sequence_diagram(&actions, self.given.len(), &ending);
        Some(drawing.svg())
    }
}

/// `Property` is not `Clone` in stateright 0.31, though all its fields are.
fn copy_property(p: &Property<RaftModel>) -> Property<RaftModel> {
    Property {
        expectation: p.expectation.clone(),
        name: p.name,
        condition: p.condition,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::spec;
    use std::path::Path;

    fn model(extra: &str) -> RaftModel {
        let text = format!("{extra}\n[bounds]\nmax_term = 3\nmax_log_len = 2\n");
        RaftModel::new(spec::parse("t", Path::new("t.toml"), &text).unwrap())
    }

    fn after(m: &RaftModel, state: &SystemState, action: Action) -> SystemState {
        m.next_state(state, action)
            .expect("the action changes the state")
    }

    fn enabled(m: &RaftModel, state: &SystemState) -> Vec<Action> {
        let mut actions = Vec::new();
        m.actions(state, &mut actions);
        actions
    }

    fn deliver_to(m: &RaftModel, state: &SystemState, dst: u8) -> SystemState {
        let env = state
            .network
            .iter()
            .find(|e| e.dst == dst)
            .cloned()
            .unwrap();
        after(m, state, Action::Deliver(env))
    }

    /// S0 times out, S1 votes for it, S0 counts the vote and leads term 1.
    fn elect_s0(m: &RaftModel) -> SystemState {
        let s = after(m, &m.init_states()[0], Action::Timeout(0, Timer::Election));
        let s = deliver_to(m, &deliver_to(m, &s, 1), 0);
        assert!(s.servers[0].is_leader());
        s
    }

    #[test]
    fn searches_start_where_the_given_steps_lead() {
        let m = model(
            "[given]\nsteps = [\"S0: election timeout\", \"S0 -> S1:  RequestVote(t1, last=0@t0)\"]\n\
             keep_in_flight = [\"S0 → S2: RequestVote(t1, last=0@t0)\"]",
        );
        let start = &m.init_states()[0];
        assert_eq!(start.servers[0].role_name(), "candidate");
        assert_eq!(
            (start.servers[1].term, start.servers[1].voted_for),
            (1, Some(0))
        );
        // S1's vote is lost with everything else in flight but the one message kept.
        let in_flight: Vec<String> = start
            .network
            .iter()
            .map(|e| m.describe(&Action::Deliver(e.clone())))
            .collect();
        assert_eq!(in_flight, ["S0 → S2: RequestVote(t1, last=0@t0)"]);
        let drops = m.given.iter().filter(|a| matches!(a, Action::Drop(_)));
        // The default network duplicates: the delivered RequestVote is still in flight, and lost.
        assert_eq!((m.given.len(), drops.count()), (4, 2));
        assert_eq!(m.fresh_state().servers[0].term, 0);
    }

    #[test]
    fn only_leaders_accept_proposals_in_order() {
        let m = model("[workload]\nproposals = [\"put x 1\", \"put x 2\"]");
        let s = m.init_states().remove(0);
        assert!(!enabled(&m, &s)
            .iter()
            .any(|a| matches!(a, Action::Propose(..))));
        let s = elect_s0(&m);
        let proposals: Vec<Action> = enabled(&m, &s)
            .into_iter()
            .filter(|a| matches!(a, Action::Propose(..)))
            .collect();
        assert!(proposals == vec![Action::Propose(0, 0)]);
        let s = after(&m, &s, Action::Propose(0, 0));
        assert_eq!(s.proposed, 1);
        assert_eq!(s.servers[0].log.entries.len(), 1);
        assert!(enabled(&m, &s).contains(&Action::Propose(0, 1)));
        // Nobody is there to receive an answer: nothing is addressed past the servers.
        assert!(s.network.iter().all(|e| (e.dst as usize) < m.n()));
    }

    #[test]
    fn uncontested_elections_leave_a_reached_term_to_its_candidate() {
        let m = model("[timing]\nall_elections_uncontested = true");
        let s = m.init_states().remove(0);
        let s = after(&m, &s, Action::Timeout(0, Timer::Election));
        let actions = enabled(&m, &s);
        // S1 and S2 (term 0) may not stand for term 1; S0 may go on to term 2.
        assert!(!actions.contains(&Action::Timeout(1, Timer::Election)));
        assert!(!actions.contains(&Action::Timeout(2, Timer::Election)));
        assert!(actions.contains(&Action::Timeout(0, Timer::Election)));
        // By default, every term but the last is contested.
        let m = model("");
        let s = after(
            &m,
            &m.init_states().remove(0),
            Action::Timeout(0, Timer::Election),
        );
        assert!(enabled(&m, &s).contains(&Action::Timeout(1, Timer::Election)));
    }

    /// Small models, complete within their bounds, that between them send every kind of reply
    /// (with clients, crashes, loss, snapshots, and the bugs that touch replies or terms), each
    /// with a bound on the messages in flight that are not moot (client retries are unbounded).
    const MOOT_MODELS: [(&str, usize); 6] = [
        ("[timing]\nheartbeats = false", usize::MAX),
        (
            "[network]\nsemantics = \"ordered\"\nlossy = true\n[faults]\nmax_crashes = 1\n\
             [timing]\nheartbeats = false",
            usize::MAX,
        ),
        (
            "[[client]]\nops = [\"put x 1\"]\n[network]\nsemantics = \"ordered\"\n\
             [timing]\nheartbeats = false\nall_elections_uncontested = true",
            4,
        ),
        (
            "[workload]\nproposals = [\"put x 1\"]\n[snapshot]\nafter = 1\n\
             [network]\nsemantics = \"ordered\"\n[faults]\nmax_crashes = 1\n\
             [timing]\nheartbeats = false\nall_elections_uncontested = true",
            usize::MAX,
        ),
        (
            "bug = \"accept_stale_replies\"\n\
             [network]\nsemantics = \"unordered_nonduplicating\"\n\
             [timing]\nheartbeats = false\nall_elections_uncontested = true",
            usize::MAX,
        ),
        (
            "bug = \"no_step_down\"\n[workload]\nproposals = [\"put x 1\"]\n\
             [network]\nsemantics = \"unordered_nonduplicating\"\n\
             [timing]\nheartbeats = false\nall_elections_uncontested = true",
            usize::MAX,
        ),
    ];

    fn moot_model(extra: &str, discard_moot: bool) -> RaftModel {
        let text = format!("{extra}\n[bounds]\nmax_term = 2\nmax_log_len = 1\n");
        let mut m = RaftModel::new(spec::parse("t", Path::new("t.toml"), &text).unwrap());
        m.discard_moot = discard_moot;
        m
    }

    /// Calls `f` with every reachable state within the model's bounds and `max_live`
    /// (`live_messages`), and its successors.
    fn walk(
        m: &RaftModel,
        max_live: usize,
        mut f: impl FnMut(&SystemState, &[(Action, SystemState)]),
    ) {
        let mut todo = m.init_states();
        let mut seen: std::collections::HashSet<_> = todo
            .iter()
            .map(crate::model::fingerprint::fingerprint)
            .collect();
        while let Some(state) = todo.pop() {
            let successors: Vec<(Action, SystemState)> = enabled(m, &state)
                .into_iter()
                .filter_map(|a| Some((a.clone(), m.next_state(&state, a)?)))
                .filter(|(_, next)| m.within_boundary(next) && live_messages(m, next) <= max_live)
                .collect();
            f(&state, &successors);
            let unseen = successors.into_iter().map(|(_, next)| next);
            todo.extend(
                unseen.filter(|next| seen.insert(crate::model::fingerprint::fingerprint(next))),
            );
        }
    }

    /// Messages in flight that are not moot: a bound on them is the same bound whether moot
    /// replies are discarded or kept.
    fn live_messages(m: &RaftModel, state: &SystemState) -> usize {
        let moot = |e: &&Envelope| m.is_moot(&state.servers, e);
        state.network.iter().filter(|e| !moot(e)).count()
    }

    /// The state without its network: what the servers, clients and history are.
    fn without_network(state: &SystemState) -> SystemState {
        SystemState {
            network: Vec::new(),
            ..state.clone()
        }
    }

    /// The end-to-end check of `a_moot_reply_changes_nothing_and_stays_moot`, on the models with
    /// a client, crashes and snapshots (keeping moot replies multiplies the states to walk).
    #[test]
    fn discarding_moot_replies_keeps_every_other_state_reachable() {
        for (extra, max_live) in [MOOT_MODELS[2], MOOT_MODELS[3]] {
            let reachable = |discard| {
                let mut all = std::collections::HashSet::new();
                walk(&moot_model(extra, discard), max_live, |s, _| {
                    all.insert(crate::model::fingerprint::fingerprint(&without_network(s)));
                });
                all
            };
            let (discarding, keeping) = (reachable(true), reachable(false));
            assert!(discarding == keeping, "{extra}");
        }
    }

    /// Every reply a server could be sent in these models (terms up to 2, logs of one entry).
    fn probe_replies() -> Vec<Msg> {
        let mut replies = Vec::new();
        for term in 0..=3 {
            for granted in [false, true] {
                replies.push(Msg::RequestVoteReply { term, granted });
            }
            for outcome in [
                AppendOutcome::Matched { match_index: 1 },
                AppendOutcome::Conflict {
                    term: None,
                    first_index: 1,
                },
            ] {
                replies.push(Msg::AppendEntriesReply { term, outcome });
            }
            replies.push(Msg::InstallSnapshotReply {
                term,
                last_index: 1,
            });
        }
        replies
    }

    /// Why discarding is sound: whatever a server would take as moot, it ignores (its handler
    /// changes nothing and sends nothing), and it takes as moot after every step, restarts
    /// included. So a moot reply that stayed in flight could only be delivered to no effect,
    /// and every state is reachable with moot replies discarded or kept.
    #[test]
    fn a_moot_reply_changes_nothing_and_stays_moot() {
        let probes = probe_replies();
        for (extra, max_live) in MOOT_MODELS {
            let m = moot_model(extra, true);
            let mut moot_seen = 0;
            walk(&m, max_live, |state, successors| {
                for (i, server) in m.servers.iter().enumerate() {
                    let sender = Id::from((i + 1) % m.n());
                    for msg in probes
                        .iter()
                        .filter(|r| server.is_moot(&state.servers[i], r))
                    {
                        moot_seen += 1;
                        let mut s = Cow::Borrowed(&*state.servers[i]);
                        let mut out = Out::new();
                        server.on_msg(Id::from(i), &mut s, sender, msg.clone(), &mut out);
                        let unchanged = *s == *state.servers[i] && out.is_empty();
                        assert!(
                            unchanged,
                            "{extra}: {msg:?} to S{i} in {:?}",
                            state.servers[i]
                        );
                        for (action, next) in successors {
                            let still = server.is_moot(&next.servers[i], msg);
                            assert!(still, "{extra}: {msg:?} to S{i} after {action:?}");
                        }
                    }
                }
            });
            assert!(moot_seen > 0, "{extra}");
        }
    }

    #[test]
    fn without_heartbeats_a_leader_has_no_heartbeat_timer_to_fire() {
        let with = model("");
        let s = elect_s0(&with);
        assert!(enabled(&with, &s).contains(&Action::Timeout(0, Timer::Heartbeat)));
        let without = model("[timing]\nheartbeats = false");
        let s = elect_s0(&without);
        assert!(!enabled(&without, &s).contains(&Action::Timeout(0, Timer::Heartbeat)));
    }

    /// `surely_leaves_bounds` may only say so of an action that does leave the bounds: on
    /// random walks through every shipped model, each action it calls futile is run, and must
    /// change nothing or leave the bounds. It must also find some, or it saves a walk nothing.
    #[test]
    fn futile_actions_never_stay_in_bounds() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
        let mut futile = 0;
        for dir in ["", "bugs", "liveness", "timing"] {
            for file in std::fs::read_dir(root.join(dir)).unwrap() {
                let path = file.unwrap().path();
                if path.extension().is_none_or(|e| e != "toml") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                let m = RaftModel::new(spec::parse("t", &path, &text).unwrap());
                futile += futile_on_walks(&m, &path);
            }
        }
        assert!(futile > 1000, "{futile}");
    }

    /// 200 walks of up to 60 steps through `m`, checking `surely_leaves_bounds` at each state;
    /// how many actions it called futile.
    fn futile_on_walks(m: &RaftModel, path: &Path) -> usize {
        let mut futile = 0;
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..200 {
            let mut state = m.init_states()[0].clone();
            for _ in 0..60 {
                let actions = enabled(m, &state);
                for a in actions.iter().filter(|a| m.surely_leaves_bounds(&state, a)) {
                    futile += 1;
                    let next = m.next_state(&state, a.clone());
                    let stays = next.is_some_and(|n| m.within_boundary(&n));
                    assert!(!stays, "{}: {a:?} stays in bounds", path.display());
                }
                let next: Vec<SystemState> = actions
                    .into_iter()
                    .filter_map(|a| m.next_state(&state, a))
                    .filter(|n| m.within_boundary(n))
                    .collect();
                if next.is_empty() {
                    break;
                }
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                state = next[(rng % next.len() as u64) as usize].clone();
            }
        }
        futile
    }
}

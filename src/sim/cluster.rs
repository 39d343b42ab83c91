//! One simulated run: N real [`Node`]s (the `node` binary's loop, with virtual clock, network and
//! disk) and key/value clients (the unchanged `KvClient` actor), driven by one discrete-event
//! queue ordered by (virtual time, sequence number), every random choice drawn from one
//! generator seeded by the run's seed. Nothing reads the wall clock or sleeps, so a seed is a
//! run: the same seed replays the same events, byte for byte.

use crate::check::report::{ServerView, TraceStep};
use crate::model::diagram::Mark;
use crate::net::driver::{Driver, Effects, Rng};
use crate::net::node::{EmptyDir, Node, NodeOptions, TraceLog};
use crate::net::wire::{self, Body, Envelope, CLIENT_ID_MIN};
use crate::net::world::Clock;
use crate::protocol::client::{ClientConfig, KvClient};
use crate::protocol::server::{Bug, ServerConfig, ServerState};
use crate::protocol::trace::TraceEvent;
use crate::protocol::types::{ClientReply, Msg, Op, OpResult};
use crate::sim::checks::ClusterChecks;
use crate::sim::linearizability::HistoryOp;
use crate::sim::network::{LinkConfig, NetModel};
use crate::sim::picture::Recorder;
use crate::sim::world::{Mailbox, SimClock, SimDisk, SimNet};
use smallvec::SmallVec;
use stateright::actor::Id;
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

/// After "not leader, leader unknown" a client waits this long before asking the next server,
/// as the UDP client does, so it does not spin through the servers while they elect.
const NO_LEADER_BACKOFF: Duration = Duration::from_millis(50);
/// A node crashed "during an fsync" that has not saved within this is crashed anyway.
const TORN_CRASH_GRACE: Duration = Duration::from_millis(300);
/// How often (virtual time) the model's properties are checked on the cluster state, and at
/// every crash and at the end: often enough to see every state that lasts, rarely enough that
/// cloning and hashing whole logs does not dominate a run.
const CHECK_EVERY: Duration = Duration::from_millis(20);

/// How to build a simulated cluster.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// How many servers (1..=7).
    pub servers: usize,
    /// The run's seed: every random choice derives from it.
    pub seed: u64,
    /// The injected mistake, as in model files.
    pub bug: Option<Bug>,
    /// Compact the log once this many applied entries sit in it.
    pub snapshot_after: Option<u64>,
    /// Keep at most this many client sessions (`node --max-sessions`); None: no bound.
    pub max_sessions: Option<usize>,
    /// The election timeout range.
    pub election_timeout: Range<Duration>,
    /// The leader's heartbeat interval (6.5840: at most ten per second).
    pub heartbeat: Duration,
    /// How long one fsync takes: a round that saves holds its messages (and the node) this long.
    pub fsync: Range<Duration>,
    /// How the network behaves at the start.
    pub link: LinkConfig,
    /// Keep every trace row (`--trace`), not only the last ones.
    pub full_trace: bool,
    /// Record the run for a sequence diagram (`--svg`) of its last this many steps. Off by
    /// default: it labels every datagram.
    pub diagram: Option<usize>,
    /// Record every handler the nodes run, as `node --trace` does, in the run's order
    /// (`--emit-model`).
    pub record_events: bool,
}

impl SimConfig {
    /// A cluster of `servers` with 6.5840's constants: heartbeats ten per second, elections
    /// within 300–600 ms of silence, a reliable network, fsyncs of 1–4 ms.
    pub fn new(servers: usize, seed: u64) -> SimConfig {
        SimConfig {
            servers,
            seed,
            bug: None,
            snapshot_after: None,
            max_sessions: None,
            election_timeout: Duration::from_millis(300)..Duration::from_millis(600),
            heartbeat: Duration::from_millis(100),
            fsync: Duration::from_millis(1)..Duration::from_millis(4),
            link: LinkConfig::reliable(),
            full_trace: false,
            diagram: None,
            record_events: false,
        }
    }
}

/// A check that failed: which, and what was seen.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    /// The check's name: a property's, `linearizability`, or the scenario's assertion.
    pub check: String,
    /// What was seen.
    pub detail: String,
}

impl Failure {
    /// A failure of `check`.
    pub fn new(check: &str, detail: impl Into<String>) -> Failure {
        Failure {
            check: check.to_string(),
            detail: detail.into(),
        }
    }
}

/// What the simulator does next.
enum Event {
    /// A datagram reaches actor `to`.
    Arrive {
        from: usize,
        to: usize,
        bytes: Vec<u8>,
        /// Its arrow in the diagram, when one is recorded.
        id: u64,
    },
    /// Actor `.0` has something to do (a datagram queued, a timer due).
    Wake(usize),
    /// A node told to crash at its next fsync is crashed now if it has not yet.
    ForceCrash(usize),
}

type SimNode = Node<SimClock, SimNet, SimDisk>;

/// A server's place in the run: its node while up, its disk and mailbox always.
struct Server {
    node: Option<SimNode>,
    disk: SimDisk,
    mailbox: Rc<RefCell<Mailbox>>,
    wake_at: Option<Duration>,
    busy_until: Duration,
    restarted: bool,
    dying: bool,
    /// What its trace row showed when last observed, so unchanged rounds add no row.
    shown: Option<Shown>,
    /// How the trace last showed it, kept to show it while down.
    last_view: Option<Cell>,
    /// The diagram's ids of the datagrams in its mailbox, in the same order.
    inbox_ids: VecDeque<u64>,
    /// Its disk is stalled until then: an fsync issued before it returns only then.
    stalled_until: Duration,
    /// It has started once: later starts are restarts, as `node` without
    /// `--initial-cluster-state new`.
    booted: bool,
}

/// A client: the `KvClient` actor in a driver, its inbox, and its place in the history.
struct Client {
    driver: Driver<KvClient>,
    ops: Vec<Op>,
    fx: Effects,
    session: u64,
    inbox: VecDeque<Vec<u8>>,
    /// The diagram's ids of the datagrams in `inbox`, in the same order.
    inbox_ids: VecDeque<u64>,
    wake_at: Option<Duration>,
    /// Index in the history of its operation in flight.
    current: Option<usize>,
    active: bool,
}

/// A simulated cluster and its clients over virtual time.
pub struct Sim {
    cfg: SimConfig,
    clock: SimClock,
    rng: Rng,
    queue: BTreeMap<(Duration, u64), Event>,
    seq: u64,
    servers: Vec<Server>,
    clients: Vec<Client>,
    peers: Vec<SocketAddr>,
    cluster: u64,
    /// The network's behaviour; scenarios change it as they go.
    pub net: NetModel,
    /// Count the RPC requests servers send each other (6.5840's `rpcCount`); off by default, as
    /// it decodes every datagram between servers.
    pub count_rpcs: bool,
    /// RPC requests (RequestVote, AppendEntries, InstallSnapshot) servers sent each other while
    /// `count_rpcs` was on (fragments of one message count once).
    pub rpcs: u64,
    /// Bytes of datagrams servers sent each other while `count_rpcs` was on.
    pub rpc_bytes: u64,
    checks: ClusterChecks,
    history: Vec<HistoryOp>,
    trace: VecDeque<Row>,
    steps: usize,
    failure: Option<Failure>,
    /// Every handler the nodes ran, in order (with `record_events`).
    events: Option<TraceLog>,
    /// How many of them led up to the first failure.
    events_at_failure: Option<usize>,
    last_heal: Duration,
    elected_after_heal: Option<Duration>,
    /// Servers cut off by `disconnect` (6.5840's `connected[i] == false`).
    cut_off: Vec<bool>,
    /// Servers whose state changed since the properties were last checked, and whether they
    /// restarted since.
    dirty: Vec<Option<bool>>,
    next_check: Duration,
    /// The run as a sequence diagram, when `cfg.diagram` asks for one.
    picture: Option<Recorder>,
}

fn server_addr(i: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1 + i as u8)), 7000)
}

fn client_addr(c: usize) -> SocketAddr {
    let [a, b] = (c as u16).to_be_bytes();
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 1, a, b)), 9000)
}

impl Sim {
    /// A fresh cluster: every server up with an empty disk, no clients yet.
    pub fn new(cfg: SimConfig) -> Result<Sim, String> {
        let n = cfg.servers;
        let peers: Vec<SocketAddr> = (0..n).map(server_addr).collect();
        let clock = SimClock::new(cfg.seed);
        let mut sim = Sim {
            rng: Rng::from_seed(cfg.seed),
            clock,
            queue: BTreeMap::new(),
            seq: 0,
            servers: Vec::new(),
            clients: Vec::new(),
            cluster: wire::cluster_id(&peers),
            peers,
            net: NetModel::new(cfg.link.clone()),
            count_rpcs: false,
            rpcs: 0,
            rpc_bytes: 0,
            checks: ClusterChecks::new(n)?,
            history: Vec::new(),
            trace: VecDeque::new(),
            steps: 0,
            failure: None,
            events: cfg.record_events.then(TraceLog::default),
            events_at_failure: None,
            last_heal: Duration::ZERO,
            elected_after_heal: None,
            cut_off: vec![false; n],
            dirty: vec![None; n],
            next_check: Duration::ZERO,
            picture: None,
            cfg,
        };
        for _ in 0..n {
            sim.servers.push(Server {
                node: None,
                disk: SimDisk::default(),
                mailbox: Rc::default(),
                wake_at: None,
                busy_until: Duration::ZERO,
                restarted: true,
                dying: false,
                shown: None,
                last_view: None,
                inbox_ids: VecDeque::new(),
                stalled_until: Duration::ZERO,
                booted: false,
            });
        }
        if let Some(keep) = sim.cfg.diagram {
            let names = (0..n).map(|i| format!("S{i}")).collect();
            let (cells, down) = sim.lane_cells();
            sim.picture = Some(Recorder::new(names, cells, down, keep));
        }
        for i in 0..n {
            sim.boot(i);
        }
        Ok(sim)
    }

    /// How the run was set up.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// Cluster size.
    pub fn n(&self) -> usize {
        self.cfg.servers
    }

    /// The virtual time now.
    pub fn now(&self) -> Duration {
        self.clock.elapsed()
    }

    /// The first check that failed, if any: the run stops advancing once one has.
    pub fn failure(&self) -> Option<&Failure> {
        self.failure.as_ref()
    }

    /// Records a failed check (the first one counts) and stops the run.
    pub fn fail(&mut self, f: Failure) {
        if self.failure.is_none() {
            self.events_at_failure = self
                .events
                .as_ref()
                .map(|e| e.lock().map_or(0, |e| e.len()));
            tracing::error!("FAILED {}: {}", f.check, f.detail);
            self.add_row(format!("FAILED {}: {}", f.check, f.detail));
            self.failure = Some(f);
        }
    }

    /// The handlers the nodes ran (with `record_events`), in the run's order, up to the first
    /// failure if there was one.
    pub fn events(&self) -> Vec<TraceEvent> {
        let Some(log) = &self.events else {
            return Vec::new();
        };
        let all = log.lock().map(|e| e.clone()).unwrap_or_default();
        let end = self.events_at_failure.unwrap_or(all.len()).min(all.len());
        all[..end].to_vec()
    }

    /// `Err` with the first failure, so scenarios can stop at it with `?`.
    pub fn ok(&self) -> Result<(), Failure> {
        self.failure.clone().map_or(Ok(()), Err)
    }

    /// Server `i`'s state while it is up.
    pub fn state(&self, i: usize) -> Option<&ServerState> {
        self.servers[i].node.as_ref().map(|n| n.state())
    }

    /// Whether server `i` is up.
    pub fn is_up(&self, i: usize) -> bool {
        self.servers[i].node.is_some()
    }

    /// The client history so far.
    pub fn history(&self) -> &[HistoryOp] {
        &self.history
    }

    /// When the last fault healed (a reconnect, a restart, the network healing).
    pub fn last_heal(&self) -> Duration {
        self.last_heal
    }

    /// Completed client operations so far.
    pub fn ops_done(&self) -> usize {
        self.history.iter().filter(|h| h.ret.is_some()).count()
    }

    /// The index of client `c`'s first command in an up server's log, if any holds it.
    pub fn client_index(&self, c: usize) -> Option<crate::protocol::types::LogIndex> {
        let session = self.session(c);
        (0..self.n()).filter_map(|i| self.state(i)).find_map(|s| {
            (s.log.base_index + 1..=s.log.last_index())
                .find(|&k| s.log.get(k).is_some_and(|e| e.command.client == session))
        })
    }

    /// How many clients were started.
    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    /// How long after the last fault healed a leader was first seen (None: not yet).
    pub fn elected_after_heal(&self) -> Option<Duration> {
        self.elected_after_heal
    }

    fn server_config(&self) -> ServerConfig {
        let mut c = ServerConfig::new(self.n());
        c.bug = self.cfg.bug;
        c.snapshot_after = self.cfg.snapshot_after;
        c.max_sessions = self.cfg.max_sessions;
        c.max_entries_per_append = wire::MAX_ENTRIES_PER_APPEND;
        c.election_timeout = self.cfg.election_timeout.clone();
        c.heartbeat_interval = self.cfg.heartbeat;
        c
    }

    fn push(&mut self, at: Duration, e: Event) {
        self.seq += 1;
        self.queue.insert((at, self.seq), e);
    }

    /// Starts server `i` from its disk, as `node` does (a refusal is a failure of the run).
    fn boot(&mut self, i: usize) {
        let opts = NodeOptions {
            recover: false,
            // The deployment script's first start: a brand-new cluster (`node
            // --initial-cluster-state new`); a restart on a wiped disk recovers (the default).
            empty_dir: if self.servers[i].booted {
                EmptyDir::Lost
            } else {
                EmptyDir::New
            },
            id: i,
            peers: self.peers.clone(),
            bind: None,
            data: PathBuf::from(format!("/sim/S{i}")),
            key: None,
            client_key: None,
            config: self.server_config(),
            check_source: true,
            trace: None,
            trace_to: self.events.clone(),
        };
        self.clear_inbox(i);
        let s = &mut self.servers[i];
        let net = SimNet::new(s.mailbox.clone());
        let clock = SimClock::clone(&self.clock);
        match Node::open_in(opts, clock, net, s.disk.clone()) {
            Ok(node) => {
                s.node = Some(node);
                s.restarted = true;
                s.booted = true;
                s.dying = false;
                self.after_round(i, "starts", |n| n.start());
            }
            Err(e) => self.fail(Failure::new(
                "recovery",
                format!("S{i} refused to start: {e}"),
            )),
        }
    }

    /// Runs until virtual time `until` (or a failure).
    pub fn run_until_time(&mut self, until: Duration) {
        while self.failure.is_none() {
            let Some(entry) = self.queue.first_entry() else {
                break;
            };
            let (at, _) = *entry.key();
            if at > until {
                break;
            }
            let event = entry.remove();
            self.clock.set(at);
            self.handle(event);
        }
        if self.failure.is_none() && self.now() < until {
            self.clock.set(until);
        }
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until_time(self.now() + d);
    }

    /// Runs until `done` holds (checked after every event) or `limit` of virtual time passes;
    /// whether it held.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Sim) -> bool) -> bool {
        let until = self.now() + limit;
        loop {
            if done(self) {
                return true;
            }
            if self.failure.is_some() {
                return false;
            }
            let Some((&(at, _), _)) = self.queue.first_key_value() else {
                break;
            };
            if at > until {
                break;
            }
            let event = self.queue.pop_first().expect("just seen").1;
            self.clock.set(at);
            self.handle(event);
        }
        if self.failure.is_none() {
            self.clock.set(until.max(self.now()));
        }
        done(self)
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Arrive {
                from,
                to,
                bytes,
                id,
            } => self.arrive(from, to, bytes, id),
            Event::Wake(a) if a < self.n() => self.wake_server(a),
            Event::Wake(a) => self.wake_client(a - self.n()),
            Event::ForceCrash(i) => {
                if self.servers[i].dying && self.is_up(i) {
                    self.crash_now(i, "crashes (it did not save in time)");
                }
            }
        }
    }

    fn arrive(&mut self, from: usize, to: usize, bytes: Vec<u8>, id: u64) {
        let n = self.n();
        let open = self.reachable(from, to)
            && if to < n {
                self.is_up(to)
            } else {
                self.clients[to - n].active
            };
        if !open {
            if let Some(p) = &mut self.picture {
                p.lost(id);
            }
            return;
        }
        if to < n {
            let addr = if from < n {
                server_addr(from)
            } else {
                client_addr(from - n)
            };
            self.servers[to]
                .mailbox
                .borrow_mut()
                .inbox
                .push_back((addr, bytes));
            self.servers[to].inbox_ids.push_back(id);
            let at = self.servers[to].busy_until.max(self.now());
            self.schedule(to, at);
        } else {
            let c = to - n;
            self.clients[c].inbox.push_back(bytes);
            self.clients[c].inbox_ids.push_back(id);
            self.schedule(to, self.now());
        }
    }

    /// Wakes actor `a` at `at` unless it will already wake by then.
    fn schedule(&mut self, a: usize, at: Duration) {
        let n = self.n();
        let slot = if a < n {
            &mut self.servers[a].wake_at
        } else {
            &mut self.clients[a - n].wake_at
        };
        if slot.is_some_and(|w| w <= at && w >= self.clock.elapsed()) {
            return;
        }
        *slot = Some(at);
        self.push(at, Event::Wake(a));
    }

    fn wake_server(&mut self, i: usize) {
        let now = self.now();
        let s = &mut self.servers[i];
        if s.node.is_none() || s.wake_at != Some(now) {
            return; // Down, or superseded by an earlier wake-up.
        }
        s.wake_at = None;
        if now < s.busy_until {
            let at = s.busy_until;
            self.schedule(i, at);
            return;
        }
        let queued = s.mailbox.borrow().inbox.len();
        let what = if queued > 0 {
            format!("round ({queued} datagrams)")
        } else {
            "timer".to_string()
        };
        self.after_round(i, &what, |n| n.round());
    }

    /// Runs `step` (a round, or the start) on server `i`, then charges its fsyncs, sends what it
    /// sent, checks the properties if its state changed, and schedules its next wake-up.
    fn after_round(
        &mut self,
        i: usize,
        what: &str,
        step: impl FnOnce(&mut SimNode) -> Result<(), String>,
    ) {
        let syncs = self.servers[i].disk.syncs();
        let queued = self.servers[i].mailbox.borrow().inbox.len();
        let was_leader = self.state(i).is_some_and(|s| s.is_leader());
        let node = self.servers[i]
            .node
            .as_mut()
            .expect("a round runs on a live node");
        if let Err(e) = step(node) {
            if self.servers[i].dying {
                self.crash_now(i, "loses power during an fsync");
            } else {
                self.fail(Failure::new("storage", format!("S{i}: {e}")));
            }
            return;
        }
        let mut cost = Duration::ZERO;
        for _ in syncs..self.servers[i].disk.syncs() {
            cost += self.rng.duration_in(&self.cfg.fsync);
        }
        let now = self.now();
        let stalled = self.servers[i].stalled_until;
        if self.servers[i].disk.syncs() > syncs && stalled > now {
            // The round's fsync blocks until the disk comes back, and the node with it.
            cost = cost.max(stalled - now);
        }
        self.servers[i].busy_until = now + cost;
        let read = queued - self.servers[i].mailbox.borrow().inbox.len();
        let read: Vec<u64> = self.servers[i].inbox_ids.drain(..read).collect();
        let sent = std::mem::take(&mut self.servers[i].mailbox.borrow_mut().outbox);
        let sends = sent.len();
        for (to, bytes) in sent {
            self.send(i, to, bytes, cost);
        }
        let marks = match (what, was_leader) {
            ("timer", true) => vec![Mark::Timer(i, 'H')],
            ("timer", false) => vec![Mark::Timer(i, 'E')],
            _ => Vec::new(),
        };
        self.draw_step(format!("S{i} {what}"), &read, sends, marks);
        self.observe(i, what);
        let s = &self.servers[i];
        let pending = !s.mailbox.borrow().inbox.is_empty();
        let next = if pending {
            Some(s.busy_until)
        } else {
            let node = s.node.as_ref().expect("still up");
            node.next_deadline()
                .map(|d| self.clock.offset(d).max(s.busy_until))
        };
        if let Some(at) = next {
            self.schedule(i, at);
        }
    }

    /// Sends a datagram from actor `from` to address `to`, `after` from now.
    fn send(&mut self, from: usize, to: SocketAddr, bytes: Vec<u8>, after: Duration) {
        let Some(dst) = self.actor_at(to) else {
            return;
        };
        let label = self.picture.is_some().then(|| self.label(&bytes));
        if !self.reachable(from, dst) {
            if let (Some(p), Some(label)) = (&mut self.picture, label) {
                p.lost_at_send(from, dst, label);
            }
            return;
        }
        let now = self.now();
        if self.count_rpcs && from < self.n() && dst < self.n() {
            let request = matches!(
                wire::decode(&bytes, None, self.cluster).map(|e| e.body),
                Ok(Body::Raft(
                    Msg::RequestVote { .. }
                        | Msg::AppendEntries { .. }
                        | Msg::InstallSnapshot { .. }
                ))
            );
            self.rpcs += u64::from(request);
            self.rpc_bytes += bytes.len() as u64;
        }
        let reply = self.net.reorders(from, dst) && self.is_reply(&bytes);
        let copies = self.net.fate(from, dst, reply, &mut self.rng);
        if let (Some(p), Some(label), true) = (&mut self.picture, &label, copies.is_empty()) {
            p.lost_at_send(from, dst, label.clone());
        }
        for delay in copies {
            let at = now + after + delay;
            let id = match (&mut self.picture, &label) {
                (Some(p), Some(label)) => p.sent(from, dst, label.clone()),
                _ => 0,
            };
            self.push(
                at,
                Event::Arrive {
                    from,
                    to: dst,
                    bytes: bytes.clone(),
                    id,
                },
            );
        }
    }

    /// A datagram as the diagram labels it: the message it carries, or what else it is.
    fn label(&self, bytes: &[u8]) -> String {
        match wire::decode(bytes, None, self.cluster).map(|e| e.body) {
            Ok(Body::Raft(msg)) => crate::model::describe_message(&msg),
            Ok(_) => "status".into(),
            Err(_) => "fragment".into(),
        }
    }

    /// Whether a datagram answers a request (a vote, an acknowledgement, a client response):
    /// long reordering holds back only those, as labrpc does. Fragments are snapshots.
    fn is_reply(&self, bytes: &[u8]) -> bool {
        let Ok(env) = wire::decode(bytes, None, self.cluster) else {
            return false;
        };
        matches!(
            env.body,
            Body::Raft(
                Msg::RequestVoteReply { .. }
                    | Msg::AppendEntriesReply { .. }
                    | Msg::InstallSnapshotReply { .. }
                    | Msg::RecoveryReply { .. }
                    | Msg::ClientResponse { .. }
            )
        )
    }

    fn actor_at(&self, addr: SocketAddr) -> Option<usize> {
        if let Some(i) = self.peers.iter().position(|p| *p == addr) {
            return Some(i);
        }
        (0..self.clients.len())
            .find(|&c| client_addr(c) == addr)
            .map(|c| self.n() + c)
    }

    /// When server `i`'s state changed: notes a leader after the last heal, adds a trace row,
    /// and checks the properties if [`CHECK_EVERY`] has passed since they last were.
    fn observe(&mut self, i: usize, what: &str) {
        let s = &mut self.servers[i];
        let state = s.node.as_ref().expect("up").state();
        let shown = Some(Shown::of(state));
        let restarted = std::mem::replace(&mut s.restarted, false);
        if shown == s.shown && !restarted {
            return;
        }
        s.shown = shown;
        if self.elected_after_heal.is_none() && state.is_leader() {
            self.elected_after_heal = Some(self.now().saturating_sub(self.last_heal));
        }
        self.dirty[i] = Some(self.dirty[i].unwrap_or(false) || restarted);
        self.record(format!("S{i} {what}"));
        if self.now() >= self.next_check {
            self.check_now();
        }
    }

    /// Hands every changed server's state to the model's ghost history and checks the
    /// properties. Ranges of steps are seen at once (commits in between are all recorded), so
    /// this need not run after every round: each check clones and hashes whole states.
    pub fn check_now(&mut self) {
        self.next_check = self.now() + CHECK_EVERY;
        for i in 0..self.n() {
            let Some(restarted) = self.dirty[i].take() else {
                continue;
            };
            if let Some(state) = self.state(i).cloned() {
                self.checks.observe(i, &state, restarted);
            }
        }
        if let Some(p) = self.checks.violated() {
            let mut detail = format!("seen at {:.3}s", self.now().as_secs_f64());
            for line in self.checks.explain(p) {
                detail.push_str(": ");
                detail.push_str(&line);
            }
            self.fail(Failure::new(p, detail));
        }
    }

    /// Adds a trace row (the event and every server as it is now) and logs the event at `debug`.
    fn record(&mut self, event: String) {
        tracing::debug!("{event}");
        self.add_row(event);
    }

    /// Adds a trace row without logging it.
    fn add_row(&mut self, event: String) {
        self.steps += 1;
        let servers: SmallVec<[Cell; 7]> = (0..self.n())
            .map(|i| {
                let s = &self.servers[i];
                match (s.node.as_ref().map(|n| n.state()), s.last_view) {
                    (Some(st), _) => Cell::of(st),
                    (None, Some(last)) => Cell { down: true, ..last },
                    (None, None) => Cell::never_up(),
                }
            })
            .collect();
        for (i, c) in servers.iter().enumerate() {
            if !c.down {
                self.servers[i].last_view = Some(*c);
            }
        }
        self.trace.push_back(Row {
            step: self.steps,
            at: self.now(),
            event,
            servers,
        });
        if !self.cfg.full_trace && self.trace.len() > 400 {
            self.trace.pop_front();
        }
    }

    /// The trace rows kept (all with `full_trace`, else the last 400).
    pub fn trace(&self) -> Vec<TraceStep> {
        self.trace.iter().map(Row::step).collect()
    }

    /// The run's sequence diagram so far, when `cfg.diagram` asked for one.
    pub fn picture(&self) -> Option<&Recorder> {
        self.picture.as_ref()
    }

    /// Adds a diagram step, when a diagram is recorded: `read` are the datagrams the step took
    /// in, `sends` how many it sent. A round that read, sent and changed nothing adds none.
    fn draw_step(&mut self, event: String, read: &[u64], sends: usize, marks: Vec<Mark>) {
        if self.picture.is_none() {
            return;
        }
        let (cells, down) = self.lane_cells();
        let p = self.picture.as_mut().expect("just seen");
        let changed = cells != p.last_cells();
        if read.is_empty() && sends == 0 && !changed && marks.is_empty() {
            return;
        }
        read.iter().for_each(|&id| p.delivered(id));
        let event = format!("{:>9.3}s {event}", self.clock.elapsed().as_secs_f64());
        p.step(event, cells, down, marks);
    }

    /// Each lane's state for the diagram (servers as in the trace; clients: operations done
    /// of all, and the one in flight), and which lanes are down.
    fn lane_cells(&self) -> (Vec<String>, Vec<bool>) {
        let mut cells: Vec<String> = (0..self.n())
            .map(|i| self.state(i).map_or("DOWN".into(), cell))
            .collect();
        cells.extend(self.clients.iter().map(|cl| {
            let done = cl.driver.state().results.len();
            match cl.ops.get(done).filter(|_| cl.active) {
                Some(op) => format!("{done}/{} {op}", cl.ops.len()),
                None => format!("{done}/{} done", cl.ops.len()),
            }
        }));
        let mut down: Vec<bool> = (0..self.n()).map(|i| !self.is_up(i)).collect();
        down.extend(self.clients.iter().map(|_| false));
        (cells, down)
    }

    // ---- Faults. ----

    /// Crashes server `i` between rounds: its saves were all synced, so it loses only what a
    /// real process loses (memory, queued datagrams).
    pub fn crash(&mut self, i: usize) {
        if self.is_up(i) {
            self.crash_now(i, "crashes");
        }
    }

    /// Crashes server `i` at its next fsync, as a power loss would: what that save wrote may
    /// be lost or torn, and the messages that depended on it are never sent.
    pub fn crash_in_fsync(&mut self, i: usize) {
        if self.is_up(i) && !self.servers[i].dying {
            self.servers[i].dying = true;
            self.servers[i].disk.fail_next_sync();
            let at = self.now() + TORN_CRASH_GRACE;
            self.push(at, Event::ForceCrash(i));
        }
    }

    fn crash_now(&mut self, i: usize, why: &str) {
        self.check_now();
        let s = &mut self.servers[i];
        s.node = None;
        s.dying = false;
        s.wake_at = None;
        s.busy_until = Duration::ZERO;
        s.mailbox.borrow_mut().outbox.clear();
        s.disk.crash(&mut self.rng);
        self.clear_inbox(i);
        self.checks.crashed(i);
        self.record(format!("S{i} {why}"));
        self.draw_step(format!("S{i} {why}"), &[], 0, vec![Mark::Crash(i)]);
    }

    /// Empties server `i`'s mailbox (it crashed or restarts): what was in it is lost.
    fn clear_inbox(&mut self, i: usize) {
        self.servers[i].mailbox.borrow_mut().inbox.clear();
        let ids = std::mem::take(&mut self.servers[i].inbox_ids);
        if let Some(p) = &mut self.picture {
            ids.into_iter().for_each(|id| p.lost(id));
        }
    }

    /// Restarts crashed server `i` from what its disk kept.
    pub fn restart(&mut self, i: usize) {
        if !self.is_up(i) {
            self.record(format!("S{i} restarts from its disk"));
            let event = format!("S{i} restarts from its disk");
            self.draw_step(event, &[], 0, vec![Mark::Restart(i)]);
            self.heal_now();
            self.boot(i);
        }
    }

    /// Server `i` loses its disk: crashed, wiped, restarted empty.
    pub fn wipe_and_restart(&mut self, i: usize) {
        self.crash(i);
        self.servers[i].disk.wipe();
        self.checks.wiped(i, &ServerState::restore(None));
        self.record(format!("S{i}'s disk is wiped"));
        self.draw_step(format!("S{i}'s disk is wiped"), &[], 0, Vec::new());
        self.restart(i);
    }

    /// Stalls server `i`'s disk for `d`: an fsync it issues meanwhile returns only when the
    /// stall ends, and the node's loop waits in it (reads need no fsync and go on).
    pub fn stall_disk(&mut self, i: usize, d: Duration) {
        self.servers[i].stalled_until = self.now() + d;
        let event = format!("S{i}'s disk stalls for {:.1}s", d.as_secs_f64());
        self.record(event.clone());
        self.draw_step(event, &[], 0, Vec::new());
    }

    /// Cuts server `i` off from every other actor, both ways, clients started later included
    /// (6.5840's disconnect).
    pub fn disconnect(&mut self, i: usize) {
        self.cut_off[i] = true;
        self.record(format!("S{i} is disconnected"));
        self.draw_step(format!("S{i} is disconnected"), &[], 0, Vec::new());
    }

    /// Reconnects server `i` cut off by [`disconnect`](Self::disconnect), and removes any
    /// partition's cuts to and from it.
    pub fn connect(&mut self, i: usize) {
        self.net.blocked.retain(|&(a, b)| a != i && b != i);
        self.cut_off[i] = false;
        self.record(format!("S{i} is reconnected"));
        self.draw_step(format!("S{i} is reconnected"), &[], 0, Vec::new());
        self.heal_now();
    }

    /// Cuts the direction from `a` to `b` only: `b` still reaches `a`.
    pub fn block_one_way(&mut self, a: usize, b: usize) {
        self.net.blocked.insert((a, b));
        self.record(format!("S{a} → S{b} is cut (one way)"));
        self.draw_step(format!("S{a} → S{b} is cut (one way)"), &[], 0, Vec::new());
    }

    /// Splits the servers into `groups` (clients still reach every server).
    pub fn partition(&mut self, groups: &[Vec<usize>]) {
        self.net.blocked.clear();
        for g in groups {
            for h in groups {
                if g != h {
                    for &a in g {
                        for &b in h {
                            self.net.blocked.insert((a, b));
                        }
                    }
                }
            }
        }
        self.record(format!("partition {groups:?}"));
        self.draw_step(format!("partition {groups:?}"), &[], 0, Vec::new());
    }

    /// Removes every cut.
    pub fn heal(&mut self) {
        self.net.blocked.clear();
        self.record("the network heals".into());
        self.draw_step("the network heals".into(), &[], 0, Vec::new());
        self.heal_now();
    }

    fn heal_now(&mut self) {
        self.last_heal = self.now();
        self.elected_after_heal = None;
        let top = (0..self.n())
            .filter_map(|i| self.state(i))
            .map(|s| s.term)
            .max();
        let leads = (0..self.n())
            .filter_map(|i| self.state(i))
            .any(|s| s.is_leader() && Some(s.term) == top);
        if leads {
            self.elected_after_heal = Some(Duration::ZERO);
        }
    }

    /// Whether a datagram from actor `from` to actor `to` gets through the cuts (not loss).
    fn reachable(&self, from: usize, to: usize) -> bool {
        let cut = |a: usize| a < self.n() && self.cut_off[a];
        self.net.open(from, to) && !cut(from) && !cut(to)
    }

    /// Whether server `i` is up and not cut off by [`disconnect`](Self::disconnect).
    pub fn connected(&self, i: usize) -> bool {
        self.is_up(i) && !self.cut_off[i]
    }

    /// Draws a number below `bound` from the run's generator (for scenarios' random faults).
    pub fn random(&mut self, bound: u64) -> u64 {
        self.rng.next_u64() % bound.max(1)
    }

    // ---- Clients. ----

    /// Starts a client that runs `ops` one after the other; returns its index.
    pub fn add_client(&mut self, ops: Vec<Op>) -> usize {
        let c = self.new_client(ops);
        let sends = self.client_sends(c, Duration::ZERO);
        self.draw_step(format!("C{c} starts"), &[], sends, Vec::new());
        c
    }

    /// A client whose first request is not sent yet.
    fn new_client(&mut self, ops: Vec<Op>) -> usize {
        let c = self.clients.len();
        let session = CLIENT_ID_MIN + c as u64;
        let actor = KvClient {
            cfg: ClientConfig {
                session,
                servers: self.n(),
                ops: ops.clone(),
                retry_timeout: Duration::from_millis(400)..Duration::from_millis(600),
                bug: self.cfg.bug,
            },
        };
        let mut fx = Effects::default();
        let rng = self.clock.rng(0xc11e_0000 + c as u64);
        let now = self.clock.now();
        let driver = Driver::start_at(actor, Id::from(session as usize), None, now, rng, &mut fx);
        self.clients.push(Client {
            driver,
            ops,
            fx,
            session,
            inbox: VecDeque::new(),
            inbox_ids: VecDeque::new(),
            wake_at: None,
            current: None,
            active: true,
        });
        self.invoke_next(c);
        if let Some(p) = &mut self.picture {
            p.add_lane(format!("C{c}"));
        }
        c
    }

    /// The lab's `Start(op)` on server `i`: a client session hands `op` to server `i` directly,
    /// whatever cuts the network has, and never retries it (it may or may not commit: the
    /// history records it unanswered). Returns the client's index.
    pub fn start(&mut self, i: usize, op: Op) -> usize {
        let c = self.new_client(vec![op.clone()]);
        self.clients[c].fx.sends.clear();
        self.stop_client(c);
        let session = self.clients[c].session;
        let command = crate::protocol::types::Command {
            client: session,
            request_id: 1,
            op,
        };
        let env = Envelope {
            cluster: self.cluster,
            from: session,
            body: Body::Raft(Msg::ClientRequest(command)),
        };
        if let (Some(bytes), true) = (wire::encode(&env, None), self.is_up(i)) {
            let from = client_addr(c);
            let id = match self.picture.is_some().then(|| self.label(&bytes)) {
                Some(label) => {
                    let lane = self.n() + c;
                    let p = self.picture.as_mut().expect("just seen");
                    p.sent(lane, i, label)
                }
                None => 0,
            };
            self.servers[i]
                .mailbox
                .borrow_mut()
                .inbox
                .push_back((from, bytes));
            self.servers[i].inbox_ids.push_back(id);
            self.draw_step(format!("C{c} hands it to S{i}"), &[], 1, Vec::new());
            let at = self.servers[i].busy_until.max(self.now());
            self.schedule(i, at);
        }
        c
    }

    /// Whether client `c` has run all its operations.
    pub fn client_done(&self, c: usize) -> bool {
        let cl = &self.clients[c];
        cl.driver.state().next_op() >= cl.ops.len() || cl.driver.state().expired()
    }

    /// Whether client `c`'s session was answered "session expired" (it then runs no more).
    pub fn client_expired(&self, c: usize) -> bool {
        self.clients[c].driver.state().expired()
    }

    /// How many results client `c` has so far.
    pub fn client_results(&self, c: usize) -> usize {
        self.clients[c].driver.state().results.len()
    }

    /// The results client `c` has so far, in order.
    pub fn results(&self, c: usize) -> &[crate::protocol::types::OpResult] {
        &self.clients[c].driver.state().results
    }

    /// Lets client `c` reach only `servers` (6.5840's clerks made for one side of a partition);
    /// undone by [`heal`](Self::heal) or a new partition.
    pub fn restrict_client(&mut self, c: usize, servers: &[usize]) {
        let a = self.n() + c;
        for i in (0..self.n()).filter(|i| !servers.contains(i)) {
            self.net.blocked.insert((a, i));
            self.net.blocked.insert((i, a));
        }
    }

    /// Bytes server `i`'s disk holds (every file, synced or not).
    pub fn disk_bytes(&self, i: usize) -> usize {
        self.servers[i].disk.bytes()
    }

    /// Stops client `c`: its operation in flight stays unanswered (it may or may not happen).
    pub fn stop_client(&mut self, c: usize) {
        self.clients[c].active = false;
    }

    /// Client `c`'s session id (the `client` of its commands).
    pub fn session(&self, c: usize) -> u64 {
        self.clients[c].session
    }

    fn invoke_next(&mut self, c: usize) {
        let cl = &self.clients[c];
        let next = cl.driver.state().next_op();
        let Some(op) = cl.ops.get(next).cloned() else {
            self.clients[c].current = None;
            return;
        };
        self.history.push(HistoryOp {
            client: c,
            op,
            call: self.now(),
            ret: None,
        });
        self.clients[c].current = Some(self.history.len() - 1);
    }

    fn wake_client(&mut self, c: usize) {
        let now = self.now();
        if !self.clients[c].active || self.clients[c].wake_at != Some(now) {
            return;
        }
        self.clients[c].wake_at = None;
        let mut hold = Duration::ZERO;
        while let Some(bytes) = self.clients[c].inbox.pop_front() {
            if self.client_deliver(c, &bytes) {
                hold = NO_LEADER_BACKOFF;
            }
        }
        let read: Vec<u64> = self.clients[c].inbox_ids.drain(..).collect();
        let at = self.clock.now();
        let cl = &mut self.clients[c];
        cl.driver.fire_due(at, &mut cl.fx);
        let sends = self.client_sends(c, hold);
        let (what, marks) = match (read.is_empty(), sends > 0) {
            (true, true) => ("retry timer", vec![Mark::Timer(self.n() + c, 'R')]),
            _ => ("round", Vec::new()),
        };
        self.draw_step(format!("C{c} {what}"), &read, sends, marks);
    }

    /// Hands a server's reply to client `c`; true when it was "not leader, leader unknown".
    fn client_deliver(&mut self, c: usize, bytes: &[u8]) -> bool {
        let Ok(env) = wire::decode(bytes, None, self.cluster) else {
            return false;
        };
        let Body::Raft(msg @ Msg::ClientResponse { .. }) = env.body else {
            return false;
        };
        let server = env.from as usize;
        if server >= self.n() {
            return false;
        }
        let no_leader = matches!(
            msg,
            Msg::ClientResponse {
                reply: ClientReply::NotLeader { leader: None },
                ..
            }
        );
        let now = self.clock.now();
        let cl = &mut self.clients[c];
        let before = cl.driver.state().results.len();
        cl.driver.deliver(Id::from(server), msg, now, &mut cl.fx);
        let results = &cl.driver.state().results;
        if results.len() > before {
            let result = results[before].clone();
            // An expired session's refused operation may or may not have happened: it stays
            // unanswered in the history, and the session runs nothing more.
            let expired = result == OpResult::SessionExpired;
            if let (Some(h), false) = (cl.current, expired) {
                self.history[h].ret = Some((self.now(), result));
            }
            if expired {
                self.clients[c].current = None;
            } else {
                self.invoke_next(c);
            }
        }
        no_leader
    }

    /// Sends what client `c` asked to send, `hold` from now, and schedules its next timer;
    /// how many it sent.
    fn client_sends(&mut self, c: usize, hold: Duration) -> usize {
        let sends = std::mem::take(&mut self.clients[c].fx.sends);
        let count = sends.len();
        let from = self.n() + c;
        for (to, msg) in sends {
            let env = Envelope {
                cluster: self.cluster,
                from: self.clients[c].session,
                body: Body::Raft(msg),
            };
            let to = usize::from(to);
            if let (Some(bytes), Some(&addr)) = (wire::encode(&env, None), self.peers.get(to)) {
                self.send(from, addr, bytes, hold);
            }
        }
        let deadline = self.clients[c].driver.next_deadline();
        if let Some(d) = deadline {
            let at = self.clock.offset(d).max(self.now());
            self.schedule(from, at);
        }
        count
    }
}

/// A server's trace cell: `L t2 v0 12@t2 c11` (role, term, vote, last log entry, commit), with
/// `…N|` when the log is compacted through N.
/// A server's lane in the sequence diagram: `L t3 v0 …10|17@t3 c15`.
fn cell(s: &ServerState) -> String {
    let role = match s.role_name() {
        "leader" => "L",
        "candidate" => "C",
        _ => "F",
    };
    let vote = s.voted_for.map_or("-".into(), |v| v.to_string());
    let base = if s.log.base_index > 0 {
        format!("…{}|", s.log.base_index)
    } else {
        String::new()
    };
    format!(
        "{role} t{} v{vote} {base}{}@t{} c{}",
        s.term,
        s.log.last_index(),
        s.log.last_term(),
        s.commit_index
    )
}

/// What decides whether a round adds a trace row: role, term, vote, snapshot boundary, last
/// entry and commit index (not lastApplied, which follows commits).
#[derive(Clone, Copy, PartialEq)]
struct Shown {
    role: &'static str,
    term: u64,
    vote: Option<u64>,
    base: u64,
    last: (u64, u64),
    commit: u64,
}

impl Shown {
    fn of(s: &ServerState) -> Shown {
        Shown {
            role: s.role_name(),
            term: s.term,
            vote: s.voted_for,
            base: s.log.base_index,
            last: (s.log.last_index(), s.log.last_term()),
            commit: s.commit_index,
        }
    }
}

/// A server in a trace row, kept in numbers: most rows are dropped before anyone prints them
/// (only the last 400 are kept), so their text is made only when the trace is asked for.
#[derive(Clone, Copy)]
struct Cell {
    shown: Shown,
    applied: u64,
    down: bool,
}

impl Cell {
    fn of(s: &ServerState) -> Cell {
        Cell {
            shown: Shown::of(s),
            applied: s.last_applied,
            down: false,
        }
    }

    fn never_up() -> Cell {
        Cell {
            shown: Shown {
                role: "down",
                term: 0,
                vote: None,
                base: 0,
                last: (0, 0),
                commit: 0,
            },
            applied: 0,
            down: true,
        }
    }

    fn view(&self, id: usize, never_up: bool) -> ServerView {
        let s = &self.shown;
        ServerView {
            id,
            role: if self.down { "down" } else { s.role }.to_string(),
            term: s.term,
            vote: s.vote,
            log: if never_up {
                "-".into()
            } else {
                format!("{}@t{}", s.last.0, s.last.1)
            },
            commit: s.commit,
            applied: self.applied,
            down: self.down,
        }
    }
}

/// One trace row as the run keeps it (see [`Cell`]).
struct Row {
    step: usize,
    at: Duration,
    event: String,
    servers: SmallVec<[Cell; 7]>,
}

impl Row {
    fn step(&self) -> TraceStep {
        TraceStep {
            step: self.step,
            event: format!("{:>9.3}s {}", self.at.as_secs_f64(), self.event),
            given: false,
            servers: (self.servers.iter().enumerate())
                .map(|(i, c)| c.view(i, c.down && c.shown.role == "down"))
                .collect(),
            clients: Vec::new(),
            in_flight: Vec::new(),
            action: None,
        }
    }
}

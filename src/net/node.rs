//! One Raft server over UDP: a single thread that waits for a datagram or the next timer,
//! feeds the unchanged [`RaftServer`] actor, makes its saves durable, then sends its messages.
//!
//! Several handlers may run per round (group commit): their messages are held until the last
//! state saved in the round is on disk, so no message ever leaves before the state it reflects.

use crate::net::driver::{Driver, Effects};
use crate::net::events::{log_changes, Seen};
use crate::net::storage::DurableStorage;
use crate::net::wire::{
    self, Body, Counters, Datagram, Envelope, FragmentOutcome, Key, NodeStatus, Reassembler, Trust,
    CLIENT_ID_MIN,
};
use crate::net::world::{Clock, Disk, Network, RealDisk, SystemClock, UdpNet};
use crate::protocol::server::{RaftServer, ServerConfig, ServerState, Storage};
use crate::protocol::trace::{Restored, TraceEvent, TracedConfig};
use crate::protocol::types::{Msg, ServerTimer};
use stateright::actor::Id;
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Datagrams handled per round before the round's saves and sends are flushed: a round costs one
/// fsync, so draining more of the queue per round is what makes group commit pay.
const MAX_BATCH: usize = 512;
/// Receive buffer asked for (capped by the kernel's `net.core.rmem_max`): while a round is in
/// its fsync, datagrams queue in the kernel, and the default (~208 KiB) overflows under load,
/// dropping client requests (each then costs the client a retry timeout).
const RECV_BUFFER: usize = 4 << 20;
/// Client sessions remembered (session → address), oldest forgotten first beyond this.
const MAX_CLIENTS: usize = 10_000;
/// The same snapshot (term and last index) is not sent again to a server within this: the leader
/// asks for it on every heartbeat and every client request while the follower lags, and a large
/// one takes a while to arrive and install. A lost one is resent once this passes.
const SNAPSHOT_RESEND: Duration = Duration::from_millis(250);
/// Fragments of a message to a server in flight beyond what it acknowledged (about 1.9 MB,
/// within the receive buffer asked for).
const TRANSFER_WINDOW: usize = 32;
/// Fragments not acknowledged within this are sent again, from the first unacknowledged one.
const TRANSFER_RESEND: Duration = Duration::from_millis(50);
/// Acknowledgements that repeat the same count (fragments past a gap arriving) before the
/// fragment at the gap is resent at once, as TCP's fast retransmit does after three.
const TRANSFER_DUP_ACKS: u32 = 3;
/// A fragmented message to a server is given up after this long without an acknowledgement
/// (the server is down or cut off; the protocol asks again later).
const TRANSFER_GIVE_UP: Duration = Duration::from_secs(10);

/// A message to a server that travels in fragments (Figure 13's chunked InstallSnapshot): sent
/// a window at a time beyond the fragments the server acknowledged, and resent from the first
/// unacknowledged one when acknowledgements stop, so a lost fragment costs a resend, not the
/// message, and a message of any size within `wire::MAX_MESSAGE` gets through a lossy network.
struct Transfer {
    msg_id: u64,
    addr: SocketAddr,
    datagrams: Vec<Vec<u8>>,
    /// Fragments `0..acked` are held by the server.
    acked: usize,
    /// Fragments `0..sent` were sent (since the last resend from `acked`).
    sent: usize,
    /// The snapshot it carries (term, last index), if any: the same one is not sent anew.
    snapshot: Option<(u64, u64)>,
    /// When fragments were last sent after an acknowledgement or a resend.
    sent_at: Instant,
    /// When the server last acknowledged something new (or the transfer began).
    acked_at: Instant,
    /// Acknowledgements since the last new one that repeated `acked`.
    dup_acks: u32,
}

impl Transfer {
    /// The fragments of message `msg_id` to `addr`, none sent yet.
    fn new(
        msg_id: u64,
        addr: SocketAddr,
        datagrams: Vec<Vec<u8>>,
        snapshot: Option<(u64, u64)>,
        now: Instant,
    ) -> Transfer {
        Transfer {
            msg_id,
            addr,
            datagrams,
            acked: 0,
            sent: 0,
            snapshot,
            sent_at: now,
            acked_at: now,
            dup_acks: 0,
        }
    }
}

/// Sends one fragment of a transfer, counted as sent (or failed) and as a fragment out.
fn send_fragment<N: Network>(net: &mut N, counters: &mut Counters, bytes: &[u8], to: SocketAddr) {
    match net.send_to(bytes, to) {
        Ok(_) => counters.sent += 1,
        Err(_) => counters.send_errors += 1,
    }
    counters.fragments_out += 1;
}

/// How to run one server: its place in the cluster, its data, its key and the protocol's tuning.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// This server's index in `peers`: its actor id, and the address it binds by default.
    pub id: usize,
    /// Every server's address in id order (the same on every node); also fixes the cluster id.
    pub peers: Vec<SocketAddr>,
    /// Bind here instead of `peers[id]` (e.g. behind a proxy that owns the advertised address).
    pub bind: Option<SocketAddr>,
    /// Directory of this node's durable state (see [`DurableStorage`]).
    pub data: PathBuf,
    /// The peer key (`--peer-key`, or `--key` for one key for all): with it every datagram is
    /// MAC'd and unsigned ones are refused, and only it vouches for a server's message.
    pub key: Option<Key>,
    /// The key clients hold (`--client-key`), when it is not `key`: a datagram under it may
    /// carry a client's request or status query, never a server's message. None: `key`.
    pub client_key: Option<Key>,
    /// The server actor's configuration (timeouts, batching, compaction).
    pub config: ServerConfig,
    /// Refuse server-to-server messages whose source address is not that server's address.
    pub check_source: bool,
    /// Append every handler the actor runs to this file (`node --trace`), for
    /// `check --validate-trace`.
    pub trace: Option<PathBuf>,
    /// Append them to this list instead (the simulator's `--emit-model`: every node of a run
    /// writes to one list, in the order the run took them).
    pub trace_to: Option<TraceLog>,
    /// `node --recover`: this node may have lost state that no file shows (its directory was
    /// replaced by an older copy, say), so it starts recovering whatever it finds: it neither
    /// votes nor stands until a leader has repaired it (`protocol::server::Recovery`).
    pub recover: bool,
    /// What an empty data directory means (`node --initial-cluster-state`).
    pub empty_dir: EmptyDir,
}

/// What an empty data directory means: a new server's and a deleted one's look the same.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EmptyDir {
    /// Lost state (`existing`, the default): the server recovers from its peers and is never
    /// taken for a new one, so a deleted directory can never cost an acknowledged write.
    #[default]
    Lost,
    /// Maybe new (`auto`): the server asks every peer, and starts as new once every peer has
    /// answered and none holds an entry or a snapshot or recovers from detected damage
    /// (nothing was ever written); otherwise it recovers (`protocol::server::Recovery`). For
    /// starting a brand-new cluster whose servers all start together.
    Ask,
    /// New (`new`): the server starts as new at once, for bootstrapping with a server down.
    New,
}

/// Trace events held in memory, shared by the nodes of one simulated run.
pub type TraceLog = std::sync::Arc<std::sync::Mutex<Vec<TraceEvent>>>;

/// Where a node's trace goes.
enum TraceSink {
    File(std::fs::File),
    Memory(TraceLog),
}

/// One running server: the actor's driver, its durable storage and socket, and what the current
/// round has received and has yet to send. Generic over its world (clock, network, disk) so
/// that the simulator runs this very loop; `node` uses the real world, the defaults.
pub struct Node<C: Clock = SystemClock, N: Network = UdpNet, D: Disk = RealDisk> {
    opts: NodeOptions,
    cluster: u64,
    clock: C,
    net: N,
    buf: Vec<u8>,
    storage: DurableStorage<D>,
    driver: Driver<RaftServer>,
    clients: HashMap<u64, (SocketAddr, Instant)>,
    counters: Counters,
    /// Runtime-level replies (status), sent with the round's messages.
    replies: Vec<(SocketAddr, Envelope)>,
    /// Protocol messages received this round, delivered together once the queue is drained.
    inbox: Vec<(Id, Msg)>,
    fx: Effects,
    /// Fragmented messages being reassembled, per server.
    reassembler: Reassembler,
    /// The id of the next message sent in fragments (random start, so a restart does not reuse
    /// the ids of partial messages its peers may still hold).
    next_msg_id: u64,
    /// Per server: the last snapshot sent to it, (term, last index, when).
    snapshot_sent: HashMap<usize, (u64, u64, Instant)>,
    /// Per server: the fragmented message being sent to it.
    transfers: HashMap<usize, Transfer>,
    /// What the log last reported of the server (role, term, commit, snapshot).
    seen: Seen,
    /// `--trace`: the file, and the round's events not yet written.
    trace: Option<(TraceSink, Vec<TraceEvent>)>,
    /// Peers that answered, while this node recovered, that they are recovering too (logged once).
    recovering_peers: std::collections::HashSet<u64>,
}

impl Node {
    /// Binds the socket and restores the saved state from the real disk (refusing a damaged
    /// file).
    pub fn open(opts: NodeOptions) -> Result<Node, String> {
        check_id(&opts)?;
        let addr = opts.bind.unwrap_or(opts.peers[opts.id]);
        let socket = UdpSocket::bind(addr).map_err(|e| format!("cannot bind {addr}: {e}"))?;
        // Best effort: a smaller buffer only means more drops under load, which Raft tolerates.
        let _ = set_recv_buffer(&socket, RECV_BUFFER);
        Node::open_in(opts, SystemClock, UdpNet::new(socket), RealDisk)
    }
}

/// Refuses an id outside the peer list.
fn check_id(opts: &NodeOptions) -> Result<(), String> {
    if opts.id >= opts.peers.len() {
        return Err(format!(
            "--id {} but --peers lists {} servers (ids 0..{})",
            opts.id,
            opts.peers.len(),
            opts.peers.len()
        ));
    }
    Ok(())
}

impl<C: Clock, N: Network, D: Disk> Node<C, N, D> {
    /// Restores the saved state from `disk` (refusing a damaged file) and runs over `net` on
    /// `clock`: the real node's constructor with the world passed in.
    pub fn open_in(opts: NodeOptions, clock: C, net: N, disk: D) -> Result<Self, String> {
        check_id(&opts)?;
        let cluster = wire::cluster_id(&opts.peers);
        let mut storage = DurableStorage::open_on(disk, &opts.data, opts.id as u64, cluster)?;
        let mut saved = storage.load()?;
        if saved.is_none() && !opts.recover {
            // Not saved: until its first save a restart finds the directory empty again.
            saved = empty_directory(&opts);
        }
        if opts.recover && !saved.as_ref().is_some_and(|s| s.recovering) {
            // Marked durably at once: a crash before the first save recovers again.
            let mut marked = saved.unwrap_or_else(Storage::wiped);
            marked.recovering = true;
            storage.save(marked.clone())?;
            tracing::warn!(
                node = opts.id,
                "--recover: starting recovering; not voting or standing until a leader has \
                 repaired this node's log"
            );
            saved = Some(marked);
        }
        if storage.torn_bytes() > 0 {
            // Past the last sync mark: a save that never returned, so nothing depended on it.
            // (A cut into what was synced is damage, and the node recovers instead.)
            tracing::warn!(
                node = opts.id,
                bytes = storage.torn_bytes(),
                "cut a torn final record off {}: an append past the last sync mark, whose save \
                 never returned (never acknowledged)",
                storage
                    .log_path()
                    .map_or(String::new(), |p| p.display().to_string())
            );
        }
        if let Some(path) = storage.recovered_without_meta() {
            tracing::warn!(
                node = opts.id,
                "the state file {} was missing: recovered the term, vote and log from {} (it \
                 starts at index 1, so no snapshot was lost) and wrote the state file again",
                storage.meta_path().display(),
                path.display()
            );
        }
        if let Some(why) = storage.damage() {
            tracing::warn!(
                node = opts.id,
                "storage damaged ({why}): the damaged files are kept as *.damaged; this node \
                 may have voted or acknowledged entries it no longer has, so it restarts \
                 recovering: it neither votes nor stands for election until a leader has \
                 repaired its log"
            );
        }
        match &saved {
            Some(s) if s.recovering => {
                tracing::info!(node = opts.id, "recovering: asking every peer for its term")
            }
            Some(s) => tracing::info!(
                node = opts.id,
                term = s.term,
                log = %s.log.summary(),
                "recovered from disk"
            ),
            None => tracing::info!(node = opts.id, "no saved state: starting empty"),
        }
        let mut fx = Effects::default();
        let driver = Driver::start_at(
            RaftServer::new(opts.config.clone()),
            Id::from(opts.id),
            saved,
            clock.now(),
            clock.rng(opts.id as u64),
            &mut fx,
        );
        let next_msg_id = clock.rng(0xf4a6 ^ opts_id_salt(cluster)).next_u64();
        let sink = match (&opts.trace, &opts.trace_to) {
            (Some(path), _) => Some(TraceSink::File(open_trace(path)?)),
            (None, Some(log)) => Some(TraceSink::Memory(log.clone())),
            (None, None) => None,
        };
        let trace = sink.map(|s| (s, vec![start_event(&opts, driver.state())]));
        Ok(Node {
            opts,
            cluster,
            clock,
            net,
            buf: vec![0u8; 65_536],
            storage,
            driver,
            clients: HashMap::new(),
            counters: Counters::default(),
            replies: Vec::new(),
            inbox: Vec::new(),
            fx,
            reassembler: Reassembler::new(),
            next_msg_id,
            snapshot_sent: HashMap::new(),
            transfers: HashMap::new(),
            seen: Seen::of(&ServerState::restore(None)),
            trace,
            recovering_peers: Default::default(),
        })
    }

    /// The cluster id this node accepts (a hash of its peers), for its startup line.
    pub fn cluster_id(&self) -> u64 {
        self.cluster
    }

    /// The actor's state, e.g. what was restored, for the startup line.
    pub fn state(&self) -> &ServerState {
        self.driver.state()
    }

    /// What the node answers to a `status` query: the actor's view and the runtime's counters.
    pub fn status(&self) -> NodeStatus {
        let s = self.driver.state();
        let mut counters = self.counters.clone();
        counters.frag_expired = self.reassembler.expired;
        counters.frag_evicted = self.reassembler.evicted;
        NodeStatus {
            id: self.opts.id as u64,
            role: s.role_name().to_string(),
            term: s.term,
            leader: s.leader,
            voted_for: s.voted_for,
            commit_index: s.commit_index,
            last_applied: s.last_applied,
            log_len: s.log.last_index(),
            snapshot_index: s.log.base_index,
            recovering: s.recovery.is_some(),
            counters,
        }
    }

    /// Runs until `stop` is set or storage fails (an error: the node must not go on unsaved).
    pub fn run(&mut self, stop: &Arc<AtomicBool>) -> Result<(), String> {
        self.start()?;
        while !stop.load(Ordering::Relaxed) {
            self.round()?;
        }
        Ok(())
    }

    /// Saves and sends what starting the actor asked for: call once, before the first round.
    pub fn start(&mut self) -> Result<(), String> {
        self.flush()
    }

    /// One turn of the loop: waits (until the next timer, at most 200 ms) for a datagram, drains
    /// up to `MAX_BATCH` (512) queued ones into the round, delivers them, fires due timers, then
    /// saves once and sends. The simulator calls this whenever a datagram reaches the node or
    /// its next timer is due, so it runs the very batching, coalescing and group commit `node`
    /// does.
    pub fn round(&mut self) -> Result<(), String> {
        let now = self.clock.now();
        let wait = self
            .next_deadline()
            .map_or(Duration::from_millis(200), |d| {
                d.saturating_duration_since(now)
            })
            .clamp(Duration::from_micros(100), Duration::from_millis(200));
        let mut buf = std::mem::take(&mut self.buf);
        // An error (e.g. an ICMP port unreachable reported on Linux for an earlier send) is
        // harmless: nothing arrived this time.
        if let Ok(Some((len, from))) = self.net.recv_from(&mut buf, Some(wait)) {
            self.on_datagram(&buf[..len], from);
            // Drain what is already queued into the same round.
            for _ in 1..MAX_BATCH {
                match self.net.recv_from(&mut buf, None) {
                    Ok(Some((len, from))) => self.on_datagram(&buf[..len], from),
                    _ => break,
                }
            }
            self.deliver_inbox();
        }
        self.buf = buf;
        let now = self.clock.now();
        self.reassembler.expire(now);
        self.resend_transfers(now);
        let fired = self.driver.fire_due(now, &mut self.fx);
        if let Some((_, events)) = &mut self.trace {
            let node = self.opts.id;
            events.extend(
                fired
                    .into_iter()
                    .map(|timer| TraceEvent::Timeout { node, timer }),
            );
        }
        self.flush()
    }

    /// Delivers the round's messages, less those a later one from the same server makes
    /// redundant (each delivery costs the actor a copy of its state).
    fn deliver_inbox(&mut self) {
        let n = self.opts.peers.len();
        let (inbox, dropped) = coalesce(std::mem::take(&mut self.inbox), n);
        self.counters.coalesced_in += dropped;
        let now = self.clock.now();
        for (src, msg) in inbox {
            if let Some((_, events)) = &mut self.trace {
                events.push(TraceEvent::Deliver {
                    node: self.opts.id,
                    from: usize::from(src) as u64,
                    msg: msg.clone(),
                });
            }
            self.driver.deliver(src, msg, now, &mut self.fx);
        }
    }

    /// When the node next has something to do without a datagram: its earliest timer, or a
    /// fragment to resend.
    pub fn next_deadline(&self) -> Option<Instant> {
        let resend = self
            .transfers
            .values()
            .map(|t| t.sent_at + TRANSFER_RESEND)
            .min();
        match (self.driver.next_deadline(), resend) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// How many saves reached the disk so far (one per round that changed durable state).
    pub fn saves(&self) -> u64 {
        self.counters.saves
    }

    fn on_datagram(&mut self, bytes: &[u8], from: SocketAddr) {
        self.counters.received += 1;
        let client_key = self.opts.client_key.as_ref().or(self.opts.key.as_ref());
        let decoded = wire::decode_trusted(bytes, self.opts.key.as_ref(), client_key, self.cluster);
        let env = match decoded {
            Ok((Datagram::Whole(env), trust)) => {
                if trust == Trust::Client && speaks_for_a_server(&env) {
                    self.counters.client_key_as_peer += 1;
                    return;
                }
                *env
            }
            Ok((Datagram::Fragment(_), Trust::Client)) => {
                // Only servers send fragments.
                self.counters.client_key_as_peer += 1;
                return;
            }
            Ok((Datagram::Fragment(frag), Trust::Peer)) => {
                self.counters.fragments_in += 1;
                match self.on_fragment(frag, from) {
                    Some(env) => env,
                    None => return,
                }
            }
            Err(e) => {
                tracing::debug!(node = self.opts.id, %from, reason = %e, "datagram dropped");
                self.counters.count(&e);
                return;
            }
        };
        self.on_envelope(env, from);
    }

    /// Only servers send fragments (a client's requests fit in a datagram), so partial messages
    /// are held for at most `n - 1` senders.
    fn on_fragment(&mut self, frag: wire::Fragment, from: SocketAddr) -> Option<Envelope> {
        let sender = frag.from;
        if !self.is_peer(sender, from) {
            self.counters.frag_unknown_sender += 1;
            return None;
        }
        let msg_id = frag.msg_id;
        let now = self.clock.now();
        let outcome = self.reassembler.insert(frag, now);
        if outcome == FragmentOutcome::Pending && self.driver.state().leader == Some(sender) {
            // A new chunk from the leader this node follows: as Figure 13's chunk RPCs do, it
            // holds off the election a large snapshot would otherwise outlast.
            let wait = self.opts.config.election_timeout.start;
            self.driver.postpone(ServerTimer::Election, now + wait);
        }
        if let Some(have) = self.reassembler.held(sender, msg_id) {
            let ack = Envelope {
                cluster: self.cluster,
                from: self.opts.id as u64,
                body: Body::FragmentAck { msg_id, have },
            };
            self.counters.frag_acks_out += 1;
            self.send(from, &ack, Some(sender as usize));
        }
        match outcome {
            FragmentOutcome::Complete(payload) => {
                match wire::decode_envelope(&payload, self.cluster) {
                    Ok(env) if env.from == sender => {
                        self.counters.reassembled += 1;
                        Some(env)
                    }
                    _ => {
                        self.counters.frag_inconsistent += 1;
                        None
                    }
                }
            }
            FragmentOutcome::Pending => None,
            FragmentOutcome::Duplicate => {
                self.counters.frag_duplicate += 1;
                None
            }
            FragmentOutcome::Malformed => {
                self.counters.frag_malformed += 1;
                None
            }
            FragmentOutcome::Oversize => {
                self.counters.frag_oversize += 1;
                None
            }
            FragmentOutcome::Inconsistent => {
                self.counters.frag_inconsistent += 1;
                None
            }
        }
    }

    /// A recovering node logs, once per peer, a peer that answers that it is recovering too:
    /// with a majority damaged the cluster stays unavailable rather than serve a history that
    /// may lack acknowledged writes, and this is where an operator learns why.
    fn note_recovering_peer(&mut self, peer: u64, msg: &Msg) {
        let recovering_too = matches!(
            msg,
            Msg::RecoveryReply {
                recovering: true,
                ..
            }
        );
        if recovering_too
            && self.driver.state().recovery.is_some()
            && self.recovering_peers.insert(peer)
        {
            tracing::warn!(
                node = self.opts.id,
                peer,
                "S{peer} is recovering from damaged storage too: its term bounds nothing, so \
                 this node waits for a leader elected by the servers that are not recovering; \
                 if a majority of the cluster is damaged (and anything was ever written), no \
                 leader can be elected and the cluster serves nothing rather than a history \
                 missing acknowledged writes"
            );
        }
    }

    /// Whether `sender` is another server of the cluster (sending from its address, if checked).
    fn is_peer(&self, sender: u64, from: SocketAddr) -> bool {
        let n = self.opts.peers.len() as u64;
        sender < n
            && sender != self.opts.id as u64
            && (!self.opts.check_source || self.opts.peers[sender as usize] == from)
    }

    fn on_envelope(&mut self, env: Envelope, from: SocketAddr) {
        match env.body {
            Body::Raft(Msg::ClientRequest(command)) => {
                if command.client < CLIENT_ID_MIN || env.from != command.client {
                    self.counters.unknown_sender += 1;
                    return;
                }
                if wire::command_size(&command) > wire::MAX_COMMAND_BYTES {
                    self.counters.oversize_command += 1;
                    return;
                }
                self.remember_client(command.client, from);
                let src = Id::from(command.client as usize);
                self.inbox.push((src, Msg::ClientRequest(command)));
            }
            Body::Raft(Msg::ClientResponse { .. }) => self.counters.unknown_sender += 1,
            Body::Raft(msg) => {
                if !self.is_peer(env.from, from) {
                    self.counters.unknown_sender += 1;
                    return;
                }
                self.note_recovering_peer(env.from, &msg);
                self.inbox.push((Id::from(env.from as usize), msg));
            }
            Body::StatusRequest { nonce } => {
                let status = self.status();
                let reply = Envelope {
                    cluster: self.cluster,
                    from: self.opts.id as u64,
                    body: Body::StatusResponse { nonce, status },
                };
                self.replies.push((from, reply));
            }
            Body::StatusResponse { .. } => self.counters.unknown_sender += 1,
            Body::FragmentAck { msg_id, have } => {
                if !self.is_peer(env.from, from) {
                    self.counters.unknown_sender += 1;
                    return;
                }
                self.on_fragment_ack(env.from as usize, msg_id, have as usize);
            }
        }
    }

    /// The server holds fragments `0..have` of the message `msg_id` being sent to it: the
    /// window moves on, and a transfer it holds whole is done.
    fn on_fragment_ack(&mut self, peer: usize, msg_id: u64, have: usize) {
        let Some(t) = self.transfers.get_mut(&peer) else {
            return;
        };
        if t.msg_id != msg_id || have < t.acked {
            return;
        }
        if have == t.acked {
            // Fragments past a gap are arriving: resend the one at the gap without waiting,
            // again every few repeats if that one is lost too.
            t.dup_acks += 1;
            if t.dup_acks % 8 == TRANSFER_DUP_ACKS && have < t.sent {
                send_fragment(
                    &mut self.net,
                    &mut self.counters,
                    &t.datagrams[have],
                    t.addr,
                );
                self.counters.frag_resent += 1;
            }
            return;
        }
        t.dup_acks = 0;
        if have >= t.datagrams.len() {
            self.transfers.remove(&peer);
            return;
        }
        t.acked = have;
        t.sent = t.sent.max(have);
        let now = self.clock.now();
        // Progress restarts the resend timer, as in TCP: only a window that stays
        // unacknowledged is sent again.
        t.acked_at = now;
        t.sent_at = now;
        self.pump(peer, now);
    }

    /// Sends the fragments of `peer`'s transfer that the window allows and were not sent yet.
    fn pump(&mut self, peer: usize, now: Instant) {
        let Some(t) = self.transfers.get_mut(&peer) else {
            return;
        };
        let end = (t.acked + TRANSFER_WINDOW).min(t.datagrams.len());
        if t.sent < end {
            t.sent_at = now;
        }
        for bytes in &t.datagrams[t.sent.min(end)..end] {
            send_fragment(&mut self.net, &mut self.counters, bytes, t.addr);
        }
        t.sent = t.sent.max(end);
    }

    /// Resends, from the first unacknowledged fragment, the transfers whose window went
    /// unacknowledged for [`TRANSFER_RESEND`]; gives up those unacknowledged for
    /// [`TRANSFER_GIVE_UP`].
    fn resend_transfers(&mut self, now: Instant) {
        let before = self.transfers.len();
        self.transfers
            .retain(|_, t| now.saturating_duration_since(t.acked_at) < TRANSFER_GIVE_UP);
        self.counters.transfers_abandoned += (before - self.transfers.len()) as u64;
        let due: Vec<usize> = (self.transfers.iter())
            .filter(|(_, t)| now.saturating_duration_since(t.sent_at) >= TRANSFER_RESEND)
            .map(|(&peer, _)| peer)
            .collect();
        for peer in due {
            let t = self.transfers.get_mut(&peer).expect("due transfers exist");
            self.counters.frag_resent += (t.sent - t.acked) as u64;
            t.sent = t.acked;
            self.pump(peer, now);
        }
    }

    fn remember_client(&mut self, session: u64, addr: SocketAddr) {
        let now = self.clock.now();
        if !self.clients.contains_key(&session) && self.clients.len() >= MAX_CLIENTS {
            if let Some(oldest) = self
                .clients
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(&s, _)| s)
            {
                self.clients.remove(&oldest);
            }
        }
        self.clients.insert(session, (addr, now));
    }

    /// Saves (durably) and only then sends: Figure 2's "before responding to RPCs".
    fn flush(&mut self) -> Result<(), String> {
        if let Some(storage) = self.fx.save.take() {
            self.storage.save(storage)?;
            self.counters.saves += 1;
        }
        self.write_trace()?;
        let seen = Seen::of(self.driver.state());
        if seen != self.seen {
            log_changes(self.opts.id, &self.seen, &seen);
            self.seen = seen;
        }
        let n = self.opts.peers.len();
        let sends = coalesce(std::mem::take(&mut self.fx.sends), n);
        self.counters.coalesced_out += sends.1;
        let now = self.clock.now();
        for (to, msg) in sends.0 {
            let idx = usize::from(to);
            let mut snapshot_key = None;
            if let Msg::InstallSnapshot { term, snapshot } = &msg {
                let key = (*term, snapshot.last_index);
                snapshot_key = Some(key);
                // Still on its way in fragments: the transfer resends what is lost.
                let in_transfer = self.transfers.get(&idx).and_then(|t| t.snapshot) == Some(key);
                match self.snapshot_sent.get(&idx) {
                    _ if in_transfer => {
                        self.counters.snapshot_throttled += 1;
                        continue;
                    }
                    Some(&(t, i, at))
                        if (t, i) == key && now.saturating_duration_since(at) < SNAPSHOT_RESEND =>
                    {
                        self.counters.snapshot_throttled += 1;
                        continue;
                    }
                    _ => {
                        tracing::info!(
                            node = self.opts.id,
                            to = idx,
                            through = key.1,
                            "snapshot sent to S{idx}"
                        );
                        self.snapshot_sent.insert(idx, (key.0, key.1, now));
                    }
                }
            }
            let addr = if idx < n {
                self.opts.peers[idx]
            } else {
                match self.clients.get(&(idx as u64)) {
                    Some((addr, _)) => *addr,
                    None => {
                        self.counters.no_route += 1;
                        continue;
                    }
                }
            };
            let env = Envelope {
                cluster: self.cluster,
                from: self.opts.id as u64,
                body: Body::Raft(msg),
            };
            let peer = (idx < n).then_some(idx);
            let msg_id = self.next_msg_id;
            if let Some(datagrams) = self.encode(&env, peer) {
                match peer {
                    Some(peer) if datagrams.len() > 1 => {
                        let t = Transfer::new(msg_id, addr, datagrams, snapshot_key, now);
                        self.start_transfer(peer, t, now);
                    }
                    _ => self.send_datagrams(addr, datagrams),
                }
            }
        }
        for (addr, env) in std::mem::take(&mut self.replies) {
            self.send(addr, &env, None);
        }
        Ok(())
    }

    /// Writes the round's trace events once its save is durable and before its messages leave,
    /// so that a trace never shows a handler whose effects a crash undid, nor a message sent by
    /// a handler it does not show. Written to the OS, not synced: a process crash keeps them.
    fn write_trace(&mut self) -> Result<(), String> {
        use std::io::Write;
        let (file, events) = match &mut self.trace {
            None => return Ok(()),
            Some((TraceSink::Memory(log), events)) => {
                log.lock()
                    .map_err(|_| "the trace list is poisoned".to_string())?
                    .append(events);
                return Ok(());
            }
            Some((TraceSink::File(file), events)) => (file, events),
        };
        let mut text = String::new();
        for event in events.drain(..) {
            let line = serde_json::to_string(&event).map_err(|e| format!("trace: {e}"))?;
            text.push_str(&line);
            text.push('\n');
        }
        file.write_all(text.as_bytes())
            .map_err(|e| format!("cannot write the trace: {e}"))
    }

    /// Sends one message at once: one datagram, or all its fragments when it does not fit in
    /// one; under the peer key to a server (`peer`), under the client key to a client.
    fn send(&mut self, addr: SocketAddr, env: &Envelope, peer: Option<usize>) {
        if let Some(datagrams) = self.encode(env, peer) {
            self.send_datagrams(addr, datagrams);
        }
    }

    /// The datagrams of one message (`None`, counted, if it exceeds `wire::MAX_MESSAGE`).
    fn encode(&mut self, env: &Envelope, peer: Option<usize>) -> Option<Vec<Vec<u8>>> {
        let key = match peer {
            Some(_) => self.opts.key.as_ref(),
            None => self.opts.client_key.as_ref().or(self.opts.key.as_ref()),
        };
        let Some(datagrams) = wire::encode_message(env, key, self.next_msg_id) else {
            self.counters.oversize_out += 1;
            return None;
        };
        if datagrams.len() > 1 {
            self.next_msg_id = self.next_msg_id.wrapping_add(1);
            self.counters.fragmented_out += 1;
        }
        Some(datagrams)
    }

    /// Starts sending a fragmented message to `peer` a window at a time (see [`Transfer`]);
    /// it replaces one still under way to that server, which a newer message supersedes.
    fn start_transfer(&mut self, peer: usize, transfer: Transfer, now: Instant) {
        if self.transfers.insert(peer, transfer).is_some() {
            self.counters.transfers_abandoned += 1;
        }
        self.pump(peer, now);
    }

    /// Sends datagrams as they are.
    fn send_datagrams(&mut self, addr: SocketAddr, datagrams: Vec<Vec<u8>>) {
        if datagrams.len() > 1 {
            self.counters.fragments_out += datagrams.len() as u64;
        }
        for bytes in datagrams {
            match self.net.send_to(&bytes, addr) {
                Ok(_) => self.counters.sent += 1,
                Err(_) => self.counters.send_errors += 1,
            }
        }
    }
}

/// Whether a message can only come from a server: everything but a client's request and a
/// status query, which is all a client key may carry.
fn speaks_for_a_server(env: &Envelope) -> bool {
    !matches!(
        env.body,
        Body::Raft(Msg::ClientRequest(_)) | Body::StatusRequest { .. }
    )
}

/// Opens `--trace FILE` for appending: a restarted node continues its own file.
fn open_trace(path: &std::path::Path) -> Result<std::fs::File, String> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot open the trace file {}: {e}", path.display()))
}

/// The event that opens a start's part of the trace: the configuration and what was restored.
fn start_event(opts: &NodeOptions, state: &ServerState) -> TraceEvent {
    TraceEvent::Start {
        node: opts.id,
        servers: opts.peers.len(),
        config: TracedConfig {
            snapshot_after: opts.config.snapshot_after,
            max_entries_per_append: opts.config.max_entries_per_append,
            max_db_bytes: opts.config.max_db_bytes,
        },
        restored: Restored::of(state),
    }
}

/// What a node starts from when its data directory is empty, said in its log.
fn empty_directory(opts: &NodeOptions) -> Option<Storage> {
    match opts.empty_dir {
        EmptyDir::New => {
            tracing::info!(node = opts.id, "no saved state: starting as a new server");
            None
        }
        EmptyDir::Ask => {
            tracing::info!(
                node = opts.id,
                "no saved state (--initial-cluster-state auto): a new server's data directory \
                 and a deleted one look the same, so it asks every peer first; it starts as new \
                 once every peer has answered and none holds an entry (nothing was ever \
                 written), and otherwise recovers from them"
            );
            Some(Storage::unknown())
        }
        EmptyDir::Lost => {
            tracing::warn!(
                node = opts.id,
                "no saved state: an empty data directory may be a deleted one, so this node \
                 recovers from its peers (it neither votes nor stands until a leader has \
                 repaired it). Starting a brand-new cluster? Start every node with \
                 --initial-cluster-state auto (or new, with a server down)"
            );
            Some(Storage::wiped())
        }
    }
}

fn opts_id_salt(cluster: u64) -> u64 {
    cluster ^ std::process::id() as u64
}

/// Asks for a receive buffer of `bytes` (the kernel may grant less); returns what it granted.
#[cfg(unix)]
pub fn set_recv_buffer(socket: &UdpSocket, bytes: usize) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    let fd = socket.as_raw_fd();
    let want = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `fd` is a valid open socket for the duration of the calls, and the pointers are
    // to live `c_int`/`socklen_t` locals of the sizes passed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&want as *const libc::c_int).cast(),
            len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut got: libc::c_int = 0;
    let mut got_len = len;
    // SAFETY: as above; `got_len` holds the size of `got`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&mut got as *mut libc::c_int).cast(),
            &mut got_len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(usize::try_from(got).unwrap_or(0))
}

/// Elsewhere the default buffer is kept: reports 0 granted.
#[cfg(not(unix))]
pub fn set_recv_buffer(_socket: &UdpSocket, _bytes: usize) -> std::io::Result<usize> {
    Ok(0)
}

/// Whether server message `later` makes `earlier` (to the same server, in the same round)
/// redundant: it carries everything `earlier` does, so the receiver learns nothing from
/// `earlier` that `later` does not tell it. Dropping a redundant message is always safe (the
/// network may drop any datagram) and loses no progress.
fn supersedes(later: &Msg, earlier: &Msg) -> bool {
    use crate::protocol::types::AppendOutcome::Matched;
    match (later, earlier) {
        // The same leader in the same term: its log only grows in a term, so two AppendEntries
        // agree on the entries they share; `later` covers `earlier`'s range and commit index.
        (
            Msg::AppendEntries {
                term: t2,
                prev_log_index: p2,
                entries: e2,
                leader_commit: c2,
                ..
            },
            Msg::AppendEntries {
                term: t1,
                prev_log_index: p1,
                entries: e1,
                leader_commit: c1,
                ..
            },
        ) => t2 == t1 && p2 <= p1 && p2 + e2.len() as u64 >= p1 + e1.len() as u64 && c2 >= c1,
        // A follower's acknowledgement of more of the log in the same term.
        (
            Msg::AppendEntriesReply {
                term: t2,
                outcome: Matched { match_index: m2 },
            },
            Msg::AppendEntriesReply {
                term: t1,
                outcome: Matched { match_index: m1 },
            },
        ) => t2 == t1 && m2 >= m1,
        // The same leader's snapshot, at least as recent.
        (
            Msg::InstallSnapshot {
                term: t2,
                snapshot: s2,
            },
            Msg::InstallSnapshot {
                term: t1,
                snapshot: s1,
            },
        ) => t2 == t1 && s2.last_index >= s1.last_index,
        _ => false,
    }
}

/// Drops the server messages of a round made redundant by a later one to (or, for a round's
/// received messages, from) the same server: the actor re-sends AppendEntries on every client
/// request and every acknowledgement, so under load a round holds many overlapping ones. Keeps
/// the order of the rest; returns how many it dropped.
fn coalesce(sends: Vec<(Id, Msg)>, servers: usize) -> (Vec<(Id, Msg)>, u64) {
    let mut slots: Vec<Option<(Id, Msg)>> = sends.into_iter().map(Some).collect();
    // Per destination server: the slot of its last AppendEntries and of its last reply.
    let mut last: HashMap<(usize, u8), usize> = HashMap::new();
    let mut dropped = 0;
    for i in 0..slots.len() {
        let Some((to, msg)) = &slots[i] else { continue };
        let dest = usize::from(*to);
        let kind = match msg {
            Msg::AppendEntries { .. } => 0u8,
            Msg::AppendEntriesReply { .. } => 1,
            Msg::InstallSnapshot { .. } => 2,
            _ => continue,
        };
        if dest >= servers {
            continue;
        }
        if let Some(&j) = last.get(&(dest, kind)) {
            let redundant = matches!(&slots[j], Some((_, earlier)) if supersedes(msg, earlier));
            if redundant {
                slots[j] = None;
                dropped += 1;
            }
        }
        last.insert((dest, kind), i);
    }
    (slots.into_iter().flatten().collect(), dropped)
}

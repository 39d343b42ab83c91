//! The client side over UDP: runs the unchanged [`KvClient`] actor (leader discovery, redirects,
//! retries with the same request id) against real servers, and the runtime-level status query.

use crate::net::driver::{Driver, Effects, Rng};
use crate::net::wire::{
    self, Body, Datagram, Envelope, FragmentOutcome, Key, NodeStatus, Reassembler, CLIENT_ID_MIN,
};
use crate::protocol::client::{ClientConfig, KvClient};
use crate::protocol::types::{ClientReply, Msg, Op, OpResult};
use stateright::actor::Id;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// After "not leader, leader unknown" (an election is on), wait this long before asking the next
/// server, so a client does not spin through the servers while they elect.
const NO_LEADER_BACKOFF: Duration = Duration::from_millis(50);

/// What a [`Session`] needs to reach the cluster, and how long it may keep trying.
pub struct ClientOptions {
    /// Every server's address in id order, as the nodes' `--peers`: server ids and the cluster
    /// id derive from it.
    pub peers: Vec<SocketAddr>,
    /// The cluster's key when the nodes run with one: datagrams are then MAC'd both ways.
    pub key: Option<Key>,
    /// How long one run may take before it fails: the caller's bound on waiting for a leader.
    pub timeout: Duration,
    /// The range the actor's retry timer is drawn from: how long to wait for a reply before
    /// asking the next server.
    pub retry: std::ops::Range<Duration>,
}

impl ClientOptions {
    /// Options with the default retry range (400..600 ms).
    pub fn new(peers: Vec<SocketAddr>, key: Option<Key>, timeout: Duration) -> Self {
        ClientOptions {
            peers,
            key,
            timeout,
            retry: Duration::from_millis(400)..Duration::from_millis(600),
        }
    }
}

fn bind_for(peers: &[SocketAddr]) -> Result<UdpSocket, String> {
    let local: SocketAddr = if peers[0].is_ipv4() {
        "0.0.0.0:0".parse().expect("valid")
    } else {
        "[::]:0".parse().expect("valid")
    };
    UdpSocket::bind(local).map_err(|e| format!("cannot bind a client socket: {e}"))
}

/// A fresh session id (>= CLIENT_ID_MIN, below 2^62 + CLIENT_ID_MIN so it fits an actor `Id`
/// on 64-bit targets): the time in milliseconds (42 bits, until 2109), then 20 bits drawn at
/// random once per process and counted up per session. Ids grow with the time a session starts
/// because the servers expire the lowest ids first (`node --max-sessions`) and refuse any id at
/// or below the highest expired one: a new session must come after them. The price of the
/// order: two processes starting sessions in the same millisecond share an id with probability
/// 2^-20 (sessions of one process never do, up to 2^20 per millisecond); fully random ids had
/// 62 random bits.
pub fn new_session(salt: u64) -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static BASE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let base = *BASE.get_or_init(|| Rng::seeded(salt ^ 0x5e55_1011).next_u64());
    let low = base.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) & ((1 << 20) - 1);
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    CLIENT_ID_MIN + ((millis & ((1 << 42) - 1)) << 20 | low)
}

/// A client session: runs operations one after the other through [`KvClient`].
pub struct Session {
    opts: ClientOptions,
    cluster: u64,
    session: u64,
    socket: UdpSocket,
    buf: Vec<u8>,
    /// Replies too large for one datagram (a Get of a large value) arrive in fragments.
    reassembler: Reassembler,
    /// Whether a run has used `session`: its request ids start over with each run, so a later
    /// run takes a new session id (the servers would otherwise answer it from their
    /// deduplication table with the earlier run's results) and a new socket (a late or
    /// duplicated answer to the earlier run would otherwise be taken for this one's).
    used: bool,
}

impl Session {
    /// Binds a fresh socket and draws a random session id, so concurrent clients (and later
    /// sessions of one) never share request ids.
    pub fn new(opts: ClientOptions) -> Result<Session, String> {
        let socket = bind_for(&opts.peers)?;
        let cluster = wire::cluster_id(&opts.peers);
        let session = new_session(socket.local_addr().map_or(0, |a| a.port() as u64));
        Ok(Session {
            opts,
            cluster,
            session,
            socket,
            buf: vec![0u8; 65_536],
            reassembler: Reassembler::new(),
            used: false,
        })
    }

    /// Runs `ops` in order, each once even across retries; returns their results, or an error
    /// when the whole run did not finish within the timeout (then some may have been applied).
    pub fn run(&mut self, ops: Vec<Op>) -> Result<Vec<OpResult>, String> {
        let mut results = Vec::with_capacity(ops.len());
        self.run_until(ops, None, |_, r, _| {
            results.push(r);
            true
        })?;
        Ok(results)
    }

    /// Runs `ops` in order until all are done, `stop_at` passes, or `on_done` returns false.
    /// `on_done(index, result, latency)` is called as each is applied. Returns how many finished.
    pub fn run_until(
        &mut self,
        ops: Vec<Op>,
        stop_at: Option<Instant>,
        mut on_done: impl FnMut(usize, OpResult, Duration) -> bool,
    ) -> Result<usize, String> {
        ops.iter().try_for_each(check_op_size)?;
        if ops.is_empty() {
            return Ok(0);
        }
        let mut run = self.start_run(ops, stop_at);
        loop {
            run.flush_sends(self);
            let now = Instant::now();
            if let Some(outcome) = run.outcome(now, self.opts.timeout) {
                return outcome;
            }
            let wait = run.wait_time(now);
            if let Some(done) = self.receive_one(&mut run, wait, &mut on_done)? {
                return Ok(done);
            }
            run.driver.fire_due(Instant::now(), &mut run.fx);
        }
    }

    /// Starts a [`KvClient`] actor for `ops` under this session's id (a new one after the first
    /// run) and the run's clocks.
    fn start_run(&mut self, ops: Vec<Op>, stop_at: Option<Instant>) -> Run {
        if self.used {
            // Replies carry only a request id, which starts over: late answers to the earlier
            // run must not reach this one, so it gets its own socket too.
            if let Ok(socket) = bind_for(&self.opts.peers) {
                self.socket = socket;
            }
            let port = self.socket.local_addr().map_or(0, |a| a.port() as u64);
            self.session = new_session(port);
        }
        self.used = true;
        let total = ops.len();
        let actor = KvClient {
            cfg: ClientConfig {
                session: self.session,
                servers: self.opts.peers.len(),
                ops,
                retry_timeout: self.opts.retry.clone(),
                bug: None,
            },
        };
        let started = Instant::now();
        let mut fx = Effects::default();
        let driver = Driver::start(actor, Id::from(self.session as usize), None, &mut fx);
        Run {
            driver,
            fx,
            total,
            deadline: started + self.opts.timeout,
            stop_at,
            op_started: Instant::now(),
            held: Vec::new(),
            held_until: None,
        }
    }

    /// Waits up to `wait` for one datagram and hands a server's reply to the actor. `Some(n)`
    /// when `on_done` asked to stop, `n` operations having finished.
    fn receive_one(
        &mut self,
        run: &mut Run,
        wait: Duration,
        on_done: &mut impl FnMut(usize, OpResult, Duration) -> bool,
    ) -> Result<Option<usize>, String> {
        self.socket
            .set_read_timeout(Some(wait))
            .map_err(|e| format!("socket: {e}"))?;
        // A timeout (WouldBlock / TimedOut) or an error such as an ICMP port unreachable for an
        // earlier send: nothing to deliver this time.
        let Ok((len, from)) = self.socket.recv_from(&mut self.buf) else {
            return Ok(None);
        };
        let Some((server, msg)) = self.accept(len, from) else {
            return Ok(None);
        };
        Ok(run.deliver(server, msg, on_done))
    }

    /// A datagram from one of the servers carrying a protocol message (whole, or the last
    /// fragment of one), else `None`.
    fn accept(&mut self, len: usize, from: SocketAddr) -> Option<(usize, Msg)> {
        let datagram =
            wire::decode_datagram(&self.buf[..len], self.opts.key.as_ref(), self.cluster).ok()?;
        let env = match datagram {
            Datagram::Whole(env) => *env,
            Datagram::Fragment(frag) => {
                let sender = usize::try_from(frag.from).ok()?;
                if self.opts.peers.get(sender) != Some(&from) {
                    return None;
                }
                match self.reassembler.insert(frag, Instant::now()) {
                    FragmentOutcome::Complete(json) => {
                        wire::decode_envelope(&json, self.cluster).ok()?
                    }
                    _ => return None,
                }
            }
        };
        let server = usize::try_from(env.from).ok()?;
        if self.opts.peers.get(server) != Some(&from) {
            return None;
        }
        match env.body {
            Body::Raft(msg @ Msg::ClientResponse { .. }) => Some((server, msg)),
            _ => None,
        }
    }

    fn send_to_server(&self, server: usize, msg: Msg) {
        let Some(&addr) = self.opts.peers.get(server) else {
            return;
        };
        let env = Envelope {
            cluster: self.cluster,
            from: self.session,
            body: Body::Raft(msg),
        };
        if let Some(bytes) = wire::encode(&env, self.opts.key.as_ref()) {
            let _ = self.socket.send_to(&bytes, addr);
        }
    }
}

/// Refuses an operation whose command would exceed what a server accepts
/// ([`wire::MAX_COMMAND_BYTES`]), before anything is sent: retrying it could never succeed.
/// Public so that `client` can call it before a session exists and report bad usage.
pub fn check_op_size(op: &Op) -> Result<(), String> {
    let size = wire::command_size(&crate::protocol::types::Command {
        client: u64::MAX,
        request_id: u64::MAX,
        op: op.clone(),
    });
    if size > wire::MAX_COMMAND_BYTES {
        return Err(format!(
            "operation too large ({size} bytes encoded; at most {} allowed)",
            wire::MAX_COMMAND_BYTES
        ));
    }
    Ok(())
}

/// The loop state of one [`Session::run_until`]: the actor, what it asked to send, and the
/// clocks that end the run or hold sends back.
struct Run {
    driver: Driver<KvClient>,
    fx: Effects,
    /// How many operations the run has.
    total: usize,
    /// The whole run fails (timeout) once this passes.
    deadline: Instant,
    /// The run stops early (not an error) once this passes.
    stop_at: Option<Instant>,
    /// When the operation in flight started, for its latency.
    op_started: Instant,
    /// Sends held back after a leaderless redirect, until `held_until`.
    held: Vec<(Id, Msg)>,
    held_until: Option<Instant>,
}

impl Run {
    /// Sends what the actor asked for, unless held back after a leaderless redirect.
    fn flush_sends(&mut self, session: &Session) {
        self.held.append(&mut self.fx.sends);
        if self.held_until.is_none_or(|t| Instant::now() >= t) {
            self.held_until = None;
            for (to, msg) in self.held.drain(..) {
                session.send_to_server(usize::from(to), msg);
            }
        }
    }

    /// `Some` once the run is over: all done or `stop_at` passed (how many finished), or the
    /// timeout passed (an error).
    fn outcome(&self, now: Instant, timeout: Duration) -> Option<Result<usize, String>> {
        let done = self.driver.state().next_op();
        if done >= self.total || self.stop_at.is_some_and(|s| now >= s) {
            return Some(Ok(done));
        }
        if now >= self.deadline {
            return Some(Err(format!(
                "timed out after {:.1}s: no leader answered (completed {done} of {} \
                 operations; the one in flight may still be applied)",
                timeout.as_secs_f64(),
                self.total
            )));
        }
        None
    }

    /// How long to wait for a datagram: until the next timer, the held sends' release, the
    /// stop or the deadline, whichever is first (within 100 µs..200 ms).
    fn wait_time(&self, now: Instant) -> Duration {
        let mut wake = self
            .driver
            .next_deadline()
            .unwrap_or(self.deadline)
            .min(self.deadline);
        if let Some(h) = self.held_until {
            wake = wake.min(h);
        }
        if let Some(s) = self.stop_at {
            wake = wake.min(s);
        }
        wake.saturating_duration_since(now)
            .clamp(Duration::from_micros(100), Duration::from_millis(200))
    }

    /// Hands a server's reply to the actor, holding sends back after "no leader known", and
    /// reports an operation it completes to `on_done`. `Some(n)` when `on_done` asked to stop.
    fn deliver(
        &mut self,
        server: usize,
        msg: Msg,
        on_done: &mut impl FnMut(usize, OpResult, Duration) -> bool,
    ) -> Option<usize> {
        let before = self.driver.state().next_op();
        if let Msg::ClientResponse {
            reply: ClientReply::NotLeader { leader: None },
            ..
        } = &msg
        {
            self.held_until = Some(Instant::now() + NO_LEADER_BACKOFF);
        }
        self.driver
            .deliver(Id::from(server), msg, Instant::now(), &mut self.fx);
        let r = self.driver.state().results.get(before)?;
        let now = Instant::now();
        // An expired session can run nothing more (the actor sends nothing after it).
        let expired = *r == OpResult::SessionExpired;
        let keep_going = on_done(before, r.clone(), now - self.op_started) && !expired;
        self.op_started = now;
        (!keep_going).then_some(before + 1)
    }
}

/// Asks every server for its status; `None` for those that did not answer within `timeout`.
pub fn query_status(
    peers: &[SocketAddr],
    key: Option<&Key>,
    timeout: Duration,
) -> Result<Vec<Option<NodeStatus>>, String> {
    let socket = bind_for(peers)?;
    let cluster = wire::cluster_id(peers);
    let me = new_session(7);
    let nonce = Rng::seeded(me).next_u64();
    let mut answers: Vec<Option<NodeStatus>> = vec![None; peers.len()];
    let deadline = Instant::now() + timeout;
    let mut next_send = Instant::now();
    let mut buf = vec![0u8; 65_536];
    while answers.iter().any(Option::is_none) {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        if now >= next_send {
            let env = Envelope {
                cluster,
                from: me,
                body: Body::StatusRequest { nonce },
            };
            if let Some(bytes) = wire::encode(&env, key) {
                for (i, addr) in peers.iter().enumerate() {
                    if answers[i].is_none() {
                        let _ = socket.send_to(&bytes, addr);
                    }
                }
            }
            next_send = now + Duration::from_millis(150);
        }
        let wait = next_send
            .min(deadline)
            .saturating_duration_since(now)
            .max(Duration::from_micros(100));
        socket
            .set_read_timeout(Some(wait))
            .map_err(|e| format!("socket: {e}"))?;
        if let Ok((len, from)) = socket.recv_from(&mut buf) {
            let Ok(env) = wire::decode(&buf[..len], key, cluster) else {
                continue;
            };
            if let Body::StatusResponse { nonce: n, status } = env.body {
                let i = status.id as usize;
                if n == nonce && i < peers.len() && peers[i] == from && env.from == status.id {
                    answers[i] = Some(status);
                }
            }
        }
    }
    Ok(answers)
}

/// The status of one node as the `status --json` object.
pub fn status_json(id: usize, status: &Option<NodeStatus>) -> serde_json::Value {
    match status {
        Some(s) => serde_json::json!({
            "id": s.id,
            "role": s.role,
            "term": s.term,
            "leader": s.leader,
            "voted_for": s.voted_for,
            "commit_index": s.commit_index,
            "last_applied": s.last_applied,
            "log_len": s.log_len,
            "snapshot_index": s.snapshot_index,
            "drops": {
                "total": s.counters.dropped(),
                "malformed": s.counters.malformed,
                "oversize": s.counters.oversize,
                "wrong_version": s.counters.wrong_version,
                "bad_mac": s.counters.bad_mac,
                "wrong_cluster": s.counters.wrong_cluster,
                "unknown_sender": s.counters.unknown_sender,
                "oversize_command": s.counters.oversize_command,
                "frag_malformed": s.counters.frag_malformed,
                "frag_oversize": s.counters.frag_oversize,
                "frag_inconsistent": s.counters.frag_inconsistent,
                "frag_unknown_sender": s.counters.frag_unknown_sender,
            },
            "counters": s.counters,
        }),
        None => serde_json::json!({
            "id": id,
            "role": "unreachable",
            "term": null,
            "leader": null,
            "commit_index": null,
            "last_applied": null,
            "log_len": null,
        }),
    }
}

/// The `status` table for people: one line per node, unreachable ones marked as such.
pub fn status_table(statuses: &[Option<NodeStatus>], peers: &[SocketAddr]) -> String {
    let mut out = format!(
        "{:<3} {:<22} {:<11} {:>5} {:>6} {:>7} {:>7} {:>7} {:>6}\n",
        "id", "address", "role", "term", "leader", "commit", "applied", "log", "drops"
    );
    for (i, s) in statuses.iter().enumerate() {
        let addr = peers[i].to_string();
        match s {
            Some(s) => out.push_str(&format!(
                "{:<3} {:<22} {:<11} {:>5} {:>6} {:>7} {:>7} {:>7} {:>6}\n",
                i,
                addr,
                s.role,
                s.term,
                s.leader.map_or("-".into(), |l| l.to_string()),
                s.commit_index,
                s.last_applied,
                s.log_len,
                s.counters.dropped()
            )),
            None => out.push_str(&format!("{:<3} {:<22} unreachable\n", i, addr)),
        }
    }
    out
}

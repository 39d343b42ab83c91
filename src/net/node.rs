//! One Raft server over UDP: a single thread that waits for a datagram or the next timer,
//! feeds the unchanged [`RaftServer`] actor, makes its saves durable, then sends its messages.
//!
//! Several handlers may run per round (group commit): their messages are held until the last
//! state saved in the round is on disk, so no message ever leaves before the state it reflects.

use crate::net::driver::{Driver, Effects};
use crate::net::storage::DurableStorage;
use crate::net::wire::{self, Body, Counters, Envelope, Key, NodeStatus, CLIENT_ID_MIN};
use crate::server::{RaftServer, ServerConfig, ServerState};
use crate::types::Msg;
use stateright::actor::Id;
use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Datagrams handled per round before the round's saves and sends are flushed.
const MAX_BATCH: usize = 64;
/// Client sessions remembered (session → address), oldest forgotten first beyond this.
const MAX_CLIENTS: usize = 10_000;

#[derive(Clone, Debug)]
pub struct NodeOptions {
    pub id: usize,
    pub peers: Vec<SocketAddr>,
    /// Bind here instead of `peers[id]` (e.g. behind a proxy that owns the advertised address).
    pub bind: Option<SocketAddr>,
    pub data: PathBuf,
    pub key: Option<Key>,
    pub config: ServerConfig,
    /// Refuse server-to-server messages whose source address is not that server's address.
    pub check_source: bool,
}

pub struct Node {
    opts: NodeOptions,
    cluster: u64,
    socket: UdpSocket,
    storage: DurableStorage,
    driver: Driver<RaftServer>,
    clients: HashMap<u64, (SocketAddr, Instant)>,
    counters: Counters,
    /// Runtime-level replies (status), sent with the round's messages.
    replies: Vec<(SocketAddr, Envelope)>,
    fx: Effects,
}

impl Node {
    /// Restores the saved state (refusing a damaged file) and binds the socket.
    pub fn open(opts: NodeOptions) -> Result<Node, String> {
        if opts.id >= opts.peers.len() {
            return Err(format!(
                "--id {} but --peers lists {} servers (ids 0..{})",
                opts.id,
                opts.peers.len(),
                opts.peers.len()
            ));
        }
        let cluster = wire::cluster_id(&opts.peers);
        let storage = DurableStorage::open(&opts.data, opts.id as u64, cluster)?;
        let saved = storage.load()?;
        let addr = opts.bind.unwrap_or(opts.peers[opts.id]);
        let socket = UdpSocket::bind(addr).map_err(|e| format!("cannot bind {addr}: {e}"))?;
        let mut fx = Effects::default();
        let driver = Driver::start(
            RaftServer::new(opts.config.clone()),
            Id::from(opts.id),
            saved,
            &mut fx,
        );
        Ok(Node {
            opts,
            cluster,
            socket,
            storage,
            driver,
            clients: HashMap::new(),
            counters: Counters::default(),
            replies: Vec::new(),
            fx,
        })
    }

    pub fn cluster_id(&self) -> u64 {
        self.cluster
    }

    pub fn state(&self) -> &ServerState {
        self.driver.state()
    }

    pub fn status(&self) -> NodeStatus {
        let s = self.driver.state();
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
            counters: self.counters.clone(),
        }
    }

    /// Runs until `stop` is set or storage fails (an error: the node must not go on unsaved).
    pub fn run(&mut self, stop: &Arc<AtomicBool>) -> Result<(), String> {
        self.flush()?;
        let mut buf = vec![0u8; 65_536];
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            let wait = self
                .driver
                .next_deadline()
                .map_or(Duration::from_millis(200), |d| {
                    d.saturating_duration_since(now)
                })
                .clamp(Duration::from_micros(100), Duration::from_millis(200));
            self.socket
                .set_read_timeout(Some(wait))
                .map_err(|e| format!("socket: {e}"))?;
            match self.socket.recv_from(&mut buf) {
                Ok((len, from)) => {
                    self.on_datagram(&buf[..len], from);
                    // Drain what is already queued into the same round.
                    self.socket
                        .set_nonblocking(true)
                        .map_err(|e| format!("socket: {e}"))?;
                    for _ in 1..MAX_BATCH {
                        match self.socket.recv_from(&mut buf) {
                            Ok((len, from)) => self.on_datagram(&buf[..len], from),
                            Err(_) => break,
                        }
                    }
                    self.socket
                        .set_nonblocking(false)
                        .map_err(|e| format!("socket: {e}"))?;
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                // E.g. ICMP port unreachable reported on Linux for an earlier send: harmless.
                Err(_) => {}
            }
            self.driver.fire_due(Instant::now(), &mut self.fx);
            self.flush()?;
        }
        Ok(())
    }

    fn on_datagram(&mut self, bytes: &[u8], from: SocketAddr) {
        self.counters.received += 1;
        let env = match wire::decode(bytes, self.opts.key.as_ref(), self.cluster) {
            Ok(env) => env,
            Err(e) => {
                self.counters.count(&e);
                return;
            }
        };
        let n = self.opts.peers.len() as u64;
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
                self.driver
                    .deliver(src, Msg::ClientRequest(command), &mut self.fx);
            }
            Body::Raft(Msg::ClientResponse { .. }) => self.counters.unknown_sender += 1,
            Body::Raft(msg) => {
                let known = env.from < n
                    && env.from != self.opts.id as u64
                    && (!self.opts.check_source || self.opts.peers[env.from as usize] == from);
                if !known {
                    self.counters.unknown_sender += 1;
                    return;
                }
                self.driver
                    .deliver(Id::from(env.from as usize), msg, &mut self.fx);
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
        }
    }

    fn remember_client(&mut self, session: u64, addr: SocketAddr) {
        let now = Instant::now();
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
            self.storage.save(&storage)?;
            self.counters.saves += 1;
        }
        let n = self.opts.peers.len();
        for (to, msg) in std::mem::take(&mut self.fx.sends) {
            let idx = usize::from(to);
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
            self.send(addr, &env);
        }
        for (addr, env) in std::mem::take(&mut self.replies) {
            self.send(addr, &env);
        }
        Ok(())
    }

    fn send(&mut self, addr: SocketAddr, env: &Envelope) {
        let Some(bytes) = wire::encode(env, self.opts.key.as_ref()) else {
            self.counters.oversize_out += 1;
            return;
        };
        match self.socket.send_to(&bytes, addr) {
            Ok(_) => self.counters.sent += 1,
            Err(_) => self.counters.send_errors += 1,
        }
    }
}

//! The real deployment: the same [`RaftServer`](crate::protocol::server::RaftServer) and
//! [`KvClient`](crate::protocol::client::KvClient) actors the checker explores, driven over UDP.
//!
//! - [`wire`]: datagram format (version, cluster id, optional HMAC-SHA256), size limits, and
//!   fragmentation and reassembly of messages larger than one datagram.
//! - [`storage`]: crash-safe storage: an atomically replaced meta file and an append-only,
//!   checksummed log (one record and one fdatasync per save).
//! - [`driver`]: runs an actor in real time (timers, out commands).
//! - [`node`]: one server process; [`client`]: client sessions and the status query.
//! - [`cluster`]: local multi-process clusters for `cluster`, `bench` and the tests.
//! - [`events`]: what a node logs.
//! - [`world`]: the clock, network and disk the node reaches the outside through (real ones
//!   here; the simulator has virtual ones).
//!
//! Without `--key`, datagrams are not authenticated: anyone who can send UDP to the nodes can
//! forge votes, entries or client requests. Run keyless only on a trusted network.

pub mod client;
pub mod cluster;
pub mod driver;
pub mod events;
pub mod node;
pub mod storage;
pub mod wire;
pub mod world;

/// The environment variables the binaries read for `--peers` and the keys.
pub const ENV_VARS: [&str; 4] = ["RAFT_PEERS", "RAFT_KEY", "RAFT_PEER_KEY", "RAFT_CLIENT_KEY"];

/// Makes an empty `RAFT_PEERS`, `RAFT_KEY`, `RAFT_PEER_KEY` or `RAFT_CLIENT_KEY` count as
/// unset (`RAFT_KEY= client ...` runs keyless), as shells treat empty variables; clap would
/// instead read it as a missing value and refuse. Call first thing in `main`, before any thread starts: nothing else then reads the
/// environment concurrently.
pub fn ignore_empty_env() {
    for var in ENV_VARS {
        if std::env::var_os(var).is_some_and(|v| v.is_empty()) {
            std::env::remove_var(var);
        }
    }
}

/// Lets a closed stdout end the process quietly, as it ends `cat` or `grep`: `sim ... | head`
/// would otherwise panic in `println!` ("failed printing to stdout: Broken pipe"). Rust
/// ignores SIGPIPE by default; this restores the default action (terminate). Call first thing
/// in `main`.
pub fn quiet_broken_pipe() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to SIG_DFL installs no handler and touches no
    // memory of this process; it runs before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

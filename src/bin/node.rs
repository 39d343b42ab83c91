//! `node`: one Raft server over UDP, running the same `RaftServer` actor the checker explores.
//!
//! Exit status: 1 when the node cannot start (e.g. a damaged state file, named in the message)
//! or storage fails while running; 2 for bad usage.

use clap::{Parser, ValueEnum};
use raft_checked::net::node::{EmptyDir, Node, NodeOptions};
use raft_checked::net::wire::{self, Key, MAX_ENTRIES_PER_APPEND};
use raft_checked::protocol::server::ServerConfig;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(name = "node", version, about = "Run one Raft server over UDP")]
struct Args {
    /// This server's index in --peers (0-based).
    #[arg(long)]
    id: usize,
    /// Every server's UDP address, in id order: ADDR0,ADDR1,ADDR2 (the same on every node).
    #[arg(long, env = "RAFT_PEERS")]
    peers: String,
    /// Directory of this node's durable state.
    #[arg(long)]
    data: PathBuf,
    /// File holding the cluster's shared secret (at least 32 bytes, readable by its owner
    /// only): every datagram then carries an HMAC-SHA256. Without it the cluster is INSECURE:
    /// anyone who can reach it can forge messages. One key for servers and clients alike, so a
    /// client can also speak as a server: --peer-key with --client-key separates them.
    #[arg(long, env = "RAFT_KEY", conflicts_with_all = ["peer_key", "client_key"])]
    key: Option<PathBuf>,
    /// The key servers authenticate each other with; clients never hold it (give
    /// --client-key too). Datagrams under it may carry anything; under the client key only a
    /// client's request or a status query.
    #[arg(
        long,
        env = "RAFT_PEER_KEY",
        value_name = "FILE",
        requires = "client_key"
    )]
    peer_key: Option<PathBuf>,
    /// The key clients hold (`client --key` names it); with --peer-key.
    #[arg(
        long,
        env = "RAFT_CLIENT_KEY",
        value_name = "FILE",
        requires = "peer_key"
    )]
    client_key: Option<PathBuf>,
    /// How log lines look on stderr: `text` for people, `json` (one object per line) for
    /// machines. Which lines: `RUST_LOG` (default `info`: elections, terms, roles, snapshots,
    /// recovery; `debug` adds commits and dropped datagrams).
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Shortest election timeout, in ms: a follower that hears no leader for a random time
    /// between this and --election-max-ms starts an election.
    #[arg(long, default_value_t = 300)]
    election_min_ms: u64,
    /// Longest election timeout, in ms; the spread keeps candidates from splitting the vote.
    #[arg(long, default_value_t = 600)]
    election_max_ms: u64,
    /// How often, in ms, a leader sends AppendEntries (heartbeats) to hold its followers; must
    /// be below --election-min-ms.
    #[arg(long, default_value_t = 75)]
    heartbeat_ms: u64,
    /// Compact the log into a snapshot (the key/value map and the client dedup table) once this
    /// many applied entries sit in the log; 0 never compacts. Compaction keeps each save and each
    /// handler's work bounded as the log grows. A snapshot too large for one datagram travels in
    /// fragments, acknowledged one by one (up to 256 MiB encoded; a larger one is not sent,
    /// counted as oversize_out).
    #[arg(long, default_value_t = 1000)]
    snapshot_after: u64,
    /// Refuse writes (put, append) that would grow the keys and values past this many bytes,
    /// as etcd's NOSPACE alarm does: the client gets "no space" (exit 5), nothing changes, and
    /// reads and writes that shrink a value still work. Decided as each entry is applied, so
    /// every node decides alike: give every node the same value. The default, 128 MiB, keeps a
    /// snapshot of the store within the 256 MiB a snapshot may take on the wire, so a follower
    /// that needs one can still catch up; 0 removes the quota.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_DB_BYTES)]
    max_db_bytes: u64,
    /// Keep the deduplication records of at most this many client sessions (Raft thesis §6.3):
    /// beyond it the oldest session expires, and its requests (a retry included) are answered
    /// "session expired" (client exit 6), never applied again. Keeps the snapshot bounded however
    /// many clients come and go. Give every node the same value. 0: no bound.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    max_sessions: usize,
    /// Bind this address instead of this node's --peers address (which then belongs to a
    /// forwarder, e.g. a fault-injecting proxy; combine with --no-source-check).
    #[arg(long)]
    bind: Option<std::net::SocketAddr>,
    /// Accept server messages from any source address (e.g. behind a proxy).
    #[arg(long)]
    no_source_check: bool,
    /// This node may have lost state that no file shows (its directory was replaced by an
    /// older copy, say). It starts recovering whatever it finds: it neither votes nor stands
    /// for election until a leader has repaired its log, so it cannot vote twice in a term or
    /// help elect a leader that lacks acknowledged writes. Damage that a file shows (a bad
    /// checksum, a missing or cut file) and an empty directory (see --initial-cluster-state)
    /// need no flag.
    #[arg(long)]
    recover: bool,
    /// What an empty data directory means (a new server's and a deleted one's look the same).
    /// `existing` (default): the server's data was lost; it recovers from its peers and never
    /// starts as new. `auto`: it asks every peer first, starts as new once every peer has
    /// answered and none holds an entry (nothing was ever written), and otherwise recovers:
    /// start a brand-new cluster's nodes together with it. `new`: start as new at once, to
    /// bootstrap with a server down (never for a server whose data was lost). A directory that
    /// holds state ignores this.
    #[arg(long, value_enum, default_value_t = InitialClusterState::Existing)]
    initial_cluster_state: InitialClusterState,
    /// Exit when standard input reaches end of file (so a parent's death stops the node).
    #[arg(long)]
    exit_on_stdin_eof: bool,
    /// Append every handler the actor runs (each message in, each timer, each start with what
    /// it restored) to FILE, one JSON object per line, for `check --validate-trace`; `{id}` in
    /// FILE stands for this node's id. Example: --trace /tmp/run/trace-{id}.jsonl
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
}

/// `--initial-cluster-state`, after etcd's flag of that name (whose default is `new`; here it is
/// `existing`, which never mistakes a deleted data directory for a new server).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum InitialClusterState {
    /// An empty directory lost its state: recover from the peers.
    Existing,
    /// Ask every peer: new if nothing was ever written, recovering otherwise.
    Auto,
    /// A brand-new cluster: an empty data directory starts as new at once.
    New,
}

/// The default `--max-db-bytes`: half of what one message (a snapshot) may take on the wire,
/// leaving the rest for the session table and the encoding.
const DEFAULT_MAX_DB_BYTES: u64 = (wire::MAX_MESSAGE / 2) as u64;

/// One whole line to stderr in a single write, so lines of several nodes sharing a terminal
/// do not interleave.
fn say(line: String) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
}

/// The formats of `--log-format`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum LogFormat {
    /// One readable line per event.
    Text,
    /// One JSON object per event.
    Json,
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    raft_checked::net::quiet_broken_pipe();
    raft_checked::net::ignore_empty_env();
    let args = Args::parse();
    init_logging(args.log_format);
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say(format!("node: error: {e}"));
            ExitCode::from(1)
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let peers = wire::parse_peers(&args.peers)?;
    if args.election_min_ms == 0 || args.election_max_ms < args.election_min_ms {
        return Err("need 0 < --election-min-ms <= --election-max-ms".into());
    }
    if args.heartbeat_ms == 0 || args.heartbeat_ms >= args.election_min_ms {
        return Err("need 0 < --heartbeat-ms < --election-min-ms".into());
    }
    let client_key = match &args.client_key {
        Some(path) => Some(Key::from_file(path)?),
        None => None,
    };
    let key = match args.key.as_ref().or(args.peer_key.as_ref()) {
        Some(path) => Some(Key::from_file(path)?),
        None => {
            say(format!(
                "node {}: WARNING: no --key: datagrams are not authenticated (insecure; use only \
                 on a trusted network)",
                args.id
            ));
            None
        }
    };
    let mut config = ServerConfig::new(peers.len());
    config.max_entries_per_append = MAX_ENTRIES_PER_APPEND;
    config.snapshot_after = (args.snapshot_after > 0).then_some(args.snapshot_after);
    config.election_timeout =
        Duration::from_millis(args.election_min_ms)..Duration::from_millis(args.election_max_ms);
    config.heartbeat_interval = Duration::from_millis(args.heartbeat_ms);
    config.max_db_bytes = (args.max_db_bytes > 0).then_some(args.max_db_bytes);
    config.max_sessions = (args.max_sessions > 0).then_some(args.max_sessions);
    if args.max_db_bytes == 0 || args.max_db_bytes > DEFAULT_MAX_DB_BYTES {
        say(format!(
            "node {}: WARNING: --max-db-bytes {} allows a store whose snapshot may pass the \
             {} bytes a snapshot may take on the wire: a follower that needs it could not \
             catch up",
            args.id,
            args.max_db_bytes,
            wire::MAX_MESSAGE
        ));
    }
    let mut node = Node::open(NodeOptions {
        id: args.id,
        peers: peers.clone(),
        bind: args.bind,
        data: args.data.clone(),
        key,
        client_key,
        config,
        check_source: !args.no_source_check,
        recover: args.recover,
        empty_dir: match args.initial_cluster_state {
            InitialClusterState::Existing => EmptyDir::Lost,
            InitialClusterState::Auto => EmptyDir::Ask,
            InitialClusterState::New => EmptyDir::New,
        },
        trace: args
            .trace
            .as_ref()
            .map(|p| PathBuf::from(p.to_string_lossy().replace("{id}", &args.id.to_string()))),
        trace_to: None,
    })?;
    let s = node.state();
    say(format!(
        "node {}: listening on {} (cluster {:016x}, {} servers); restored term {} log {} from {}",
        args.id,
        args.bind.unwrap_or(peers[args.id]),
        node.cluster_id(),
        peers.len(),
        s.term,
        s.log.last_index(),
        args.data.display()
    ));
    if args.exit_on_stdin_eof {
        std::thread::spawn(|| {
            let mut sink = [0u8; 256];
            let mut stdin = std::io::stdin();
            while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
            std::process::exit(0);
        });
    }
    let stop = Arc::new(AtomicBool::new(false));
    node.run(&stop)
}

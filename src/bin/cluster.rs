//! `cluster`: start a local cluster of `node` processes on 127.0.0.1, print its peers string and
//! status, and keep it running until Ctrl-C (the nodes stop with it: they share the terminal's
//! Ctrl-C, and each exits when this process's end of its stdin pipe closes).
//!
//! Restartable: the first start on a data directory records the nodes' addresses in `DIR/peers`
//! and later starts reuse them, because the cluster id (and so the nodes' stored state) derives
//! from those addresses.
//!
//! Exit status: 1 when the cluster cannot start or every node exits; 2 for bad usage.

use clap::{CommandFactory, Parser};
use clap_complete::Shell;
use raft_checked::net::client::{query_status, status_table};
use raft_checked::net::cluster::{
    check_ports_free, cluster_peers, peers_string, save_peers, sibling_binary, LocalCluster,
    NodeFlags, PEERS_FILE,
};
use raft_checked::net::wire::Key;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const AFTER_HELP: &str = "\
Examples:
  cluster --data /tmp/raft                    # 3 nodes on free ports, recorded in /tmp/raft/peers
  cluster --data /tmp/raft                    # again after Ctrl-C: same ports, same data
  cluster --data /tmp/raft5 --nodes 5 --base-port 7000   # nodes at 127.0.0.1:7000..=7004
  cluster --data /tmp/raft --key cluster.key  # every datagram MAC'd (see `node --help`)
  export RAFT_PEERS=\"$(cat /tmp/raft/peers)\"  # then `client put k v` needs no --peers

Environment:
  RAFT_KEY  default for --key
  RAFT_PEER_KEY, RAFT_CLIENT_KEY  defaults for --peer-key, --client-key

Exit status: 1 when the cluster cannot start (e.g. a recorded port is busy, DIR/peers is
malformed or disagrees with --nodes/--base-port) or every node has exited; 2 for bad usage.";

#[derive(Parser, Debug)]
#[command(
    name = "cluster",
    version,
    about = "Run a local Raft cluster of node processes on 127.0.0.1",
    after_help = AFTER_HELP
)]
struct Args {
    /// How many node processes to start [default: 3, or on a restart the number DIR/peers
    /// records].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=64))]
    nodes: Option<u64>,
    /// Data directory: node i keeps its state in DIR/node<i>, and DIR/peers records the nodes'
    /// addresses so that starting again on DIR reuses them (and so the data).
    #[arg(long, value_name = "DIR", required_unless_present = "completions")]
    data: Option<PathBuf>,
    /// Put node i at UDP port PORT+i on 127.0.0.1 (e.g. 7000) instead of free ephemeral ports;
    /// on a restart it must match the ports DIR/peers records. Prefer it for data you keep: by
    /// the next start, another program may hold an ephemeral port chosen for you.
    #[arg(long, value_name = "PORT")]
    base_port: Option<u16>,
    /// Key file passed to every node (see `node --help`).
    #[arg(long, env = "RAFT_KEY", value_name = "FILE", conflicts_with_all = ["peer_key", "client_key"])]
    key: Option<PathBuf>,
    /// Peer key passed to every node, with --client-key: servers authenticate each other
    /// with it and clients never hold it (see `node --help`).
    #[arg(
        long,
        env = "RAFT_PEER_KEY",
        value_name = "FILE",
        requires = "client_key"
    )]
    peer_key: Option<PathBuf>,
    /// Client key passed to every node, with --peer-key: the key clients use.
    #[arg(
        long,
        env = "RAFT_CLIENT_KEY",
        value_name = "FILE",
        requires = "peer_key"
    )]
    client_key: Option<PathBuf>,
    /// Passed to every node started here (see `node --help`; 0 never compacts).
    #[arg(long, default_value_t = 1000, value_name = "ENTRIES")]
    snapshot_after: u64,
    /// Passed to every node started here when given (see `node --help`; default: the node's).
    #[arg(long, value_name = "BYTES")]
    max_db_bytes: Option<u64>,
    /// Passed to every node started here when given (see `node --help`; default: the node's).
    #[arg(long, value_name = "N")]
    max_sessions: Option<usize>,
    /// Print a completion script for SHELL on stdout and exit.
    #[arg(long, value_name = "SHELL")]
    completions: Option<Shell>,
}

fn main() -> ExitCode {
    raft_checked::net::quiet_broken_pipe();
    raft_checked::net::ignore_empty_env();
    let args = Args::parse();
    if let Some(shell) = args.completions {
        clap_complete::generate(
            shell,
            &mut Args::command(),
            "cluster",
            &mut std::io::stdout(),
        );
        return ExitCode::SUCCESS;
    }
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cluster: error: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let data = args.data.clone().ok_or("--data is required")?;
    // The status queries below are a client's: the client key when the keys are separate.
    let client_key = args.key.as_deref().or(args.client_key.as_deref());
    let key = client_key.map(Key::from_file).transpose()?;
    if let Some(peer_key) = &args.peer_key {
        Key::from_file(peer_key)?;
    }
    let node_bin = sibling_binary("node")?;
    let mut cluster = start(&args, &data, node_bin)?;
    let peers = cluster.peers.clone();
    print_banner(&args, &data, &peers);
    let started = Instant::now();
    loop {
        let statuses = query_status(&peers, key.as_ref(), Duration::from_millis(500))?;
        let leader = statuses.iter().flatten().any(|s| s.role == "leader");
        if leader || started.elapsed() > Duration::from_secs(10) {
            print!("{}", status_table(&statuses, &peers));
            if !leader {
                println!("(no leader yet)");
            }
            break;
        }
        if let Some((i, status)) = cluster.exited().first() {
            return Err(format!("node {i} exited at start ({status})"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("running; Ctrl-C stops the cluster");
    loop {
        std::thread::sleep(Duration::from_millis(500));
        for (i, status) in cluster.exited() {
            eprintln!("cluster: node {i} exited ({status})");
        }
        if cluster.children.iter().all(Option::is_none) {
            return Err("every node has exited".into());
        }
    }
}

/// Chooses the addresses (those recorded in `data`, else new ones, recorded before any node
/// writes state under them), checks they are free, and starts every node.
fn start(args: &Args, data: &Path, node_bin: PathBuf) -> Result<LocalCluster, String> {
    let peers = cluster_peers(data, args.nodes.map(|n| n as usize), args.base_port)?;
    check_ports_free(&peers).map_err(|e| {
        format!("{e}: is this cluster (or another program) already running on those ports?")
    })?;
    save_peers(data, &peers)?;
    let mut cluster = LocalCluster::with_peers(node_bin, peers, data, args.key.clone());
    cluster.extra_args.extend(node_flags(args).args());
    cluster.start_all()?;
    Ok(cluster)
}

/// What this binary passes on to the nodes it starts.
fn node_flags(args: &Args) -> NodeFlags {
    NodeFlags {
        snapshot_after: args.snapshot_after,
        max_db_bytes: args.max_db_bytes,
        max_sessions: args.max_sessions,
        split_keys: args.peer_key.clone().zip(args.client_key.clone()),
    }
}

/// The lines a person (or a script reading `peers:`) needs to reach the cluster.
fn print_banner(args: &Args, data: &Path, peers: &[std::net::SocketAddr]) {
    let peers = peers_string(peers);
    println!("peers: {peers}");
    println!(
        "data:  {} (addresses in {}; start again with the same --data to resume)",
        data.display(),
        data.join(PEERS_FILE).display()
    );
    let key_arg = args
        .key
        .as_ref()
        .or(args.client_key.as_ref())
        .map_or(String::new(), |k| format!(" --key {}", k.display()));
    println!("try:   client --peers {peers}{key_arg} put k v");
}

//! `cluster`: start a local cluster of `node` processes on 127.0.0.1, print its peers string and
//! status, and keep it running until Ctrl-C (the nodes stop with it: they share the terminal's
//! Ctrl-C, and each exits when this process's end of its stdin pipe closes).

use clap::Parser;
use raft_checked::net::client::{query_status, status_table};
use raft_checked::net::cluster::{peers_string, sibling_binary, LocalCluster};
use raft_checked::net::wire::Key;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    name = "cluster",
    version,
    about = "Run a local Raft cluster of node processes on 127.0.0.1"
)]
struct Args {
    /// How many node processes to start.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=64))]
    nodes: u64,
    /// Data directory; node i keeps its state in DIR/node<i>.
    #[arg(long)]
    data: PathBuf,
    /// Key file passed to every node (see `node --help`).
    #[arg(long)]
    key: Option<PathBuf>,
    /// Passed to every node started here (see `node --help`; 0 never compacts).
    #[arg(long, default_value_t = 1000)]
    snapshot_after: u64,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cluster: error: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let key = args.key.as_deref().map(Key::from_file).transpose()?;
    let node_bin = sibling_binary("node")?;
    let mut cluster =
        LocalCluster::new(node_bin, args.nodes as usize, &args.data, args.key.clone())?;
    set_snapshot_after(&mut cluster, args.snapshot_after);
    cluster.start_all()?;
    let peers = cluster.peers.clone();
    println!("peers: {}", peers_string(&peers));
    let key_arg = args
        .key
        .as_ref()
        .map_or(String::new(), |k| format!(" --key {}", k.display()));
    println!(
        "try:   client --peers {}{key_arg} put k v",
        peers_string(&peers)
    );
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

fn set_snapshot_after(c: &mut LocalCluster, n: u64) {
    c.extra_args
        .extend(["--snapshot-after".to_string(), n.to_string()]);
}

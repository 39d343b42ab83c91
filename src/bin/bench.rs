//! `bench`: C concurrent clients put for T seconds against a 3-node loopback cluster (started
//! here, fsync on, unless --peers names a running one); prints ops/s and latency percentiles.

use clap::Parser;
use raft_checked::net::client::{query_status, ClientOptions, Session};
use raft_checked::net::cluster::{sibling_binary, LocalCluster};
use raft_checked::net::wire::{self, Key};
use raft_checked::protocol::types::Op;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    name = "bench",
    version,
    about = "Put throughput and latency of a Raft cluster over UDP"
)]
struct Args {
    /// Concurrent clients, each putting one key after another in its own sessions.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=256))]
    clients: u64,
    /// How long the clients put, in seconds.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Nodes of the cluster started here (ignored with --peers).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=64))]
    nodes: u64,
    /// Use this running cluster instead of starting one.
    #[arg(long)]
    peers: Option<String>,
    /// The cluster's key file, passed to the nodes started here too (see `node --help`).
    #[arg(long)]
    key: Option<PathBuf>,
    /// Bytes per value.
    #[arg(long, default_value_t = 16)]
    value_size: usize,
    /// Passed to every node started here (see `node --help`; 0 never compacts).
    #[arg(long, default_value_t = 1000)]
    snapshot_after: u64,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: error: {e}");
            ExitCode::from(1)
        }
    }
}

fn wait_for_leader(peers: &[SocketAddr], key: Option<&Key>) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        let statuses = query_status(peers, key, Duration::from_millis(500))?;
        if statuses.iter().flatten().any(|s| s.role == "leader") {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err("no leader within 15 s".into())
}

fn run(args: Args) -> Result<(), String> {
    if !(args.seconds.is_finite() && args.seconds > 0.0 && args.seconds < 1e5) {
        return Err("--seconds must be positive".into());
    }
    let key = args.key.as_deref().map(Key::from_file).transpose()?;
    let tmp = std::env::temp_dir().join(format!("raft-bench-{}", std::process::id()));
    let (peers, cluster) = match &args.peers {
        Some(p) => (wire::parse_peers(p)?, None),
        None => {
            let c = start_cluster(&args, &tmp)?;
            (c.peers.clone(), Some(c))
        }
    };
    wait_for_leader(&peers, key.as_ref())?;
    let start = Instant::now();
    let stop_at = start + Duration::from_secs_f64(args.seconds);
    let value = "v".repeat(args.value_size);
    let threads: Vec<_> = (0..args.clients)
        .map(|c| {
            let (peers, key, value) = (peers.clone(), key.clone(), value.clone());
            std::thread::spawn(move || client_loop(c, &peers, key, &value, stop_at))
        })
        .collect();
    let mut lat = Vec::new();
    let mut errors = Vec::new();
    for t in threads {
        if let Ok((mine, error)) = t.join() {
            lat.extend(mine);
            errors.extend(error);
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    drop(cluster);
    let _ = std::fs::remove_dir_all(&tmp);
    for e in &errors {
        eprintln!("bench: client error: {e}");
    }
    if lat.is_empty() {
        return Err("no operation completed".into());
    }
    report(args.clients, elapsed, lat);
    Ok(())
}

/// Starts a fresh local cluster of `--nodes` nodes (their stderr discarded) with data in `tmp`.
fn start_cluster(args: &Args, tmp: &Path) -> Result<LocalCluster, String> {
    let _ = std::fs::remove_dir_all(tmp);
    let mut c = LocalCluster::new(
        sibling_binary("node")?,
        args.nodes as usize,
        tmp,
        args.key.clone(),
    )?;
    c.quiet = true;
    set_snapshot_after(&mut c, args.snapshot_after);
    c.start_all()?;
    Ok(c)
}

/// One client's work: puts in sessions of 1000 until `stop_at`. Returns the latencies of the
/// puts done, and the error that ended it early, if one did.
fn client_loop(
    c: u64,
    peers: &[SocketAddr],
    key: Option<Key>,
    value: &str,
    stop_at: Instant,
) -> (Vec<Duration>, Option<String>) {
    let mut mine = Vec::new();
    let mut chunk = 0u64;
    while Instant::now() < stop_at {
        // A fresh session per chunk: request ids restart at 1 in each.
        let opts = ClientOptions::new(peers.to_vec(), key.clone(), Duration::from_secs(30));
        let mut session = match Session::new(opts) {
            Ok(s) => s,
            Err(e) => return (mine, Some(e)),
        };
        let ops = (0..1000)
            .map(|i| Op::Put {
                key: format!("c{c}-{chunk}-{i}"),
                value: value.to_string(),
            })
            .collect();
        let r = session.run_until(ops, Some(stop_at), |_, _, lat| {
            mine.push(lat);
            true
        });
        if let Err(e) = r {
            return (mine, Some(e));
        }
        chunk += 1;
    }
    (mine, None)
}

/// Prints throughput and latency percentiles of the puts done (`lat` is not empty).
fn report(clients: u64, elapsed: f64, mut lat: Vec<Duration>) {
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{} clients, {:.1} s, {} puts: {:.0} ops/s; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        clients,
        elapsed,
        lat.len(),
        lat.len() as f64 / elapsed,
        ms(pct(0.50)),
        ms(pct(0.99)),
        ms(*lat.last().expect("non-empty"))
    );
}

fn set_snapshot_after(c: &mut LocalCluster, n: u64) {
    c.extra_args
        .extend(["--snapshot-after".to_string(), n.to_string()]);
}

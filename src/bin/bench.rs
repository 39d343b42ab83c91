//! `bench`: C concurrent clients put for T seconds against a 3-node loopback cluster (started
//! here, fsync on, unless --peers names a running one); prints ops/s and latency percentiles,
//! or with --json one object with the run's figures.
//!
//! Latencies go into an HDR histogram: percentiles correct to 3 significant digits in bounded
//! memory, whatever the number of clients and operations.

use clap::{CommandFactory, Parser};
use clap_complete::Shell;
use hdrhistogram::Histogram;
use raft_checked::net::client::{query_status, ClientOptions, Session};
use raft_checked::net::cluster::{sibling_binary, LocalCluster, NodeFlags};
use raft_checked::net::wire::{self, Key};
use raft_checked::protocol::types::{Op, OpResult};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The most concurrent clients: each is a thread with its own UDP socket, and etcd's
/// `check perf --load=xl` runs 1000.
const MAX_CLIENTS: u64 = 1024;

/// The largest latency recorded exactly, in µs (a client's session gives up after 30 s).
const MAX_LATENCY_US: u64 = 60_000_000;

const AFTER_HELP: &str = "\
Examples:
  bench                                   # 4 clients, 5 s, against 3 nodes started here
  bench --clients 1000 --seconds 3        # etcd's `check perf --load=xl` concurrency
  bench --json | jq .latency_us.p99       # the run's figures as one JSON object
  bench --peers \"$(cat /tmp/raft/peers)\"  # a running cluster (see `cluster --data`)

JSON fields: clients, nodes (null with --peers), value_size, seconds (asked), elapsed_s, ops,
ops_per_s, latency_us {min, mean, p50, p90, p99, p999, max}, errors (clients that stopped on
an error; each is also printed on stderr).

Environment:
  RAFT_PEERS  default for --peers (then no cluster is started)
  RAFT_KEY    default for --key
  RAFT_PEER_KEY, RAFT_CLIENT_KEY  defaults for --peer-key, --client-key

Exit status: 0 when at least one put completed; 1 otherwise or when the run cannot start;
2 for bad usage.";

#[derive(Parser, Debug)]
#[command(
    name = "bench",
    version,
    about = "Put throughput and latency of a Raft cluster over UDP",
    after_help = AFTER_HELP
)]
struct Args {
    /// Concurrent clients (1..=1024), each putting one key after another in its own sessions.
    #[arg(
        long,
        default_value_t = 4,
        value_parser = clap::value_parser!(u64).range(1..=MAX_CLIENTS)
    )]
    clients: u64,
    /// How long the clients put, in seconds (e.g. 0.5).
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    seconds: f64,
    /// Nodes of the cluster started here (ignored with --peers).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=64))]
    nodes: u64,
    /// Use this running cluster instead of starting one (e.g. 127.0.0.1:7000,127.0.0.1:7001,...).
    #[arg(long, env = "RAFT_PEERS", value_name = "ADDR0,ADDR1,...")]
    peers: Option<String>,
    /// The cluster's key file, passed to the nodes started here too (see `node --help`).
    #[arg(long, env = "RAFT_KEY", value_name = "FILE", conflicts_with_all = ["peer_key", "client_key"])]
    key: Option<PathBuf>,
    /// With --client-key: the peer key passed to the nodes started here (the benchmark's
    /// clients use the client key), as `node --peer-key`.
    #[arg(
        long,
        env = "RAFT_PEER_KEY",
        value_name = "FILE",
        requires = "client_key"
    )]
    peer_key: Option<PathBuf>,
    /// The client key the benchmark's clients use (and the nodes started here get).
    #[arg(long, env = "RAFT_CLIENT_KEY", value_name = "FILE")]
    client_key: Option<PathBuf>,
    /// Bytes per value.
    #[arg(long, default_value_t = 16, value_name = "BYTES")]
    value_size: usize,
    /// Passed to every node started here (see `node --help`; 0 never compacts).
    #[arg(long, default_value_t = 1000, value_name = "ENTRIES")]
    snapshot_after: u64,
    /// Passed to every node started here when given (see `node --help`; default: the node's).
    #[arg(long, value_name = "BYTES")]
    max_db_bytes: Option<u64>,
    /// Passed to every node started here when given (see `node --help`; default: the node's).
    #[arg(long, value_name = "N")]
    max_sessions: Option<usize>,
    /// Print one JSON object with the run's figures instead of the text line.
    #[arg(long)]
    json: bool,
    /// Print a completion script for SHELL on stdout and exit.
    #[arg(long, value_name = "SHELL")]
    completions: Option<Shell>,
}

fn main() -> ExitCode {
    raft_checked::net::quiet_broken_pipe();
    raft_checked::net::ignore_empty_env();
    let args = Args::parse();
    if let Some(shell) = args.completions {
        clap_complete::generate(shell, &mut Args::command(), "bench", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    match run(args) {
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

/// What the clients measured: every completed put's latency, and why clients stopped early.
struct Measured {
    latency_us: Histogram<u64>,
    errors: Vec<String>,
    elapsed: f64,
}

fn run(args: Args) -> Result<(), String> {
    if !(args.seconds.is_finite() && args.seconds > 0.0 && args.seconds < 1e5) {
        return Err("--seconds must be positive".into());
    }
    raise_fd_limit(args.clients)?;
    // The benchmark's clients hold the client key when the keys are split.
    let key = args
        .key
        .as_deref()
        .or(args.client_key.as_deref())
        .map(Key::from_file)
        .transpose()?;
    if let Some(peer_key) = &args.peer_key {
        Key::from_file(peer_key)?;
    }
    if args.peers.is_none() && args.client_key.is_some() && args.peer_key.is_none() {
        return Err(
            "--client-key alone serves a running cluster (--peers); the nodes started \
                    here need --peer-key too"
                .into(),
        );
    }
    let tmp = std::env::temp_dir().join(format!("raft-bench-{}", std::process::id()));
    let (peers, cluster) = match &args.peers {
        Some(p) => (wire::parse_peers(p)?, None),
        None => {
            let c = start_cluster(&args, &tmp)?;
            (c.peers.clone(), Some(c))
        }
    };
    let measured = wait_for_leader(&peers, key.as_ref()).and_then(|()| measure(&args, &peers, key));
    drop(cluster);
    let _ = std::fs::remove_dir_all(&tmp);
    let measured = measured?;
    for e in &measured.errors {
        eprintln!("bench: client error: {e}");
    }
    if measured.latency_us.is_empty() {
        return Err("no operation completed".into());
    }
    if args.json {
        println!("{}", report_json(&args, &measured));
    } else {
        println!("{}", report_text(args.clients, &measured));
    }
    Ok(())
}

/// Runs `--clients` client threads for `--seconds` and gathers what they measured.
fn measure(args: &Args, peers: &[SocketAddr], key: Option<Key>) -> Result<Measured, String> {
    let hist =
        Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).map_err(|e| format!("histogram: {e}"))?;
    let hist = Arc::new(Mutex::new(hist));
    let start = Instant::now();
    let stop_at = start + Duration::from_secs_f64(args.seconds);
    let value = "v".repeat(args.value_size);
    let mut threads = Vec::new();
    let mut errors = Vec::new();
    for c in 0..args.clients {
        let (peers, key, value, hist) = (peers.to_vec(), key.clone(), value.clone(), hist.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("client{c}"))
            .spawn(move || client_loop(c, &peers, key, &value, stop_at, &hist));
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => {
                errors.push(format!("cannot start client thread {c}: {e}"));
                break;
            }
        }
    }
    for t in threads {
        match t.join() {
            Ok(error) => errors.extend(error),
            Err(_) => errors.push("a client thread panicked".into()),
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let latency_us = Arc::try_unwrap(hist)
        .map_err(|_| "a client thread still holds the histogram".to_string())?
        .into_inner()
        .map_err(|_| "a client thread panicked while recording".to_string())?;
    Ok(Measured {
        latency_us,
        errors,
        elapsed,
    })
}

/// Lifts the soft limit on open files to the hard one when the clients' sockets (one each)
/// plus some slack would not fit, so that `--clients 1024` works under a 1024 default; fails
/// clearly when even the hard limit is too low.
fn raise_fd_limit(clients: u64) -> Result<(), String> {
    let needed = clients + 64;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Ok(()); // Unknown limit: let a failing socket say so.
    }
    if lim.rlim_cur >= needed {
        return Ok(());
    }
    if lim.rlim_max < needed {
        return Err(format!(
            "--clients {clients} needs about {needed} open files, but the limit is {} \
             (raise it with `ulimit -n`)",
            lim.rlim_max
        ));
    }
    lim.rlim_cur = lim.rlim_max;
    // SAFETY: setrlimit reads only the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(format!(
            "cannot raise the open-file limit to {needed}: {}",
            std::io::Error::last_os_error()
        ));
    }
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
    c.extra_args.extend(node_flags(args).args());
    c.start_all()?;
    Ok(c)
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

/// The operations of a client's first session; each later one doubles, up to
/// [`MAX_SESSION_OPS`]. A session's operations are built (and size-checked) before it starts,
/// so 1024 clients starting with 1000 each would spend the first seconds of a short run
/// building a million puts they never send.
const FIRST_SESSION_OPS: u64 = 16;

/// The operations of a long-running client's sessions: fewer sessions, so a smaller
/// deduplication table on the servers.
const MAX_SESSION_OPS: u64 = 1000;

/// One client's work: puts in sessions of growing length until `stop_at`, recording each
/// completed put's latency in `hist`. Returns the error that ended it early, if one did.
fn client_loop(
    c: u64,
    peers: &[SocketAddr],
    key: Option<Key>,
    value: &str,
    stop_at: Instant,
    hist: &Mutex<Histogram<u64>>,
) -> Option<String> {
    let mut chunk = 0u64;
    while Instant::now() < stop_at {
        // A fresh session per chunk: request ids restart at 1 in each.
        let opts = ClientOptions::new(peers.to_vec(), key.clone(), Duration::from_secs(30));
        let mut session = match Session::new(opts) {
            Ok(s) => s,
            Err(e) => return Some(e),
        };
        let len = (FIRST_SESSION_OPS << chunk.min(10)).min(MAX_SESSION_OPS);
        let ops = (0..len)
            .map(|i| Op::Put {
                key: format!("c{c}-{chunk}-{i}"),
                value: value.to_string(),
            })
            .collect();
        // A refused put (e.g. "no space": the store reached the nodes' --max-db-bytes) ends
        // the client with that error rather than counting as a completed write.
        let mut refused = None;
        let r = session.run_until(ops, Some(stop_at), |_, result, lat| {
            if result != OpResult::Written {
                refused = Some(format!("the cluster refused a put: {result}"));
                return false;
            }
            let us = u64::try_from(lat.as_micros()).unwrap_or(u64::MAX);
            if let Ok(mut h) = hist.lock() {
                h.saturating_record(us.max(1));
            }
            true
        });
        if let Some(e) = refused {
            return Some(e);
        }
        if let Err(e) = r {
            return Some(e);
        }
        chunk += 1;
    }
    None
}

/// The text line: throughput and latency percentiles of the puts done.
fn report_text(clients: u64, m: &Measured) -> String {
    let h = &m.latency_us;
    let ms = |us: u64| us as f64 / 1e3;
    format!(
        "{} clients, {:.1} s, {} puts: {:.0} ops/s; latency p50 {:.2} ms, p90 {:.2} ms, \
         p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms{}",
        clients,
        m.elapsed,
        h.len(),
        h.len() as f64 / m.elapsed,
        ms(h.value_at_quantile(0.50)),
        ms(h.value_at_quantile(0.90)),
        ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999)),
        ms(h.max()),
        match m.errors.len() {
            0 => String::new(),
            n => format!("; {n} clients stopped on an error"),
        }
    )
}

/// The `--json` object: the run's parameters and figures (see the help's field list).
fn report_json(args: &Args, m: &Measured) -> serde_json::Value {
    let h = &m.latency_us;
    serde_json::json!({
        "clients": args.clients,
        "nodes": if args.peers.is_some() { None } else { Some(args.nodes) },
        "value_size": args.value_size,
        "seconds": args.seconds,
        "elapsed_s": m.elapsed,
        "ops": h.len(),
        "ops_per_s": h.len() as f64 / m.elapsed,
        "latency_us": {
            "min": h.min(),
            "mean": h.mean(),
            "p50": h.value_at_quantile(0.50),
            "p90": h.value_at_quantile(0.90),
            "p99": h.value_at_quantile(0.99),
            "p999": h.value_at_quantile(0.999),
            "max": h.max(),
        },
        "errors": m.errors.len(),
    })
}

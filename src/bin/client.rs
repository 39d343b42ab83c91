//! `client`: talk to a Raft key/value cluster over UDP, through the same `KvClient` actor the
//! checker explores (leader discovery, redirects, retries with the same request id).
//!
//! - `put K V`: exit 0 once the write is committed and applied.
//! - `append K V`, `delete K`: exit 0 once applied (a delete frees quota space).
//! - `get K`: prints the value on stdout; prints nothing and exits 1 when the key is absent.
//! - `status [--json]`: every node's role, term, indexes and drop counters.
//!
//! Exit status (also in `--help`, so scripts can tell a dead cluster from a typo): 0 success,
//! 1 key absent (get), 2 bad usage, 3 timeout or unavailable, 4 local error, 5 no space,
//! 6 session expired.

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, Subcommand};
use clap_complete::Shell;
use raft_checked::net::client::{
    check_op_size, query_status, status_json, status_table, ClientOptions, Session,
};
use raft_checked::net::wire::{self, Key};
use raft_checked::protocol::types::{Op, OpResult};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// `get`: the key is absent.
const EXIT_ABSENT: u8 = 1;
/// Bad usage: what clap refuses (its own default status), and arguments it cannot judge.
const EXIT_USAGE: u8 = 2;
/// No leader answered within `--timeout` (for `status`: no node answered at all).
const EXIT_UNAVAILABLE: u8 = 3;
/// This machine failed us (e.g. no UDP socket could be bound): neither usage nor the cluster.
const EXIT_LOCAL: u8 = 4;
/// The cluster refused the write: its store would grow past the nodes' `--max-db-bytes`.
const EXIT_NO_SPACE: u8 = 5;
const EXIT_SESSION_EXPIRED: u8 = 6;

const AFTER_HELP: &str = "\
Examples:
  client --peers 127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002 put greeting hello
  client get greeting --peers 127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002 --timeout 2
  export RAFT_PEERS=\"$(cat DIR/peers)\"     # the addresses `cluster --data DIR` recorded
  client append greeting ', world' && client get greeting
  client status --json
  client --completions bash > ~/.local/share/bash-completion/completions/client

Global options (--peers, --key, --timeout) go before or after the subcommand.

Environment:
  RAFT_PEERS  default for --peers
  RAFT_KEY    default for --key

Exit status:
  0  success (get: the value is on stdout)
  1  get: the key is absent
  2  bad usage: unknown flag or subcommand, missing or malformed --peers, bad --timeout,
     unreadable key file, operation too large (or a put or append that would grow a value past
     1 MiB: refused by the cluster, nothing changed)
  3  timeout or unavailable: no leader answered within --timeout (a put or append may still be
     applied later); status: no node answered
  4  local error, e.g. no UDP socket could be bound
  5  no space: the write would grow the cluster's keys and values past its quota (node
     --max-db-bytes); nothing changed. Writes that shrink a value still pass
  6  session expired: more than the cluster's --max-sessions newer sessions started while
     this one waited (or this machine's clock is far behind the cluster's clients), so the
     cluster no longer knows whether the operation was applied; it was not applied twice";

#[derive(Parser, Debug)]
#[command(
    name = "client",
    version,
    about = "Key/value client of a Raft cluster over UDP",
    after_help = AFTER_HELP
)]
struct Args {
    /// Every server's UDP address, in id order, as the nodes' --peers
    /// (e.g. 127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002).
    #[arg(
        long,
        global = true,
        env = "RAFT_PEERS",
        value_name = "ADDR0,ADDR1,..."
    )]
    peers: Option<String>,
    /// The cluster's key file, when the nodes run with --key: datagrams are then MAC'd.
    #[arg(long, global = true, env = "RAFT_KEY", value_name = "FILE")]
    key: Option<PathBuf>,
    /// Give up after this many seconds without an answer (exit 3), e.g. --timeout 0.5.
    #[arg(long, global = true, default_value_t = 10.0, value_name = "SECONDS")]
    timeout: f64,
    /// Print a completion script for SHELL on stdout and exit (no other argument needed).
    #[arg(long, value_name = "SHELL")]
    completions: Option<Shell>,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
// The positional key is `name` inside: the id `key` belongs to the global --key, which clap also
// defines on every subcommand.
enum Cmd {
    /// Write a key (exit 0 once committed and applied).
    Put {
        /// The key (any text).
        #[arg(value_name = "KEY")]
        name: String,
        /// Its new value (after `--` if it starts with `-`).
        value: String,
    },
    /// Append to a key's value (an absent key counts as empty).
    Append {
        /// The key (any text).
        #[arg(value_name = "KEY")]
        name: String,
        /// What to add to the end of its value (after `--` if it starts with `-`).
        value: String,
    },
    /// Remove a key (exit 0 once committed and applied; an absent key stays absent). It frees
    /// space: it passes even when the cluster is over its quota.
    Delete {
        /// The key (any text).
        #[arg(value_name = "KEY")]
        name: String,
    },
    /// Read a key through the log (linearizable); exit 1 when absent.
    Get {
        /// The key (any text).
        #[arg(value_name = "KEY")]
        name: String,
    },
    /// Show every node's state; exit 3 when no node answers.
    Status {
        /// Print a JSON array, one object per node, instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Why `client` failed, with the exit status that tells a script which kind of failure it was.
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn usage(message: String) -> Self {
        Failure {
            code: EXIT_USAGE,
            message,
        }
    }
    fn unavailable(message: String) -> Self {
        Failure {
            code: EXIT_UNAVAILABLE,
            message,
        }
    }
    fn local(message: String) -> Self {
        Failure {
            code: EXIT_LOCAL,
            message,
        }
    }
}

fn main() -> ExitCode {
    raft_checked::net::quiet_broken_pipe();
    raft_checked::net::ignore_empty_env();
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => return clap_exit(e),
    };
    if let Some(shell) = args.completions {
        clap_complete::generate(
            shell,
            &mut Args::command(),
            "client",
            &mut std::io::stdout(),
        );
        return ExitCode::SUCCESS;
    }
    let (Some(peers), Some(cmd)) = (args.peers.as_deref(), args.cmd) else {
        let (kind, what) = match args.peers {
            None => (
                ErrorKind::MissingRequiredArgument,
                "--peers ADDR0,ADDR1,... (or RAFT_PEERS in the environment) is required",
            ),
            Some(_) => (
                ErrorKind::MissingSubcommand,
                "a subcommand is required: put, append, get or status",
            ),
        };
        return clap_exit(Args::command().error(kind, what));
    };
    match run(peers, args.key, args.timeout, cmd) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("client: error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

/// Prints a clap error (or the help and version it reports as errors) with clap's own status:
/// 2 for bad usage, 0 for --help and --version.
fn clap_exit(e: clap::Error) -> ExitCode {
    let _ = e.print();
    ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { 0 })
}

fn run(peers: &str, key: Option<PathBuf>, timeout: f64, cmd: Cmd) -> Result<u8, Failure> {
    let peers = wire::parse_peers(peers).map_err(Failure::usage)?;
    if !(timeout.is_finite() && timeout > 0.0 && timeout < 1e6) {
        return Err(Failure::usage(
            "--timeout must be a positive number of seconds".into(),
        ));
    }
    let timeout = Duration::from_secs_f64(timeout);
    let key = key
        .as_deref()
        .map(Key::from_file)
        .transpose()
        .map_err(Failure::usage)?;
    let op = match cmd {
        Cmd::Status { json } => return status(&peers, key.as_ref(), timeout, json),
        Cmd::Put { name, value } => Op::Put { key: name, value },
        Cmd::Append { name, value } => Op::Append { key: name, value },
        Cmd::Get { name } => Op::Get { key: name },
        Cmd::Delete { name } => Op::Delete { key: name },
    };
    check_op_size(&op).map_err(Failure::usage)?;
    let mut session =
        Session::new(ClientOptions::new(peers, key, timeout)).map_err(Failure::local)?;
    // The operation fits and the socket is bound, so what remains to fail is the cluster not
    // answering in time.
    let results = session.run(vec![op]).map_err(Failure::unavailable)?;
    match results.first() {
        Some(OpResult::Value(Some(v))) => {
            println!("{v}");
            Ok(0)
        }
        Some(OpResult::Value(None)) => Ok(EXIT_ABSENT),
        Some(OpResult::Written) => Ok(0),
        Some(OpResult::NoSpace { bytes, quota }) => Err(Failure {
            code: EXIT_NO_SPACE,
            message: format!(
                "no space: the store would hold {bytes} bytes of keys and values, over the \
                 cluster's quota of {quota} (node --max-db-bytes); nothing changed. Overwrite \
                 values with shorter ones to free space"
            ),
        }),
        Some(OpResult::SessionExpired) => Err(Failure {
            code: EXIT_SESSION_EXPIRED,
            message: "session expired: the cluster dropped this session's deduplication record \
                      (node --max-sessions), so it cannot tell whether the operation was \
                      applied; it was not applied twice. Check, then run again"
                .into(),
        }),
        Some(OpResult::TooLarge { bytes }) => Err(Failure::usage(format!(
            "refused: the value would be {bytes} bytes, over the limit of {}",
            raft_checked::protocol::types::MAX_VALUE_BYTES
        ))),
        None => Err(Failure::unavailable("no result".into())),
    }
}

/// `status`: prints what answered (unreachable nodes marked); unavailable when none did.
fn status(
    peers: &[std::net::SocketAddr],
    key: Option<&Key>,
    timeout: Duration,
    json: bool,
) -> Result<u8, Failure> {
    let wait = timeout.min(Duration::from_secs(2));
    let statuses = query_status(peers, key, wait).map_err(Failure::local)?;
    if json {
        let arr: Vec<_> = statuses
            .iter()
            .enumerate()
            .map(|(i, s)| status_json(i, s))
            .collect();
        println!("{}", serde_json::Value::Array(arr));
    } else {
        print!("{}", status_table(&statuses, peers));
    }
    if statuses.iter().all(Option::is_none) {
        return Err(Failure::unavailable(format!(
            "no node answered within {:.1}s",
            wait.as_secs_f64()
        )));
    }
    Ok(0)
}

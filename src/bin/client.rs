//! `client`: talk to a Raft key/value cluster over UDP, through the same `KvClient` actor the
//! checker explores (leader discovery, redirects, retries with the same request id).
//!
//! - `put K V`: exit 0 once the write is committed and applied.
//! - `get K`: prints the value on stdout; prints nothing and exits 1 when the key is absent.
//! - `status [--json]`: every node's role, term, indexes and drop counters.
//!
//! Errors (timeouts, bad arguments) exit 2 with a message on stderr.

use clap::{Parser, Subcommand};
use raft_checked::net::client::{query_status, status_json, status_table, ClientOptions, Session};
use raft_checked::net::wire::{self, Key};
use raft_checked::protocol::types::{Op, OpResult};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "client",
    version,
    about = "Key/value client of a Raft cluster over UDP"
)]
struct Args {
    /// Every server's UDP address, in id order: ADDR0,ADDR1,ADDR2.
    #[arg(long)]
    peers: String,
    /// The cluster's key file (when the nodes run with --key).
    #[arg(long)]
    key: Option<PathBuf>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Write a key (exit 0 once committed and applied).
    Put { key: String, value: String },
    /// Append to a key's value.
    Append { key: String, value: String },
    /// Read a key through the log (linearizable); exit 1 when absent.
    Get { key: String },
    /// Show every node's state.
    Status {
        /// Print a JSON array, one object per node, instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match run(args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("client: error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> Result<u8, String> {
    let peers = wire::parse_peers(&args.peers)?;
    if !(args.timeout.is_finite() && args.timeout > 0.0 && args.timeout < 1e6) {
        return Err("--timeout must be a positive number of seconds".into());
    }
    let timeout = Duration::from_secs_f64(args.timeout);
    let key = args.key.as_deref().map(Key::from_file).transpose()?;
    let op = match args.cmd {
        Cmd::Status { json } => {
            let statuses = query_status(&peers, key.as_ref(), timeout.min(Duration::from_secs(2)))?;
            if json {
                let arr: Vec<_> = statuses
                    .iter()
                    .enumerate()
                    .map(|(i, s)| status_json(i, s))
                    .collect();
                println!("{}", serde_json::Value::Array(arr));
            } else {
                print!("{}", status_table(&statuses, &peers));
            }
            return Ok(0);
        }
        Cmd::Put { key, value } => Op::Put { key, value },
        Cmd::Append { key, value } => Op::Append { key, value },
        Cmd::Get { key } => Op::Get { key },
    };
    let mut session = Session::new(ClientOptions::new(peers, key, timeout))?;
    let results = session.run(vec![op])?;
    match results.first() {
        Some(OpResult::Value(Some(v))) => {
            println!("{v}");
            Ok(0)
        }
        Some(OpResult::Value(None)) => Ok(1),
        Some(OpResult::Written) => Ok(0),
        Some(OpResult::TooLarge { bytes }) => Err(format!(
            "refused: the value would be {bytes} bytes, over the limit of {}",
            raft_checked::protocol::types::MAX_VALUE_BYTES
        )),
        None => Err("no result".into()),
    }
}

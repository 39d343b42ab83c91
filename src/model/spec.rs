//! Model files: declarative TOML descriptions of what to check (cluster, workload, network,
//! faults, bounds, injected bug). Parsing is strict: an unknown field or an impossible value is
//! an error that names the file and the field.

use crate::protocol::server::Bug;
use crate::protocol::types::Op;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// A model file as written (`models/*.toml`), before `parse` validates it: the TOML schema.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    /// One line saying what the model is for (shown in `check` output).
    #[serde(default)]
    pub description: String,
    /// How many servers, 1..=7 (default 3); traces call them S0, S1, ...
    #[serde(default = "default_servers")]
    pub servers: usize,
    /// Check one state per renaming of server ids (symmetry reduction), with every checker, as
    /// `check --symmetry` does; `check --no-symmetry` overrides it. Refused with clients
    /// ([`CLIENTS_BREAK_SYMMETRY`]). Liveness is then not checked (it reports `unknown`).
    #[serde(default)]
    pub symmetry: bool,
    /// One table per client, each with the operations it runs in order.
    #[serde(default, rename = "client")]
    pub clients: Vec<ClientFile>,
    /// Commands leaders accept with no client actor (`[workload]`).
    #[serde(default)]
    pub workload: WorkloadFile,
    /// How the network may reorder, duplicate and lose messages (`[network]`).
    #[serde(default)]
    pub network: NetworkFile,
    /// How many crashes a run may contain (`[faults]`).
    #[serde(default)]
    pub faults: FaultsFile,
    /// Required limits that make the state space finite (`[bounds]`).
    pub bounds: BoundsFile,
    /// What the checker assumes about timeouts in place of clocks (`[timing]`).
    #[serde(default)]
    pub timing: TimingFile,
    /// When servers compact their logs (`[snapshot]`).
    #[serde(default)]
    pub snapshot: SnapshotFile,
    /// How leaders batch entries (`[replication]`).
    #[serde(default)]
    pub replication: ReplicationFile,
    /// How many client sessions the deduplication table keeps (`[sessions]`).
    #[serde(default)]
    pub sessions: SessionsFile,
    /// Which infinite runs count for liveness (`[fairness]`).
    #[serde(default)]
    pub fairness: FairnessFile,
    /// Inject one classic mistake (absent: correct Raft).
    pub bug: Option<Bug>,
    /// Steps replayed before every search, and the messages they leave in flight (`[given]`).
    #[serde(default)]
    pub given: GivenFile,
}

/// Steps taken from a fresh cluster before a search starts, as etcd raft's scenario tests script
/// a prefix: for scenarios too deep to search from the start. Every check of the model then
/// starts where they lead, and its traces show them first.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GivenFile {
    /// Each written as the checker prints it in a trace (`S0: election timeout`,
    /// `S1 → S0: Vote(t1, yes)`; `->` may stand for `→`); each must be enabled where it stands.
    #[serde(default)]
    pub steps: Vec<String>,
    /// When present, the network then loses every message in flight but these (written as
    /// their delivery step, `S1 → S0: AppendOk(t1, match=2)`): the search starts without
    /// messages the scenario has no use for. Raft must survive loss, so the run stays real.
    pub keep_in_flight: Option<Vec<String>>,
}

/// One `[[client]]` table: a client actor that runs its operations in order, following redirects
/// and retrying, so the history can be checked for linearizability.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientFile {
    /// `"put KEY VALUE"`, `"append KEY VALUE"` or `"get KEY"`.
    pub ops: Vec<String>,
}

/// Commands that reach the cluster without a client actor, as in raft.tla's `ClientRequest`:
/// whichever server leads may accept the next one, at any moment. Nobody waits for an answer,
/// so the model is smaller than with a client and, with no client to try servers in id order,
/// servers stay interchangeable (symmetry applies).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadFile {
    /// Accepted one at a time, in this order: `"put KEY VALUE"`, `"append KEY VALUE"`, `"get KEY"`.
    #[serde(default)]
    pub proposals: Vec<String>,
}

/// What the network may do to a message besides losing it: reorder it, duplicate it, or neither.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Semantics {
    /// Messages may be reordered and delivered any number of times (UDP's worst case).
    #[default]
    UnorderedDuplicating,
    /// Messages may be reordered; each is delivered at most once.
    UnorderedNonduplicating,
    /// FIFO per (sender, receiver) pair, each delivered once (TCP-like).
    Ordered,
}

/// The `[network]` table: the network Raft is checked against.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkFile {
    /// Reordering and duplication (default: both, as UDP may).
    #[serde(default)]
    pub semantics: Semantics,
    /// Whether the checker may drop messages.
    #[serde(default)]
    pub lossy: bool,
}

/// The `[faults]` table: crashes; a crashed server may restart from what it saved.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultsFile {
    /// How many crash events a run may contain in total (each crashed server may restart).
    #[serde(default)]
    pub max_crashes: u8,
    /// How many damage events a run may contain: a crashed server loses its whole storage, its
    /// term and vote, or its last entry (`Damage`), and restarts recovering.
    #[serde(default)]
    pub max_damage: u8,
    /// Which damage a damage event may do, by the words traces use: "wipe", "lose-vote",
    /// "lose-last-entry" (damage the server detects) and "delete" (its data directory deleted:
    /// it restarts empty, unable to tell whether it is new). Default: all four.
    #[serde(default)]
    pub damage: Option<Vec<String>>,
}

/// The `[bounds]` table: limits that make the state space finite; the checker does not explore past
/// them, so a property holds only within them.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoundsFile {
    /// States where some server's term exceeds this are outside the model.
    pub max_term: u64,
    /// States where some server's log (including the compacted prefix) is longer are outside.
    pub max_log_len: u64,
    /// Optional cap on messages in flight.
    pub max_messages: Option<usize>,
    /// Optional depth cap for the checker (a depth-cut run is not complete).
    pub max_depth: Option<usize>,
}

/// The `[timing]` table: what the checker assumes about timeouts, since it has no clock.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimingFile {
    /// Raft's liveness rests on randomized timeouts: eventually one server times out alone.
    /// When true, only one server may start an election for the final term (`max_term`);
    /// every earlier term may be contested. See README, "What liveness proves".
    #[serde(default = "yes")]
    pub last_election_uncontested: bool,
    /// When true, every term has one candidate: a server may start an election for a term only
    /// while no server has reached it (others learn the term from its messages). Split votes
    /// are then never explored; bug models use it to reach deep scenarios quickly.
    #[serde(default)]
    pub all_elections_uncontested: bool,
    /// When false, leaders send no periodic heartbeats: AppendEntries go out on election, on a
    /// new entry and in answer to replies, which is all a network that loses nothing needs to
    /// replicate. Followers then learn a commit index only from later AppendEntries.
    #[serde(default = "yes")]
    pub heartbeats: bool,
}

impl Default for TimingFile {
    fn default() -> Self {
        TimingFile {
            last_election_uncontested: true,
            all_elections_uncontested: false,
            heartbeats: true,
        }
    }
}

/// The `[fairness]` table: which infinite runs are admissible when liveness is checked. A
/// liveness counterexample is a run that obeys these; faults (message loss, crashes, an
/// election timeout while its server follows a live leader) may happen, but only finitely often.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FairnessFile {
    /// Weak fairness of delivery on each link: a message that stays deliverable is delivered.
    #[serde(default = "yes")]
    pub delivery: bool,
    /// Weak fairness of each timer: an armed timer that stays armed fires (election timers,
    /// heartbeats, client retries).
    #[serde(default = "yes")]
    pub timers: bool,
    /// Weak fairness of restarts: a crashed server eventually restarts.
    #[serde(default = "yes")]
    pub restarts: bool,
    /// Raft's timing assumption (heartbeat interval well below the election timeout): a
    /// follower that knows a live leader of its term does not time out, except finitely often
    /// (a premature timeout is a fault). Without it, weak fairness of election timers forces
    /// elections forever, and every run ends at the term bound.
    #[serde(default = "yes")]
    pub stable_leader: bool,
}

impl Default for FairnessFile {
    fn default() -> Self {
        FairnessFile {
            delivery: true,
            timers: true,
            restarts: true,
            stable_leader: true,
        }
    }
}

/// The `[snapshot]` table: log compaction (§7).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotFile {
    /// Compact the log once this many applied entries sit in it (absent: never).
    pub after: Option<u64>,
}

/// The `[replication]` table: how a leader batches entries.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicationFile {
    /// Entries per AppendEntries (absent: 64, more than any bounded model's log). `node` sends
    /// 24 (what fits a datagram), and `sim --emit-model` writes that.
    pub max_entries_per_append: Option<usize>,
}

/// The `[sessions]` table: the bound on the deduplication table (Raft thesis §6.3).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsFile {
    /// Keep at most this many client sessions; beyond it the lowest session id expires, and
    /// its requests are answered "session expired" (absent: no bound, as `node --max-sessions 0`).
    pub max: Option<usize>,
}

fn default_servers() -> usize {
    3
}

fn yes() -> bool {
    true
}

/// Why a model with clients cannot use symmetry reduction: the reason both a model file's
/// `symmetry = true` and `check --symmetry` are refused with.
pub const CLIENTS_BREAK_SYMMETRY: &str = "clients try servers in id order, so servers are not \
     interchangeable; use symmetry only on models without clients";

/// A parsed and validated model.
#[derive(Clone, Debug)]
pub struct ModelConfig {
    /// The model's name, as reports show it: its path under `models/` without `.toml`
    /// (`bugs/figure8`), or the path it was given.
    pub name: String,
    /// The file it was read from, for messages that name it.
    pub path: PathBuf,
    /// The file as parsed.
    pub file: ModelFile,
    /// Each client's operations, parsed from its `ops`.
    pub client_ops: Vec<Vec<Op>>,
    /// The workload's proposals, parsed from `workload.proposals`.
    pub proposals: Vec<Op>,
}

/// Why a model file cannot be checked: one message that names the file and the field.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Parses and validates a model file's `text`, and replays its given steps: a model that parses can
/// be checked. `name` and `path` are for reports and error messages.
pub fn parse(name: &str, path: &Path, text: &str) -> Result<ModelConfig, ConfigError> {
    let at = |field: &str, msg: String| ConfigError(format!("{}: {field}: {msg}", path.display()));
    let file: ModelFile = toml::from_str(text)
        .map_err(|e| ConfigError(format!("{}: {}", path.display(), e.to_string().trim_end())))?;
    if !(1..=7).contains(&file.servers) {
        return Err(at("servers", format!("{} is not in 1..=7", file.servers)));
    }
    if file.bounds.max_term == 0 {
        return Err(at("bounds.max_term", "must be at least 1".into()));
    }
    // Past 20 the state space is out of reach, unless a depth bounds the search (as in the
    // models `sim --emit-model` writes, which search a few steps around a long run's end).
    let unchecked = |bound: u64| bound > 20 && file.bounds.max_depth.is_none();
    if unchecked(file.bounds.max_term) {
        return Err(at(
            "bounds.max_term",
            "above 20 is not a checkable bound without bounds.max_depth".into(),
        ));
    }
    if unchecked(file.bounds.max_log_len) {
        return Err(at(
            "bounds.max_log_len",
            "above 20 is not a checkable bound without bounds.max_depth".into(),
        ));
    }
    if file.sessions.max == Some(0) {
        return Err(at(
            "sessions.max",
            "must be at least 1 (leave it out for no bound)".into(),
        ));
    }
    if file.replication.max_entries_per_append == Some(0) {
        return Err(at(
            "replication.max_entries_per_append",
            "must be at least 1".into(),
        ));
    }
    if file.bounds.max_depth == Some(0) {
        return Err(at("bounds.max_depth", "must be at least 1".into()));
    }
    if file.faults.max_crashes > 10 && file.bounds.max_depth.is_none() {
        return Err(at(
            "faults.max_crashes",
            "above 10 is not a checkable bound without bounds.max_depth".into(),
        ));
    }
    for (i, word) in file.faults.damage.iter().flatten().enumerate() {
        if crate::model::Damage::from_word(word).is_none() {
            let words = crate::model::Damage::ALL.map(|d| d.word()).join(", ");
            return Err(at(
                &format!("faults.damage[{i}]"),
                format!("\"{word}\" is not a kind of damage ({words})"),
            ));
        }
    }
    if file.snapshot.after == Some(0) {
        return Err(at("snapshot.after", "must be at least 1".into()));
    }
    if file.clients.len() > 4 {
        return Err(at("client", "at most 4 clients".into()));
    }
    if file.symmetry && !file.clients.is_empty() {
        return Err(at(
            "symmetry",
            format!("the model has clients, and {CLIENTS_BREAK_SYMMETRY}"),
        ));
    }
    let mut client_ops = Vec::new();
    for (c, client) in file.clients.iter().enumerate() {
        let mut ops = Vec::new();
        for (i, text) in client.ops.iter().enumerate() {
            let op = parse_op(text).map_err(|m| at(&format!("client[{c}].ops[{i}]"), m))?;
            ops.push(op);
        }
        client_ops.push(ops);
    }
    if file.workload.proposals.len() > 8 {
        return Err(at("workload.proposals", "at most 8 proposals".into()));
    }
    let mut proposals = Vec::new();
    for (i, text) in file.workload.proposals.iter().enumerate() {
        proposals.push(parse_op(text).map_err(|m| at(&format!("workload.proposals[{i}]"), m))?);
    }
    let cfg = ModelConfig {
        name: name.to_string(),
        path: path.to_path_buf(),
        file,
        client_ops,
        proposals,
    };
    crate::model::RaftModel::try_new(cfg.clone()).map_err(|(field, e)| at(&field, e))?;
    Ok(cfg)
}

/// Parses `"put KEY VALUE"`, `"append KEY VALUE"`, `"get KEY"` or `"delete KEY"`.
pub fn parse_op(text: &str) -> Result<Op, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        ["put", key, value] => Ok(Op::Put {
            key: key.to_string(),
            value: value.to_string(),
        }),
        ["append", key, value] => Ok(Op::Append {
            key: key.to_string(),
            value: value.to_string(),
        }),
        ["delete", key] => Ok(Op::Delete {
            key: key.to_string(),
        }),
        ["get", key] => Ok(Op::Get {
            key: key.to_string(),
        }),
        _ => Err(format!(
            "'{text}' is not an operation (expected 'put K V', 'append K V', 'get K' or 'delete K')"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse("t", Path::new("models/t.toml"), text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn unknown_field_names_file_and_field() {
        let e = err("servers = 3\nbogus = 1\n[bounds]\nmax_term = 2\nmax_log_len = 1\n");
        assert!(e.starts_with("models/t.toml:"), "{e}");
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn impossible_values_name_the_field() {
        let e = err("servers = 0\n[bounds]\nmax_term = 2\nmax_log_len = 1\n");
        assert!(e.contains("servers"), "{e}");
        let e = err("[bounds]\nmax_term = 0\nmax_log_len = 1\n");
        assert!(e.contains("bounds.max_term"), "{e}");
        let e = err("[bounds]\nmax_term = 2\nmax_log_len = 1\n[[client]]\nops = [\"del x\"]\n");
        assert!(e.contains("client[0].ops[0]"), "{e}");
        let e = err("bug = \"nope\"\n[bounds]\nmax_term = 2\nmax_log_len = 1\n");
        assert!(e.contains("bug"), "{e}");
        let e =
            err("[workload]\nproposals = [\"put x\"]\n[bounds]\nmax_term = 2\nmax_log_len = 1\n");
        assert!(e.contains("workload.proposals[0]"), "{e}");
    }

    const BOUNDS: &str = "[bounds]\nmax_term = 2\nmax_log_len = 1\n";

    #[test]
    fn a_given_step_that_is_not_enabled_names_its_index_and_lists_the_enabled_ones() {
        let e = err(&format!(
            "{BOUNDS}[given]\nsteps = [\"S0: election timeout\", \"S1 -> S0: Vote(t1, yes)\"]\n"
        ));
        assert!(e.contains("given.steps[1]"), "{e}");
        assert!(e.contains("\n  S0 → S1: RequestVote(t1, last=0@t0)"), "{e}");
        let e = err(&format!("{BOUNDS}[given]\nsteps = [\"S0 wins\"]\n"));
        assert!(
            e.contains("given.steps[0]") && e.contains("'S0 wins'"),
            "{e}"
        );
    }

    #[test]
    fn a_message_to_keep_must_be_in_flight() {
        let e = err(&format!(
            "{BOUNDS}[given]\nsteps = [\"S0: election timeout\"]\n\
             keep_in_flight = [\"S0 -> S1: RequestVote(t1, last=0@t0)\", \"S1 -> S0: Vote(t1, yes)\"]\n"
        ));
        assert!(e.contains("given.keep_in_flight[1]"), "{e}");
        assert!(!e.contains("keep_in_flight[0]"), "{e}");
    }

    #[test]
    fn symmetry_is_refused_with_clients() {
        let e = err(&format!(
            "symmetry = true\n{BOUNDS}[[client]]\nops = [\"put x 1\"]\n"
        ));
        assert!(e.starts_with("models/t.toml: symmetry:"), "{e}");
        assert!(e.contains(CLIENTS_BREAK_SYMMETRY), "{e}");
        let ok = |text: &str| parse("t", Path::new("models/t.toml"), text).unwrap();
        assert!(ok(&format!("symmetry = true\n{BOUNDS}")).file.symmetry);
        assert!(!ok(BOUNDS).file.symmetry);
        let clients = format!("symmetry = false\n{BOUNDS}[[client]]\nops = [\"put x 1\"]\n");
        assert!(!ok(&clients).file.symmetry);
    }

    #[test]
    fn missing_bounds_is_an_error() {
        let e = err("servers = 3\n");
        assert!(e.contains("bounds"), "{e}");
    }

    #[test]
    fn ops_parse() {
        assert_eq!(
            parse_op("put x 1").unwrap(),
            Op::Put {
                key: "x".into(),
                value: "1".into()
            }
        );
        assert_eq!(
            parse_op("delete x").unwrap(),
            Op::Delete { key: "x".into() }
        );
        assert!(parse_op("get").is_err());
        assert!(parse_op("delete").is_err());
    }
}

//! The vocabulary shared by servers, clients, the model and the UDP runtime: log entries, the
//! key/value commands they carry, and the messages of the protocol.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

pub type Term = u64;
/// Log positions start at 1; index 0 is the empty prefix (Figure 2).
pub type LogIndex = u64;

/// A key/value operation as a client asks for it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Op {
    Put {
        key: String,
        value: String,
    },
    /// Appends `value` to the key's current value (6.5840's Append): a retry applied twice shows.
    Append {
        key: String,
        value: String,
    },
    Get {
        key: String,
    },
}

/// What an applied operation returned: `Get` returns the value, writes return nothing.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum OpResult {
    Written,
    Value(Option<String>),
}

/// One client operation, tagged so that retries can be recognised (the client's session id
/// and its request number, which grows by one per operation).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Command {
    pub client: u64,
    pub request_id: u64,
    pub op: Op,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Entry {
    pub term: Term,
    pub command: Command,
}

/// How a follower answers AppendEntries: the index it now matches up to, or a hint that lets the
/// leader skip a whole conflicting term per round trip (6.5840's accelerated log backtracking).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AppendOutcome {
    Matched {
        match_index: LogIndex,
    },
    /// `term` is the follower's term at `prev_log_index` and `first_index` its first index with
    /// that term; `term: None` means the follower's log ends before `prev_log_index` and
    /// `first_index` is its length + 1.
    Conflict {
        term: Option<Term>,
        first_index: LogIndex,
    },
}

/// What a server tells a client.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ClientReply {
    Done(OpResult),
    /// The server is not the leader; `leader` is the one it last heard from, if any.
    NotLeader {
        leader: Option<u64>,
    },
}

/// The replicated state machine: a key/value map plus the table that deduplicates retries
/// (client session → its last applied request and result), so a retried request is applied once.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct KvStore {
    pub data: BTreeMap<String, String>,
    pub sessions: BTreeMap<u64, (u64, OpResult)>,
}

impl KvStore {
    /// Runs `op` on the map (no deduplication here: the server's client service deduplicates, §8).
    pub fn execute(&mut self, op: &Op) -> OpResult {
        match op {
            Op::Put { key, value } => {
                self.data.insert(key.clone(), value.clone());
                OpResult::Written
            }
            Op::Append { key, value } => {
                self.data.entry(key.clone()).or_default().push_str(value);
                OpResult::Written
            }
            Op::Get { key } => OpResult::Value(self.data.get(key).cloned()),
        }
    }
}

/// A snapshot of the state machine through `last_index` (Figure 13).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Snapshot {
    pub last_index: LogIndex,
    pub last_term: Term,
    pub state: KvStore,
}

/// The messages of the protocol (Figure 2 RPCs, Figure 13 InstallSnapshot) and of the client
/// interface. Every RPC and reply carries the sender's term.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Msg {
    RequestVote {
        term: Term,
        last_log_index: LogIndex,
        last_log_term: Term,
    },
    /// RequestVote's reply. Named `Vote` on the wire (and `Vote(t1, yes)` in traces), as
    /// before the rename: the datagram format is a contract.
    #[serde(rename = "Vote")]
    RequestVoteReply {
        /// The voter's current term, for the candidate to update itself.
        term: Term,
        /// True means the candidate received the vote.
        granted: bool,
    },
    AppendEntries {
        term: Term,
        prev_log_index: LogIndex,
        prev_log_term: Term,
        entries: Vec<Entry>,
        leader_commit: LogIndex,
    },
    AppendEntriesReply {
        term: Term,
        outcome: AppendOutcome,
    },
    InstallSnapshot {
        term: Term,
        snapshot: Snapshot,
    },
    InstallSnapshotReply {
        term: Term,
        last_index: LogIndex,
    },
    ClientRequest(Command),
    ClientResponse {
        request_id: u64,
        reply: ClientReply,
    },
}

/// Timers: durations matter only in the UDP runtime; the checker lets any armed timer fire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Timer {
    Election,
    Heartbeat,
    ClientRetry,
}

impl Timer {
    pub const ALL: [Timer; 3] = [Timer::Election, Timer::Heartbeat, Timer::ClientRetry];

    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Put { key, value } => write!(f, "put {key}={value}"),
            Op::Append { key, value } => write!(f, "append {key}+={value}"),
            Op::Get { key } => write!(f, "get {key}"),
        }
    }
}

impl fmt::Display for OpResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpResult::Written => write!(f, "ok"),
            OpResult::Value(Some(v)) => write!(f, "{v:?}"),
            OpResult::Value(None) => write!(f, "none"),
        }
    }
}

impl fmt::Display for Entry {
    /// `term:op`, compact enough for one-line server summaries.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.command.op {
            Op::Put { key, value } => write!(f, "{}:{key}={value}", self.term),
            Op::Append { key, value } => write!(f, "{}:{key}+{value}", self.term),
            Op::Get { key } => write!(f, "{}:?{key}", self.term),
        }
    }
}

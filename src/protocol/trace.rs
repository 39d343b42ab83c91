//! What a node records of its actor with `node --trace FILE`, one JSON object per line: every
//! handler the actor ran (a message in, a timer), in order, and each start with what it
//! restored. `check --validate-trace` replays the files of one run through the model, as
//! etcd raft validates its traces against the TLA+ spec. Plain data, shared by the node that
//! writes it and the checker that reads it.

use crate::protocol::server::ServerState;
use crate::protocol::types::{LogIndex, Msg, ServerTimer, Term};
use serde::{Deserialize, Serialize};

/// One handler invocation (or start) of one node's actor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TraceEvent {
    /// The node started: its actor was made from what it restored from disk.
    Start {
        /// The node's id.
        node: usize,
        /// The cluster size.
        servers: usize,
        /// The server configuration that decides what the actor sends.
        config: TracedConfig,
        /// What it restored.
        restored: Restored,
    },
    /// The actor handled a message from `from` (a server id, or a client session id).
    Deliver {
        /// The node's id.
        node: usize,
        /// The sender: a server id below the cluster size, else a client session.
        from: u64,
        /// The message as the actor got it.
        msg: Msg,
    },
    /// One of the actor's timers fired.
    Timeout {
        /// The node's id.
        node: usize,
        /// Which.
        timer: ServerTimer,
    },
}

impl TraceEvent {
    /// The node that recorded it.
    pub fn node(&self) -> usize {
        match self {
            TraceEvent::Start { node, .. }
            | TraceEvent::Deliver { node, .. }
            | TraceEvent::Timeout { node, .. } => *node,
        }
    }
}

/// The parts of a server's configuration that change what its actor sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TracedConfig {
    /// Compaction threshold (`--snapshot-after`; None: never).
    pub snapshot_after: Option<u64>,
    /// Entries per AppendEntries.
    pub max_entries_per_append: usize,
    /// The storage quota (`--max-db-bytes`).
    pub max_db_bytes: Option<u64>,
}

/// The durable state a start restored: what a restart must find again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restored {
    /// currentTerm.
    pub term: Term,
    /// votedFor.
    pub voted_for: Option<u64>,
    /// The last log index (the snapshot's, when the log is empty past it).
    pub last_index: LogIndex,
    /// Its term.
    pub last_term: Term,
    /// The snapshot's last index (0: none).
    pub snapshot_index: LogIndex,
    /// It restarted recovering from damaged or lost storage (`Storage::recovering`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recovering: bool,
    /// It started from an empty data directory and asks its peers whether it is new
    /// (`Storage::maybe_new`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub maybe_new: bool,
}

impl Restored {
    /// What `state` holds of the durable state.
    pub fn of(state: &ServerState) -> Restored {
        Restored {
            term: state.term,
            voted_for: state.voted_for,
            last_index: state.log.last_index(),
            last_term: state.log.last_term(),
            snapshot_index: state.log.base_index,
            recovering: state.recovery.is_some(),
            maybe_new: state.recovery.as_ref().is_some_and(|r| r.maybe_new),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The validator files each event under `node()`: every kind names the node that wrote it.
    #[test]
    fn every_event_names_its_node() {
        let deliver = TraceEvent::Deliver {
            node: 2,
            from: 1,
            msg: Msg::RecoveryQuery,
        };
        let timeout = TraceEvent::Timeout {
            node: 3,
            timer: ServerTimer::Election,
        };
        assert_eq!((deliver.node(), timeout.node()), (2, 3));
    }
}

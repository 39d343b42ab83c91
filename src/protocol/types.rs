//! The vocabulary shared by servers, clients, the model and the UDP runtime: log entries, the
//! key/value commands they carry, and the messages of the protocol.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock};

/// A term number: Raft's logical clock; each election starts a new term, with at most one leader
/// per term (§5.1).
pub type Term = u64;
/// Log positions start at 1; index 0 is the empty prefix (Figure 2).
pub type LogIndex = u64;

/// A key/value operation as a client asks for it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Op {
    /// Sets the key to `value`, replacing what was there.
    Put {
        /// The key to overwrite.
        key: String,
        /// Its new value.
        value: String,
    },
    /// Appends `value` to the key's current value (6.5840's Append): a retry applied twice shows.
    Append {
        /// The key to extend; a key never written counts as empty.
        key: String,
        /// The text added to the end of the key's value.
        value: String,
    },
    /// Reads the key; it goes through the log like a write, so a read never sees stale state (§8).
    Get {
        /// The key to read.
        key: String,
    },
    /// Removes the key (a key never written stays absent): frees the space the storage quota
    /// counts, so it passes even when the store is over the quota.
    Delete {
        /// The key to remove.
        key: String,
    },
}

/// What an applied operation returned: `Get` returns the value, writes return nothing.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum OpResult {
    /// A `Put`, `Append` or `Delete` was applied; writes return no value.
    Written,
    /// What a `Get` read: the key's value, or None when the key was never written.
    Value(Option<String>),
    /// A `Put` or `Append` refused, changing nothing: the value would exceed
    /// [`MAX_VALUE_BYTES`]. Decided when the entry is applied, so every replica decides alike.
    TooLarge {
        /// The size the value would have had, in bytes.
        bytes: usize,
    },
    /// A `Put` or `Append` refused, changing nothing: the store's keys and values would grow
    /// past the servers' quota (`node --max-db-bytes`), as etcd's NOSPACE alarm refuses writes.
    /// Writes that do not grow the store (a shorter value) still pass, so space can be freed.
    /// Decided when the entry is applied, so every replica decides alike.
    NoSpace {
        /// The bytes of keys and values the store would have held.
        bytes: u64,
        /// The quota it would have passed.
        quota: u64,
    },
    /// Refused, changing nothing: the request's session expired (it is at or below
    /// [`KvStore::expired_through`] and no longer in the table), so whether its earlier requests
    /// took effect can no longer be told from a retry. The client must start a new session; an
    /// operation it had in flight may or may not have happened.
    SessionExpired,
}

/// The largest value a key may hold. Appends grow a value a little at a time; without a bound a
/// value could outgrow what a reply carries (the client could write it but never read it) and
/// what a snapshot carries.
pub const MAX_VALUE_BYTES: usize = 1 << 20;

/// One client operation, tagged so that retries can be recognised (the client's session id
/// and its request number, which grows by one per operation).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Command {
    /// The client's session id: it keys the deduplication table, and the leader sends the result to
    /// it.
    pub client: u64,
    /// The client's request number; a retry reuses it, so a server sees it was applied already
    /// (§8).
    pub request_id: u64,
    /// The operation to apply to the key/value map once the entry commits.
    pub op: Op,
}

/// A log entry (Figure 2): a client command and the term in which the leader received it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Entry {
    /// The term the leader received the command in; two logs with an entry of the same index and
    /// term agree up to it (Log Matching, §5.3).
    pub term: Term,
    /// The command applied to the state machine once the entry is committed. Shared, not
    /// copied: logs are cloned whole (into every save, and by the simulator's checks), and a
    /// clone then costs a reference count per entry instead of a copy of its key and value.
    /// Equal commands compare by pointer first.
    pub command: Arc<Command>,
}

/// How a follower answers AppendEntries: the index it now matches up to, or a hint that lets the
/// leader skip a whole conflicting term per round trip (6.5840's accelerated log backtracking).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AppendOutcome {
    /// Figure 2's `success = true`: the entry at prevLogIndex matched, and the new entries are
    /// stored.
    Matched {
        /// The last index the follower now shares with the leader (prevLogIndex + entries):
        /// matchIndex.
        match_index: LogIndex,
    },
    /// `term` is the follower's term at `prev_log_index` and `first_index` its first index with
    /// that term; `term: None` means the follower's log ends before `prev_log_index` and
    /// `first_index` is its length + 1.
    Conflict {
        /// The follower's term at prevLogIndex (the conflicting one), or None if its log is
        /// shorter.
        term: Option<Term>,
        /// Where the leader may resume: the follower's first index of `term`, or its last index +
        /// 1.
        first_index: LogIndex,
    },
}

/// What a server tells a client.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ClientReply {
    /// The command is committed and applied (now or, for a retry, earlier): its result.
    Done(OpResult),
    /// The server is not the leader; `leader` is the one it last heard from, if any.
    NotLeader {
        /// Its last known leader in its term; with None the client tries the next server.
        leader: Option<u64>,
    },
}

/// The replicated state machine: a key/value map plus the table that deduplicates retries
/// (client session → its last applied request and result), so a retried request is applied once.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct KvStore {
    /// The key/value map the clients read and write. Change it through [`KvStore::execute`]:
    /// the size the quota is checked against is kept up to date there.
    pub data: BTreeMap<String, String>,
    /// Per client session: its last applied request id and that request's result, so a retry is
    /// answered with the old result instead of being applied again (§8).
    pub sessions: BTreeMap<u64, (u64, OpResult)>,
    /// The highest session id ever expired from `sessions` (0: none). Sessions expire oldest
    /// (lowest id) first, so every session at or below it that is not in the table has expired,
    /// and its requests are refused (`OpResult::SessionExpired`) rather than taken for a new
    /// session's: a retry of an expired session's request is never applied a second time.
    #[serde(default)]
    pub expired_through: u64,
    /// Bytes of keys and values in `data`, counted on first use (a store read from disk or the
    /// wire counts again) and kept by `execute`; not part of the state (equality, hash, order,
    /// serialization), being derived from `data`.
    #[serde(skip)]
    size: OnceLock<u64>,
}

impl PartialEq for KvStore {
    fn eq(&self, other: &Self) -> bool {
        (&self.data, &self.sessions, self.expired_through)
            == (&other.data, &other.sessions, other.expired_through)
    }
}

impl Eq for KvStore {}

impl Hash for KvStore {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.data.hash(state);
        self.sessions.hash(state);
        self.expired_through.hash(state);
    }
}

impl PartialOrd for KvStore {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for KvStore {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (&self.data, &self.sessions, self.expired_through).cmp(&(
            &other.data,
            &other.sessions,
            other.expired_through,
        ))
    }
}

impl KvStore {
    /// Runs `op` on the map with no quota (no deduplication here: the server's client service
    /// deduplicates, §8).
    pub fn execute(&mut self, op: &Op) -> OpResult {
        self.execute_within(op, None)
    }

    /// Bytes of keys and values the store holds: what `--max-db-bytes` bounds.
    pub fn data_bytes(&self) -> u64 {
        *self.size.get_or_init(|| {
            self.data
                .iter()
                .map(|(k, v)| (k.len() + v.len()) as u64)
                .sum()
        })
    }

    /// Runs `op` on the map, refusing a write that would grow the keys and values past `quota`
    /// bytes (a write that does not grow the store passes, so space can be freed).
    pub fn execute_within(&mut self, op: &Op, quota: Option<u64>) -> OpResult {
        let (key, value) = match op {
            Op::Get { key } => return OpResult::Value(self.data.get(key).cloned()),
            Op::Delete { key } => {
                let before = self.data_bytes();
                if let Some(v) = self.data.remove(key) {
                    self.size = OnceLock::from(before - (key.len() + v.len()) as u64);
                }
                return OpResult::Written;
            }
            Op::Put { key, value } | Op::Append { key, value } => (key, value),
        };
        let old = self.data.get(key).map(String::len);
        let new_len = match op {
            Op::Append { .. } => old.unwrap_or(0) + value.len(),
            _ => value.len(),
        };
        if new_len > MAX_VALUE_BYTES {
            return OpResult::TooLarge { bytes: new_len };
        }
        let before = self.data_bytes();
        let held = old.map_or(0, |v| key.len() + v) as u64;
        let after = before - held + (key.len() + new_len) as u64;
        if let Some(quota) = quota.filter(|&q| after > q && after > before) {
            return OpResult::NoSpace {
                bytes: after,
                quota,
            };
        }
        match op {
            Op::Append { .. } => self.data.entry(key.clone()).or_default().push_str(value),
            _ => {
                self.data.insert(key.clone(), value.clone());
            }
        }
        self.size = OnceLock::from(after);
        OpResult::Written
    }
}

/// A snapshot of the state machine through `last_index` (Figure 13).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Snapshot {
    /// lastIncludedIndex (Figure 13): the index of the last entry the snapshot replaces.
    pub last_index: LogIndex,
    /// lastIncludedTerm (Figure 13): that entry's term, so the AppendEntries consistency check
    /// still works at the snapshot boundary.
    pub last_term: Term,
    /// The state machine (map and deduplication table) after every entry through `last_index`.
    pub state: KvStore,
}

/// The messages of the protocol (Figure 2 RPCs, Figure 13 InstallSnapshot) and of the client
/// interface. Every RPC and reply carries the sender's term.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Msg {
    /// Invoked by a candidate to gather votes (Figure 2, §5.2).
    RequestVote {
        /// term: the candidate's term, the one it started by incrementing currentTerm.
        term: Term,
        /// lastLogIndex: index of the candidate's last entry, for the up-to-date check (§5.4.1).
        last_log_index: LogIndex,
        /// lastLogTerm: term of the candidate's last entry, compared first in that check (§5.4.1).
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
    /// Sent by the leader to replicate log entries (§5.3); with no entries, a heartbeat (§5.2).
    AppendEntries {
        /// term: the leader's term; a receiver with a higher term rejects the RPC (§5.1).
        term: Term,
        /// prevLogIndex: index of the log entry immediately preceding the new ones.
        prev_log_index: LogIndex,
        /// prevLogTerm: term of the prevLogIndex entry; the follower accepts only if its own entry
        /// there has this term, which keeps logs consistent (§5.3).
        prev_log_term: Term,
        /// entries[]: the entries to store (none in a heartbeat), at most `max_entries_per_append`.
        entries: Vec<Entry>,
        /// leaderCommit: the leader's commitIndex, so followers learn which entries they may apply.
        leader_commit: LogIndex,
    },
    /// AppendEntries' reply: Figure 2's `success`, carrying the matched index or a conflict hint.
    AppendEntriesReply {
        /// term: the follower's currentTerm, for the leader to update itself (and step down).
        term: Term,
        /// success: the index now matched, or the hint telling the leader how far to back up.
        outcome: AppendOutcome,
    },
    /// Sent by the leader when a follower needs entries it has compacted away (Figure 13, §7); the
    /// snapshot travels whole in one message, so Figure 13's `offset` and `done` are not needed.
    InstallSnapshot {
        /// term: the leader's term.
        term: Term,
        /// lastIncludedIndex, lastIncludedTerm and the state machine (Figure 13's `data`).
        snapshot: Snapshot,
    },
    /// InstallSnapshot's reply. Figure 13's carries only the term; this one also says what the
    /// follower now holds, so the leader can advance matchIndex without waiting for a heartbeat.
    InstallSnapshotReply {
        /// term: the follower's currentTerm, for the leader to update itself.
        term: Term,
        /// The snapshot's lastIncludedIndex, now held by the follower: the leader's matchIndex for
        /// it (0 in the reply to a stale term, which the leader ignores).
        last_index: LogIndex,
    },
    /// A client asks the server it believes leads to apply a command (§8).
    ClientRequest(Command),
    /// A server answers a client: the command's result, or a redirect to the leader.
    ClientResponse {
        /// The id of the request answered, so the client can ignore answers to finished ones.
        request_id: u64,
        /// The result, or the redirect.
        reply: ClientReply,
    },
    /// A server that lost durable state asks a peer for its term (protocol-aware recovery,
    /// `Recovery`): what it may have promised before the damage lies in terms its peers know.
    RecoveryQuery,
    /// The answer to a `RecoveryQuery`.
    RecoveryReply {
        /// The peer's currentTerm: no higher than what the peer now knows.
        term: Term,
        /// True when the peer is recovering too: it lost its term, so its answer bounds nothing.
        recovering: bool,
        /// The leader's last log index, when the peer leads `term`: the asker is repaired once
        /// its log matches the leader's through it.
        leader_last: Option<LogIndex>,
        /// True when the peer holds an entry or a snapshot. When no peer does, nothing was ever
        /// written, so nothing can have been acknowledged, and an asker that holds nothing either
        /// (a data directory deleted, or a brand-new server: they look the same) starts as new.
        /// (Missing, as from an older build: taken as true, which can only keep the asker recovering.)
        #[serde(default = "assume_entries")]
        holds_entries: bool,
        /// True when the peer is recovering from an empty data directory, not from damage it
        /// detected: it may be new. (Missing, as from an older build: false, the safe answer.)
        #[serde(default)]
        maybe_new: bool,
    },
}

/// A `RecoveryReply` without `holds_entries` says nothing about the peer's log: assume the safe
/// answer, that it holds entries.
fn assume_entries() -> bool {
    true
}

/// Terms and log indexes a server accepts from outside are below this. A real cluster never
/// comes near it (a term a millisecond for 146,000 years), and with every input below it no
/// `term + 1` or `index + 1` anywhere can wrap: a forged term 2^64 - 1 would otherwise move
/// every server to it and wrap the next election's term to 0, terms going backwards.
pub const MAX_WIRE_NUMBER: u64 = 1 << 62;

impl Msg {
    /// Whether every term and log index the message carries is below [`MAX_WIRE_NUMBER`]: a
    /// message that fails this is malformed, whoever sent it.
    pub fn numbers_in_range(&self) -> bool {
        let ok = |n: u64| n < MAX_WIRE_NUMBER;
        match self {
            Msg::RequestVote {
                term,
                last_log_index,
                last_log_term,
            } => ok(*term) && ok(*last_log_index) && ok(*last_log_term),
            Msg::RequestVoteReply { term, .. } => ok(*term),
            Msg::AppendEntries {
                term,
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
            } => {
                [*term, *prev_log_index, *prev_log_term, *leader_commit]
                    .into_iter()
                    .all(ok)
                    && entries.iter().all(|e| ok(e.term))
                    && ok(prev_log_index.saturating_add(entries.len() as u64))
            }
            Msg::AppendEntriesReply { term, outcome } => {
                ok(*term)
                    && match outcome {
                        AppendOutcome::Matched { match_index } => ok(*match_index),
                        AppendOutcome::Conflict { term, first_index } => {
                            term.is_none_or(ok) && ok(*first_index)
                        }
                    }
            }
            Msg::InstallSnapshot { term, snapshot } => {
                ok(*term) && ok(snapshot.last_index) && ok(snapshot.last_term)
            }
            Msg::InstallSnapshotReply { term, last_index } => ok(*term) && ok(*last_index),
            Msg::RecoveryReply {
                term, leader_last, ..
            } => ok(*term) && leader_last.is_none_or(ok),
            Msg::ClientRequest(_) | Msg::ClientResponse { .. } | Msg::RecoveryQuery => true,
        }
    }
}

/// Timers: durations matter only in the UDP runtime; the checker lets any armed timer fire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Timer {
    /// Followers and candidates: no leader heard from in time, so start an election (§5.2).
    Election,
    /// Leaders: time to send empty AppendEntries so followers do not start elections (§5.2).
    Heartbeat,
    /// Clients: no answer in time, so send the same request to the next server.
    ClientRetry,
}

/// The server's timers: the ones its handlers arm and the only ones it is handed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ServerTimer {
    /// Followers and candidates: no leader heard from in time (§5.2).
    Election,
    /// Leaders: time for empty AppendEntries (§5.2).
    Heartbeat,
}

/// The client's timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ClientTimer {
    /// No answer in time: retry with the same request id.
    Retry,
}

impl From<ServerTimer> for Timer {
    fn from(t: ServerTimer) -> Timer {
        match t {
            ServerTimer::Election => Timer::Election,
            ServerTimer::Heartbeat => Timer::Heartbeat,
        }
    }
}

impl From<ClientTimer> for Timer {
    fn from(t: ClientTimer) -> Timer {
        match t {
            ClientTimer::Retry => Timer::ClientRetry,
        }
    }
}

impl TryFrom<Timer> for ServerTimer {
    type Error = Timer;
    /// A server's timer, or the timer back if it is not one.
    fn try_from(t: Timer) -> Result<ServerTimer, Timer> {
        match t {
            Timer::Election => Ok(ServerTimer::Election),
            Timer::Heartbeat => Ok(ServerTimer::Heartbeat),
            other => Err(other),
        }
    }
}

impl TryFrom<Timer> for ClientTimer {
    type Error = Timer;
    /// The client's timer, or the timer back if it is not it.
    fn try_from(t: Timer) -> Result<ClientTimer, Timer> {
        match t {
            Timer::ClientRetry => Ok(ClientTimer::Retry),
            other => Err(other),
        }
    }
}

impl Timer {
    /// Every timer, for the model to enumerate the armed ones in its bit set.
    pub const ALL: [Timer; 3] = [Timer::Election, Timer::Heartbeat, Timer::ClientRetry];

    /// This timer's bit in the model's per-actor bit set of armed timers.
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
            Op::Delete { key } => write!(f, "delete {key}"),
        }
    }
}

impl fmt::Display for OpResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpResult::Written => write!(f, "ok"),
            OpResult::Value(Some(v)) => write!(f, "{v:?}"),
            OpResult::Value(None) => write!(f, "none"),
            OpResult::TooLarge { bytes } => {
                write!(f, "refused: {bytes} bytes, over {MAX_VALUE_BYTES}")
            }
            OpResult::NoSpace { bytes, quota } => {
                write!(f, "no space: {bytes} bytes, over the quota of {quota}")
            }
            OpResult::SessionExpired => write!(f, "session expired"),
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
            Op::Delete { key } => write!(f, "{}:-{key}", self.term),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(term: Term) -> Entry {
        Entry {
            term,
            command: Arc::new(Command {
                client: 9,
                request_id: 1,
                op: Op::Get { key: "x".into() },
            }),
        }
    }

    /// Builds a message from its terms and indices: `n[i]` is its i-th number.
    type Build = fn(&[u64]) -> Msg;

    /// Every message kind, with how many numbers it carries.
    fn messages() -> Vec<(usize, Build)> {
        vec![
            (3, |n| Msg::RequestVote {
                term: n[0],
                last_log_index: n[1],
                last_log_term: n[2],
            }),
            (1, |n| Msg::RequestVoteReply {
                term: n[0],
                granted: true,
            }),
            (5, |n| Msg::AppendEntries {
                term: n[0],
                prev_log_index: n[1],
                prev_log_term: n[2],
                entries: vec![entry(n[3])],
                leader_commit: n[4],
            }),
            (2, |n| Msg::AppendEntriesReply {
                term: n[0],
                outcome: AppendOutcome::Matched { match_index: n[1] },
            }),
            (3, |n| Msg::AppendEntriesReply {
                term: n[0],
                outcome: AppendOutcome::Conflict {
                    term: Some(n[1]),
                    first_index: n[2],
                },
            }),
            (3, |n| Msg::InstallSnapshot {
                term: n[0],
                snapshot: Snapshot {
                    last_index: n[1],
                    last_term: n[2],
                    state: KvStore::default(),
                },
            }),
            (2, |n| Msg::InstallSnapshotReply {
                term: n[0],
                last_index: n[1],
            }),
            (2, |n| Msg::RecoveryReply {
                term: n[0],
                recovering: false,
                leader_last: Some(n[1]),
                holds_entries: true,
                maybe_new: false,
            }),
        ]
    }

    /// Each term and index a message carries is checked on its own: a forged datagram with one
    /// number out of range and the others in range is refused (the node decodes with it).
    #[test]
    fn every_number_a_message_carries_is_range_checked() {
        for (count, build) in messages() {
            let small = vec![1; count];
            assert!(build(&small).numbers_in_range(), "{:?}", build(&small));
            for i in 0..count {
                let mut numbers = small.clone();
                numbers[i] = MAX_WIRE_NUMBER;
                let msg = build(&numbers);
                assert!(!msg.numbers_in_range(), "number {i} of {msg:?}");
            }
        }
        // The last index an AppendEntries reaches is checked too: it would overflow past it.
        let reaching = Msg::AppendEntries {
            term: 1,
            prev_log_index: MAX_WIRE_NUMBER - 1,
            prev_log_term: 1,
            entries: vec![entry(1)],
            leader_commit: 1,
        };
        assert!(!reaching.numbers_in_range());
    }

    /// The network keeps messages in flight in a canonical order (`partition_point(|e| *e <=
    /// env)`), and `<=` goes through `partial_cmp`: it must agree with `cmp`.
    #[test]
    fn a_state_machines_partial_order_agrees_with_its_order() {
        let mut a = KvStore::default();
        let b = KvStore::default();
        a.execute(&Op::Put {
            key: "x".into(),
            value: "1".into(),
        });
        for (x, y) in [(&a, &b), (&b, &a), (&a, &a)] {
            assert_eq!(x.partial_cmp(y), Some(x.cmp(y)));
        }
        assert!(b <= a && b < a && a <= a);
        // Equality agrees with the order too: stores that differ are not equal.
        assert!(a != b && a == a.clone());
    }

    /// A `RecoveryReply` from an older build, without the fields added since, decodes to the
    /// safe answers: it holds entries (which can only keep the asker recovering), and it is not
    /// new.
    #[test]
    fn a_recovery_reply_from_an_older_build_decodes_to_the_safe_answers() {
        let old = r#"{"RecoveryReply":{"term":3,"recovering":false,"leader_last":null}}"#;
        let msg: Msg = serde_json::from_str(old).expect("an older build's reply decodes");
        let safe = Msg::RecoveryReply {
            term: 3,
            recovering: false,
            leader_last: None,
            holds_entries: true,
            maybe_new: false,
        };
        assert_eq!(msg, safe);
    }
}

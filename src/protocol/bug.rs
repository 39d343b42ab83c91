//! The bug zoo: classic Raft mistakes, each injected at the line of the rule it breaks (grep
//! for `Bug::` in `server/`), never by a copy of the protocol. A model file names one with
//! `bug = "..."`; the checker then shows the shortest run in which the rule's absence breaks a
//! property (README, "The bug zoo").

use serde::{Deserialize, Serialize};

/// Classic Raft mistakes the checker can inject, one at a time (see README, "The bug zoo").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bug {
    /// Figure 8: commit an entry of an earlier term by counting replicas.
    CommitPreviousTermEntries,
    /// votedFor is not written to stable storage, so a restarted server votes again.
    VoteNotPersisted,
    /// Grant a vote without the §5.4.1 "candidate's log is at least as up-to-date" check.
    VoteWithoutLogCheck,
    /// Truncate after prevLogIndex on every AppendEntries, not only on a conflict.
    TruncateOnEveryAppend,
    /// Follower sets commitIndex = min(leaderCommit, last log index), not the last *new* entry.
    CommitWithoutMin,
    /// Adopt a higher term but keep being leader or candidate.
    NoStepDown,
    /// Leader takes AppendEntries replies of an older term into matchIndex.
    AcceptStaleReplies,
    /// InstallSnapshot discards the whole log and resets commitIndex to the snapshot, even when
    /// the follower already has more.
    SnapshotDiscardsLog,
    /// Apply every committed command, even a retry that was already applied.
    NoDeduplication,
    /// A server whose storage was damaged restarts from what is left as if nothing was lost,
    /// instead of recovering (`Recovery`): a wiped server votes again in a term it voted in.
    RecoverAsNew,
    // Liveness bugs: every safety property still holds; some run never makes progress.
    /// A client that never retries: a lost request (or its lost answer) leaves its operation
    /// pending forever.
    ClientNoRetry,
    /// A leader sends entries only when a client adds one: a reply that shows a follower behind
    /// (its AppendEntries was lost) is not answered with the entries, so they never arrive.
    NoAppendRetry,
    /// A leader ignores InstallSnapshot replies: it never learns that the follower holds the
    /// snapshot, keeps sending it, and never sends the entries after it.
    IgnoreSnapshotReplies,
    /// A leader never moves nextIndex back on a conflict: a follower whose log is shorter than
    /// the leader assumed never catches up.
    NoNextIndexBackoff,
    // Timing traps (Students' Guide to Raft): they change when timers fire, not which steps
    // are possible, so the untimed checker sees no difference (README, "The liveness bug
    // zoo"); the simulator, which has time, measures what they cost.
    /// A follower resets its election timer on every RequestVote, even one it refuses: a
    /// candidate whose log nobody accepts keeps everyone else from standing.
    ResetTimerOnRefusedVote,
    /// A candidate ignores AppendEntries from the leader of its own term instead of following
    /// it: it times out and disrupts that leader with a new term.
    CandidateIgnoresLeader,
}

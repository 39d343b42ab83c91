//! Handler tests: a state and one message in, the exact new state and commands out.

use super::*;
use stateright::actor::Command as Cmd;

fn server(bug: Option<Bug>) -> RaftServer {
    let mut cfg = ServerConfig::new(3);
    cfg.bug = bug;
    RaftServer::new(cfg)
}

fn entry(term: Term, value: &str) -> Entry {
    Entry {
        term,
        command: std::sync::Arc::new(Command {
            client: 3,
            request_id: 1,
            op: Op::Put {
                key: "x".into(),
                value: value.into(),
            },
        }),
    }
}

fn follower(term: Term, entries: Vec<Entry>) -> ServerState {
    let mut s = ServerState::restore(None);
    s.term = term;
    s.log.entries = entries.into();
    s
}

fn deliver(a: &RaftServer, s: &ServerState, from: usize, msg: Msg) -> (ServerState, Vec<String>) {
    let mut cow = Cow::Borrowed(s);
    let mut out = Out::new();
    a.on_msg(Id::from(0), &mut cow, Id::from(from), msg, &mut out);
    let cmds = out.iter().map(|c| format!("{c:?}")).collect();
    (cow.into_owned(), cmds)
}

/// AppendEntries(term, (prevLogIndex, prevLogTerm), entries, leaderCommit).
fn append_entries(
    term: Term,
    (prev_log_index, prev_log_term): (LogIndex, Term),
    entries: Vec<Entry>,
    leader_commit: LogIndex,
) -> Msg {
    Msg::AppendEntries {
        term,
        prev_log_index,
        prev_log_term,
        entries,
        leader_commit,
    }
}

/// AppendEntriesReply(term, Conflict { term: conflicting term, first_index }): the follower's
/// hint for where the leader should go back to.
fn append_conflict(term: Term, conflict_term: Option<Term>, first_index: LogIndex) -> Msg {
    Msg::AppendEntriesReply {
        term,
        outcome: AppendOutcome::Conflict {
            term: conflict_term,
            first_index,
        },
    }
}

fn send(to: usize, msg: Msg) -> String {
    format!(
        "{:?}",
        Cmd::<Msg, ServerTimer, (), Storage>::Send(Id::from(to), msg)
    )
}

fn storage_of(s: &ServerState) -> String {
    format!(
        "{:?}",
        Cmd::<Msg, ServerTimer, (), Storage>::Save(Storage {
            term: s.term,
            voted_for: s.voted_for,
            log: s.log.clone(),
            snapshot: s.snapshot.clone(),
            recovering: s.recovery.is_some(),
            maybe_new: false,
        })
    )
}

#[test]
fn higher_term_vote_request_is_saved_before_the_vote_is_sent() {
    // Figure 2: term and vote reach stable storage before the reply leaves.
    let a = server(None);
    let s = follower(1, vec![]);
    let (next, cmds) = deliver(
        &a,
        &s,
        1,
        Msg::RequestVote {
            term: 2,
            last_log_index: 0,
            last_log_term: 0,
        },
    );
    assert_eq!(next.term, 2);
    assert_eq!(next.voted_for, Some(1));
    assert_eq!(cmds[0], storage_of(&next));
    assert!(cmds[1].starts_with("SetTimer(Election"));
    let vote = Msg::RequestVoteReply {
        term: 2,
        granted: true,
    };
    assert_eq!(cmds[2], send(1, vote));
    assert_eq!(cmds.len(), 3);
}

#[test]
fn vote_refused_to_a_candidate_with_an_older_log() {
    // §5.4.1: last term 1 < our last term 2.
    let a = server(None);
    let s = follower(2, vec![entry(2, "a")]);
    let (next, cmds) = deliver(
        &a,
        &s,
        1,
        Msg::RequestVote {
            term: 3,
            last_log_index: 5,
            last_log_term: 1,
        },
    );
    assert_eq!(next.voted_for, None);
    assert_eq!(next.term, 3);
    assert!(cmds.last().unwrap().contains("granted: false"));
    // The bug grants it.
    let (next, _) = deliver(
        &server(Some(Bug::VoteWithoutLogCheck)),
        &s,
        1,
        Msg::RequestVote {
            term: 3,
            last_log_index: 5,
            last_log_term: 1,
        },
    );
    assert_eq!(next.voted_for, Some(1));
}

#[test]
fn stale_append_entries_does_not_truncate_matching_entries() {
    // AppendEntries rule 3: delete only on a real conflict.
    let a = server(None);
    let s = follower(1, vec![entry(1, "a"), entry(1, "b")]);
    let stale = append_entries(1, (0, 0), vec![entry(1, "a")], 0);
    let (next, cmds) = deliver(&a, &s, 1, stale.clone());
    assert_eq!(next.log.entries.len(), 2);
    assert!(cmds.last().unwrap().contains("Matched { match_index: 1 }"));
    let (next, _) = deliver(&server(Some(Bug::TruncateOnEveryAppend)), &s, 1, stale);
    assert_eq!(next.log.entries.len(), 1);
}

/// The zoo bug `truncate_on_every_append` cuts only what a message does not carry: a heartbeat
/// at the end of the log cuts nothing and writes nothing, exactly as correct Raft does, so the
/// bug's counterexamples show the bug and nothing else.
#[test]
fn with_the_truncation_bug_a_heartbeat_at_the_log_end_changes_nothing() {
    let s = follower(1, vec![entry(1, "a"), entry(1, "b")]);
    let heartbeat = append_entries(1, (2, 1), vec![], 0);
    let (correct, correct_cmds) = deliver(&server(None), &s, 1, heartbeat.clone());
    let bug = server(Some(Bug::TruncateOnEveryAppend));
    let (next, cmds) = deliver(&bug, &s, 1, heartbeat);
    assert_eq!((next, cmds), (correct, correct_cmds));
}

#[test]
fn conflicting_entry_is_replaced_and_commit_is_capped_at_last_new_entry() {
    // Rule 3 and rule 5: commit = min(leaderCommit, index of last new entry).
    let a = server(None);
    let s = follower(1, vec![entry(1, "a"), entry(1, "stale")]);
    let msg = append_entries(2, (0, 0), vec![entry(1, "a")], 2);
    let (next, _) = deliver(&a, &s, 1, msg.clone());
    assert_eq!(next.commit_index, 1);
    let (next, _) = deliver(&server(Some(Bug::CommitWithoutMin)), &s, 1, msg);
    assert_eq!(next.commit_index, 2);
}

#[test]
fn heartbeat_carries_no_entries_and_the_reply_brings_them() {
    // §5.2: heartbeats are AppendEntries with no entries; a follower that is behind answers
    // with the index it matches, and that answer sends it what it lacks.
    let a = server(None);
    let mut s = follower(2, vec![entry(1, "a"), entry(2, "b")]);
    s.commit_index = 2;
    s.role = Role::Leader {
        next_index: vec![3, 2, 3],
        match_index: vec![2, 1, 2],
    };
    let mut cow = Cow::Borrowed(&s);
    let mut out = Out::new();
    a.on_timeout(Id::from(0), &mut cow, &ServerTimer::Heartbeat, &mut out);
    let cmds: Vec<String> = out.iter().map(|c| format!("{c:?}")).collect();
    assert_eq!(cmds.len(), 3, "{cmds:?}");
    assert_eq!(cmds[0], send(1, append_entries(2, (1, 1), vec![], 2)));
    assert_eq!(cmds[1], send(2, append_entries(2, (2, 2), vec![], 2)));
    assert!(cmds[2].starts_with("SetTimer(Heartbeat"));

    let reply = Msg::AppendEntriesReply {
        term: 2,
        outcome: AppendOutcome::Matched { match_index: 1 },
    };
    let (_, cmds) = deliver(&a, &s, 1, reply);
    let catch_up = append_entries(2, (1, 1), vec![entry(2, "b")], 2);
    assert_eq!(cmds, vec![send(1, catch_up)]);
}

#[test]
fn heartbeat_commit_is_capped_at_the_entry_it_vouches_for() {
    // Rule 5 on a heartbeat: prevLogIndex 0 vouches for nothing, so a stale entry at index 1
    // stays uncommitted whatever leaderCommit says.
    let s = follower(1, vec![entry(1, "stale")]);
    let heartbeat = append_entries(2, (0, 0), vec![], 1);
    let (next, _) = deliver(&server(None), &s, 1, heartbeat.clone());
    assert_eq!((next.commit_index, next.last_applied), (0, 0));
    let (next, _) = deliver(&server(Some(Bug::CommitWithoutMin)), &s, 1, heartbeat);
    assert_eq!((next.commit_index, next.last_applied), (1, 1));
}

#[test]
fn conflict_hint_names_the_term_and_its_first_index() {
    let a = server(None);
    let s = follower(2, vec![entry(1, "a"), entry(2, "b"), entry(2, "c")]);
    let msg = append_entries(3, (3, 3), vec![], 0);
    let (_, cmds) = deliver(&a, &s, 1, msg);
    assert!(
        cmds.last()
            .unwrap()
            .contains("Conflict { term: Some(2), first_index: 2 }"),
        "{cmds:?}"
    );
}

#[test]
fn install_snapshot_edge_cases() {
    // Figure 13: (base index, entries kept, commit index) after installing a snapshot
    // through `last_index` (term 1) on a follower with two term-1 entries.
    let install = |commit: LogIndex, last_index: LogIndex| {
        let mut s = follower(1, vec![entry(1, "a"), entry(1, "b")]);
        s.commit_index = commit;
        s.last_applied = commit;
        let snapshot = Snapshot {
            last_index,
            last_term: 1,
            state: KvStore::default(),
        };
        let msg = Msg::InstallSnapshot { term: 1, snapshot };
        let (next, cmds) = deliver(&server(None), &s, 1, msg);
        assert!(cmds.last().unwrap().contains("InstallSnapshotReply"));
        (
            next.log.base_index,
            next.log.entries.len(),
            next.commit_index,
        )
    };
    // Older than the commit index, or at it: nothing changes but the reply.
    assert_eq!(install(2, 1), (0, 2, 2));
    assert_eq!(install(2, 2), (0, 2, 2));
    // Covers part of the log with a matching entry: the suffix is kept (rule 6).
    assert_eq!(install(0, 1), (1, 1, 1));
    // Beyond the log: the log is replaced (rule 7).
    assert_eq!(install(0, 5), (5, 0, 5));
}

#[test]
fn append_entries_overlapping_the_snapshot() {
    // §7: entries up to a snapshot's last index are committed, so they match the leader's.
    // A follower compacted through index 2 holds entry 3; a leader that sends from an index
    // inside the snapshot has the covered entries skipped, not refused.
    let mut s = follower(1, vec![entry(1, "a"), entry(1, "b"), entry(1, "c")]);
    s.commit_index = 2;
    s.last_applied = 2;
    s.log.compact_through(2, 1);
    let a = server(None);
    // Hearing from the leader restarts the election timer; the rest must be exact.
    let deliver = |s: &ServerState, msg: Msg| {
        let (next, mut cmds) = deliver(&a, s, 1, msg);
        let timer = cmds.iter().position(|c| c.starts_with("SetTimer(Election"));
        cmds.remove(timer.expect("the election timer restarts"));
        (next, cmds)
    };
    let matched = |m: LogIndex| {
        let outcome = AppendOutcome::Matched { match_index: m };
        send(1, Msg::AppendEntriesReply { term: 1, outcome })
    };
    // prev = 1: entry 2 is covered, entry 3 matches, entry 4 is appended.
    let three = vec![entry(1, "b"), entry(1, "c"), entry(1, "d")];
    let (next, cmds) = deliver(&s, append_entries(1, (1, 1), three, 2));
    assert_eq!(next.log.last_index(), 4);
    assert_eq!(next.log.summary(), "[…2|1:x=c 1:x=d]");
    assert_eq!(cmds, [storage_of(&next), matched(4)]);
    // prev = 0 with one entry: all of it is covered; the reply vouches for index 1 only.
    let (next, cmds) = deliver(&s, append_entries(1, (0, 0), vec![entry(1, "a")], 2));
    assert_eq!(next.log, s.log);
    assert_eq!(cmds, [matched(1)]);
}

#[test]
fn a_leader_asked_for_recovery_forgets_what_the_asker_acknowledged() {
    // The asker's disk was damaged: what it acknowledged may be gone, so it counts toward no
    // commit until it acknowledges again, and it is sent the log from its nextIndex.
    let a = server(None);
    let mut s = follower(2, vec![entry(1, "a"), entry(2, "b")]);
    s.commit_index = 2;
    s.role = Role::Leader {
        next_index: vec![3, 3, 3],
        match_index: vec![2, 2, 2],
    };
    let (next, cmds) = deliver(&a, &s, 1, Msg::RecoveryQuery);
    let (_, match_index) = progress(&next);
    assert_eq!(match_index, [2, 0, 2]);
    let reply = Msg::RecoveryReply {
        term: 2,
        recovering: false,
        leader_last: Some(2),
        holds_entries: true,
        maybe_new: false,
    };
    assert_eq!(cmds[0], send(1, reply));
    assert_eq!(cmds[1], send(1, append_entries(2, (2, 2), vec![], 2)));
    // A follower with an empty log says it holds nothing, and names no leader's last index.
    let (_, cmds) = deliver(&a, &follower(2, vec![]), 1, Msg::RecoveryQuery);
    assert_eq!(cmds, [send(1, recovery_reply(2, false, false, false))]);
    // An id past the cluster's servers (no peer key names it in a real cluster) changes
    // nothing and is not answered: no handler indexes past its per-server arrays.
    for msg in [
        Msg::RecoveryQuery,
        Msg::RequestVoteReply {
            term: 2,
            granted: true,
        },
    ] {
        let (next, cmds) = deliver(&a, &s, 3, msg);
        assert!(next == s && cmds.is_empty(), "{cmds:?}");
    }
}

#[test]
fn leader_does_not_commit_an_earlier_term_entry_by_counting() {
    // §5.4.2, Figure 8.
    let mut s = follower(3, vec![entry(1, "a")]);
    s.role = Role::Leader {
        next_index: vec![2, 2, 2],
        match_index: vec![1, 0, 0],
    };
    let reply = Msg::AppendEntriesReply {
        term: 3,
        outcome: AppendOutcome::Matched { match_index: 1 },
    };
    let (next, _) = deliver(&server(None), &s, 1, reply.clone());
    assert_eq!(next.commit_index, 0);
    let (next, _) = deliver(&server(Some(Bug::CommitPreviousTermEntries)), &s, 1, reply);
    assert_eq!(next.commit_index, 1);
}

/// Handlers fed arbitrary field values (as a forged or corrupt datagram that passed the wire's
/// checks would carry them): never a panic, never a term going backwards, never a leader
/// believing a follower holds more than it sent, never a commit past the log.
mod arbitrary_fields {
    use super::*;
    use proptest::prelude::*;

    /// Small values (where the logic lives), values near the wire's limit, and any below it.
    fn number() -> impl Strategy<Value = u64> {
        prop_oneof![
            0..6u64,
            (MAX_WIRE_NUMBER - 3)..MAX_WIRE_NUMBER,
            0..MAX_WIRE_NUMBER,
        ]
    }

    fn entries() -> impl Strategy<Value = Vec<Entry>> {
        proptest::collection::vec(number().prop_map(|t| entry(t, "v")), 0..3)
    }

    fn msg() -> impl Strategy<Value = Msg> {
        let n = number;
        prop_oneof![
            (n(), n(), n()).prop_map(|(term, last_log_index, last_log_term)| {
                Msg::RequestVote {
                    term,
                    last_log_index,
                    last_log_term,
                }
            }),
            (n(), any::<bool>())
                .prop_map(|(term, granted)| Msg::RequestVoteReply { term, granted }),
            (n(), n(), n(), entries(), n()).prop_map(|(term, i, t, entries, commit)| {
                append_entries(term, (i, t), entries, commit)
            }),
            (n(), n()).prop_map(|(term, m)| Msg::AppendEntriesReply {
                term,
                outcome: AppendOutcome::Matched { match_index: m },
            }),
            (n(), proptest::option::of(n()), n())
                .prop_map(|(term, t, first_index)| append_conflict(term, t, first_index)),
            (n(), n(), n()).prop_map(|(term, last_index, last_term)| Msg::InstallSnapshot {
                term,
                snapshot: Snapshot {
                    last_index,
                    last_term,
                    state: KvStore::default(),
                },
            }),
            (n(), n())
                .prop_map(|(term, last_index)| Msg::InstallSnapshotReply { term, last_index }),
        ]
    }

    /// A follower, a candidate and a leader of term 2, each with two entries (one committed).
    fn states() -> Vec<ServerState> {
        let base = || {
            let mut s = follower(2, vec![entry(1, "a"), entry(2, "b")]);
            s.commit_index = 1;
            s.last_applied = 1;
            s
        };
        let mut candidate = base();
        candidate.role = Role::Candidate { votes: 1 };
        let mut leader = base();
        leader.role = Role::Leader {
            next_index: vec![3, 2, 3],
            match_index: vec![2, 1, 0],
        };
        vec![base(), candidate, leader]
    }

    fn matches_within_log(s: &ServerState) -> bool {
        match &s.role {
            Role::Leader { match_index, .. } => {
                match_index.iter().all(|&m| m <= s.log.last_index())
            }
            _ => true,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5000))]
        #[test]
        fn no_field_value_panics_moves_a_term_back_or_matches_past_the_log(
            messages in proptest::collection::vec((1..3usize, msg()), 1..6),
        ) {
            let a = server(None);
            for start in states() {
                let mut s = start;
                for (from, m) in messages.clone() {
                    let before = s.term;
                    s = deliver(&a, &s, from, m).0;
                    prop_assert!(s.term >= before, "term went from {} to {}", before, s.term);
                    prop_assert!(matches_within_log(&s));
                    prop_assert!(s.commit_index <= s.log.last_index().max(s.log.base_index));
                    prop_assert!(s.last_applied <= s.commit_index);
                }
            }
        }
    }

    #[test]
    fn a_conflict_hint_of_index_0_is_ignored() {
        // Found by the property test above in CI: it moved matchIndex to 0 - 1 and nextIndex to
        // 0, and the resend panicked (a forged datagram could crash the leader).
        let a = server(None);
        let s = states().remove(2);
        let forged = append_conflict(2, None, 0);
        let (after, cmds) = deliver(&a, &s, 1, forged);
        assert_eq!(after, s);
        assert!(cmds.is_empty(), "{cmds:?}");
    }

    #[test]
    fn a_reply_claiming_more_than_was_sent_is_ignored() {
        // Two forged acknowledgements of index 2^62 - 1 must not commit the leader's entry 2:
        // no follower holds it.
        let a = server(None);
        let mut s = states().remove(2);
        for from in [1, 2] {
            let forged = Msg::AppendEntriesReply {
                term: 2,
                outcome: AppendOutcome::Matched {
                    match_index: MAX_WIRE_NUMBER - 1,
                },
            };
            s = deliver(&a, &s, from, forged).0;
            let forged = Msg::InstallSnapshotReply {
                term: 2,
                last_index: MAX_WIRE_NUMBER - 1,
            };
            s = deliver(&a, &s, from, forged).0;
        }
        assert_eq!(s.commit_index, 1);
        assert!(matches_within_log(&s));
    }
}

#[test]
fn a_value_may_not_grow_past_the_limit_and_a_refused_write_changes_nothing() {
    let mut kv = KvStore::default();
    let put = |value: String| Op::Put {
        key: "k".into(),
        value,
    };
    let append = |n: usize| Op::Append {
        key: "k".into(),
        value: "a".repeat(n),
    };
    assert_eq!(
        kv.execute(&put("b".repeat(MAX_VALUE_BYTES + 1))),
        OpResult::TooLarge {
            bytes: MAX_VALUE_BYTES + 1
        }
    );
    assert_eq!(kv.data.get("k"), None);
    assert_eq!(kv.execute(&append(MAX_VALUE_BYTES - 1)), OpResult::Written);
    assert_eq!(
        kv.execute(&append(2)),
        OpResult::TooLarge {
            bytes: MAX_VALUE_BYTES + 1
        }
    );
    assert_eq!(kv.data["k"].len(), MAX_VALUE_BYTES - 1);
    assert_eq!(kv.execute(&append(1)), OpResult::Written);
    assert_eq!(kv.data["k"].len(), MAX_VALUE_BYTES);
}

/// Figure 2, followers: the election timer restarts on "granting vote to candidate", not on a
/// refused one. The timing trap `ResetTimerOnRefusedVote` restarts it on both.
/// Reference: Students' Guide to Raft, "Livelocks".
#[test]
fn a_refused_vote_leaves_the_election_timer_alone() {
    let mut s = follower(2, vec![entry(2, "1")]);
    s.voted_for = Some(2);
    let stale = Msg::RequestVote {
        term: 2,
        last_log_index: 0,
        last_log_term: 0,
    };
    let (_, cmds) = deliver(&server(None), &s, 1, stale.clone());
    assert_eq!(
        cmds,
        [send(
            1,
            Msg::RequestVoteReply {
                term: 2,
                granted: false
            }
        )]
    );
    let (_, cmds) = deliver(&server(Some(Bug::ResetTimerOnRefusedVote)), &s, 1, stale);
    assert_eq!(cmds.len(), 2);
    assert!(cmds[0].starts_with("SetTimer(Election"), "{cmds:?}");
}

/// Figure 2, candidates: "If AppendEntries RPC received from new leader: convert to follower"
/// (§5.2: a leader of its own term). The timing trap `CandidateIgnoresLeader` stays a candidate
/// and answers nothing, so its election timer fires and disrupts that leader.
#[test]
fn a_candidate_follows_the_leader_of_its_term() {
    let mut s = follower(2, vec![]);
    s.role = Role::Candidate { votes: 1 };
    s.voted_for = Some(0);
    let heartbeat = append_entries(2, (0, 0), vec![], 0);
    let (next, cmds) = deliver(&server(None), &s, 1, heartbeat.clone());
    assert_eq!((next.role.clone(), next.leader), (Role::Follower, Some(1)));
    assert!(cmds.iter().any(|c| c.contains("Matched")), "{cmds:?}");
    let buggy = server(Some(Bug::CandidateIgnoresLeader));
    let (next, cmds) = deliver(&buggy, &s, 1, heartbeat.clone());
    assert_eq!(next, s);
    assert!(cmds.is_empty(), "{cmds:?}");
    // The trap is the candidate's alone: a follower of the term still answers the leader.
    let (next, cmds) = deliver(&buggy, &follower(2, vec![]), 1, heartbeat);
    assert_eq!(next.leader, Some(1));
    assert!(cmds.iter().any(|c| c.contains("Matched")), "{cmds:?}");
}

/// The quota (`node --max-db-bytes`): a write that would grow the keys and values past it is
/// refused with `NoSpace` and changes nothing; reads, and writes that do not grow the store,
/// still pass, so space can be freed. The size the quota is checked against stays equal to a
/// recount of the map, also for a store read back from its serialized form (a snapshot).
#[test]
fn writes_past_the_quota_are_refused_and_shrinking_writes_pass() {
    let put = |k: &str, v: &str| Op::Put {
        key: k.into(),
        value: v.into(),
    };
    let quota = Some(10);
    let mut kv = KvStore::default();
    assert_eq!(
        kv.execute_within(&put("a", "1234"), quota),
        OpResult::Written
    );
    let append = Op::Append {
        key: "a".into(),
        value: "5678".into(),
    };
    assert_eq!(kv.execute_within(&append, quota), OpResult::Written);
    assert_eq!(kv.data_bytes(), 9);
    let refused = kv.execute_within(&put("b", "xy"), quota);
    assert_eq!(
        refused,
        OpResult::NoSpace {
            bytes: 12,
            quota: 10
        }
    );
    assert_eq!((kv.data.get("b"), kv.data_bytes()), (None, 9));
    assert_eq!(
        kv.execute_within(&Op::Get { key: "a".into() }, quota),
        OpResult::Value(Some("12345678".into()))
    );
    // Over the quota already (it was lowered): a shorter value still passes.
    assert_eq!(
        kv.execute_within(&put("a", "1"), Some(5)),
        OpResult::Written
    );
    assert_eq!(kv.data_bytes(), 2);
    // A delete frees space, and a write refused before then fits.
    let refused = OpResult::NoSpace { bytes: 7, quota: 5 };
    assert_eq!(kv.execute_within(&put("c", "1234"), Some(5)), refused);
    let delete = Op::Delete { key: "a".into() };
    assert_eq!(kv.execute_within(&delete, Some(5)), OpResult::Written);
    assert_eq!((kv.data.get("a"), kv.data_bytes()), (None, 0));
    assert_eq!(
        kv.execute_within(&put("c", "1234"), Some(5)),
        OpResult::Written
    );
    assert_eq!(kv.execute_within(&delete, Some(5)), OpResult::Written);
    assert_eq!(kv.data_bytes(), 5, "deleting an absent key changes nothing");
    let back: KvStore = serde_json::from_str(&serde_json::to_string(&kv).unwrap()).unwrap();
    assert_eq!(back.data_bytes(), 5);
    assert_eq!(back, kv);
}

/// A one-server cluster's leader with an empty log, so a request commits as it is appended.
fn lone_leader(cfg: ServerConfig) -> (RaftServer, ServerState) {
    let mut s = follower(1, vec![]);
    s.role = Role::Leader {
        next_index: vec![1],
        match_index: vec![0],
    };
    s.leader = Some(0);
    (RaftServer::new(cfg), s)
}

/// The quota is decided as the entry is applied, and the result is deduplicated like any other
/// (§8): the leader answers NoSpace, and a retry of the same request gets the same answer
/// without being applied.
#[test]
fn a_refused_write_is_answered_and_its_retry_is_not_applied() {
    let mut cfg = ServerConfig::new(1);
    cfg.max_db_bytes = Some(4);
    let (a, s) = lone_leader(cfg);
    let request = Msg::ClientRequest(Command {
        client: 7,
        request_id: 1,
        op: Op::Put {
            key: "k".into(),
            value: "value".into(),
        },
    });
    let (next, cmds) = deliver(&a, &s, 7, request.clone());
    let refused = send(
        7,
        Msg::ClientResponse {
            request_id: 1,
            reply: ClientReply::Done(OpResult::NoSpace { bytes: 6, quota: 4 }),
        },
    );
    assert!(cmds.contains(&refused), "{cmds:?}");
    assert!(next.kv.data.is_empty());
    let (again, cmds) = deliver(&a, &next, 7, request);
    assert!(cmds.contains(&refused), "{cmds:?}");
    assert_eq!(again.log.last_index(), 1, "the retry is not appended again");
}

/// Raft thesis §6.3: the deduplication table is bounded, the oldest session expiring first, and
/// a request of an expired session is refused, never taken for a new session's. So a retry of
/// an append whose session expired is answered "session expired" and not applied twice.
#[test]
fn a_retry_from_an_expired_session_is_refused_not_applied_twice() {
    let mut cfg = ServerConfig::new(1);
    cfg.max_sessions = Some(1);
    let (a, s) = lone_leader(cfg);
    let append = |client: u64, value: &str| {
        Msg::ClientRequest(Command {
            client,
            request_id: 1,
            op: Op::Append {
                key: "k".into(),
                value: value.into(),
            },
        })
    };
    let reply = |to: usize, result: OpResult| {
        send(
            to,
            Msg::ClientResponse {
                request_id: 1,
                reply: ClientReply::Done(result),
            },
        )
    };
    let (s, cmds) = deliver(&a, &s, 7, append(7, "a"));
    assert!(cmds.contains(&reply(7, OpResult::Written)), "{cmds:?}");
    // A newer session pushes session 7 out of the table.
    let (s, cmds) = deliver(&a, &s, 9, append(9, "b"));
    assert!(cmds.contains(&reply(9, OpResult::Written)), "{cmds:?}");
    assert_eq!(s.kv.sessions.keys().collect::<Vec<_>>(), vec![&9]);
    assert_eq!(s.kv.expired_through, 7);
    // Session 7 retries its append (its answer was lost): refused, not applied again.
    let (s, cmds) = deliver(&a, &s, 7, append(7, "a"));
    assert!(
        cmds.contains(&reply(7, OpResult::SessionExpired)),
        "{cmds:?}"
    );
    assert_eq!(s.kv.data["k"], "ab");
    // A session id at or below the expired ones is refused too; a later one is new.
    let (s, cmds) = deliver(&a, &s, 5, append(5, "c"));
    assert!(
        cmds.contains(&reply(5, OpResult::SessionExpired)),
        "{cmds:?}"
    );
    let (s, cmds) = deliver(&a, &s, 11, append(11, "d"));
    assert!(cmds.contains(&reply(11, OpResult::Written)), "{cmds:?}");
    assert_eq!(s.kv.data["k"], "abd");
    assert_eq!(s.kv.sessions.len(), 1, "the table stays within its bound");
}

/// A server that restarts from damaged storage (here: its term and vote lost, its log kept).
fn recovering(a: &RaftServer, log: Vec<Entry>) -> (ServerState, Vec<String>) {
    let storage = Storage {
        term: 0,
        voted_for: None,
        log: follower(0, log).log,
        snapshot: None,
        recovering: true,
        maybe_new: false,
    };
    let mut out = Out::new();
    let s = a.on_start(Id::from(0), &Some(storage), &mut out);
    (s, out.iter().map(|c| format!("{c:?}")).collect())
}

/// Protocol-aware recovery (Alagappan et al., FAST '18; README, Damaged storage): a server that
/// lost its vote asks every peer for its term, refuses votes and ignores leaders until it knows
/// the floor, and is repaired once the leader of a term at or above it says its log ends where
/// the server's is known to match it; its vote in that term then counts as the leader's.
#[test]
fn a_damaged_server_abstains_until_repaired_from_its_peers() {
    let a = server(None);
    let (s, cmds) = recovering(&a, vec![entry(1, "1")]);
    assert!(cmds.contains(&send(1, Msg::RecoveryQuery)), "{cmds:?}");
    assert!(cmds.contains(&send(2, Msg::RecoveryQuery)), "{cmds:?}");
    let vote = Msg::RequestVote {
        term: 5,
        last_log_index: 9,
        last_log_term: 4,
    };
    let (s2, cmds) = deliver(&a, &s, 1, vote);
    let refused = Msg::RequestVoteReply {
        term: 5,
        granted: false,
    };
    assert!(cmds.contains(&send(1, refused)), "{cmds:?}");
    assert_eq!(s2.voted_for, None);
    // A leader heard before the floor is known is ignored: no reply, nothing appended.
    let (s2, cmds) = deliver(&a, &s, 1, append_entries(1, (1, 1), vec![entry(1, "2")], 2));
    assert_eq!((s2.log.last_index(), cmds.len()), (1, 0), "{cmds:?}");
    // Both peers answer: the floor is 3; S1 leads term 3.
    let reply = |term, leader_last| Msg::RecoveryReply {
        term,
        recovering: false,
        leader_last,
        holds_entries: true,
        maybe_new: false,
    };
    let (s, _) = deliver(&a, &s, 2, reply(2, None));
    let (s, cmds) = deliver(&a, &s, 1, reply(3, Some(2)));
    assert_eq!(s.recovery.as_ref().map(|r| r.floor), Some(3));
    assert!(cmds.contains(&send(1, Msg::RecoveryQuery)), "{cmds:?}");
    // A stale leader is refused by rule 1, which deposes it.
    let (_, cmds) = deliver(&a, &s, 2, append_entries(2, (1, 1), vec![], 1));
    assert!(cmds
        .iter()
        .any(|c| c.contains("AppendEntriesReply") && c.contains("term: 3")));
    // Not yet repaired: its log ends at 1, the leader's at 2.
    let (s, cmds) = deliver(&a, &s, 1, append_entries(3, (1, 1), vec![], 1));
    assert!(cmds.contains(&send(1, Msg::RecoveryQuery)), "{cmds:?}");
    let (s, _) = deliver(&a, &s, 1, reply(3, Some(2)));
    assert!(s.recovery.is_some());
    // The leader's answer (its last index, 2) is the target: the entry through it repairs.
    let (s, cmds) = deliver(&a, &s, 1, append_entries(3, (1, 1), vec![entry(3, "2")], 1));
    assert!(s.recovery.is_none(), "repaired");
    assert_eq!(s.voted_for, Some(1));
    assert!(
        cmds[0].contains("recovering: false"),
        "saved first: {cmds:?}"
    );
}

/// The zoo bug `recover_as_new`: the same damaged storage, trusted as it is.
#[test]
fn with_the_bug_a_damaged_server_votes_at_once() {
    let a = server(Some(Bug::RecoverAsNew));
    let (s, cmds) = recovering(&a, vec![]);
    assert!(s.recovery.is_none());
    assert!(
        !cmds.iter().any(|c| c.contains("RecoveryQuery")),
        "{cmds:?}"
    );
    let vote = Msg::RequestVote {
        term: 1,
        last_log_index: 0,
        last_log_term: 0,
    };
    let (s, _) = deliver(&a, &s, 1, vote);
    assert_eq!(s.voted_for, Some(1));
}

/// A peer's answer to a `RecoveryQuery`: its term, and what it holds.
fn recovery_reply(term: Term, holds_entries: bool, recovering: bool, maybe_new: bool) -> Msg {
    Msg::RecoveryReply {
        term,
        recovering,
        leader_last: None,
        holds_entries,
        maybe_new,
    }
}

/// The answer of term 2's leader, which holds entries, naming its last index (or not).
fn leader_answer(leader_last: Option<LogIndex>) -> Msg {
    Msg::RecoveryReply {
        term: 2,
        recovering: false,
        leader_last,
        holds_entries: true,
        maybe_new: false,
    }
}

/// Server 0 of `a`'s cluster starting from `storage`.
fn started(a: &RaftServer, storage: Storage) -> ServerState {
    a.on_start(Id::from(0), &Some(storage), &mut Out::new())
}

/// A vote request of `term` from server 1 with an empty log: whether server 0 grants it.
fn grants(a: &RaftServer, s: &ServerState, term: Term) -> bool {
    let vote = Msg::RequestVote {
        term,
        last_log_index: 0,
        last_log_term: 0,
    };
    let (_, cmds) = deliver(a, s, 1, vote);
    cmds.iter().any(|c| c.contains("granted: true"))
}

/// An empty data directory (README, Damaged storage): a new server's or a deleted one's. Once
/// every peer has answered and none holds anything, nothing was ever written: it starts as new at
/// the highest term heard, abstaining in that term (it may have voted in it before the deletion),
/// and votes in the next.
#[test]
fn an_empty_server_starts_as_new_once_every_peer_says_nothing_was_written() {
    let a = server(None);
    let s = started(&a, Storage::unknown());
    assert!(s.recovery.is_some());
    let (s, _) = deliver(&a, &s, 1, recovery_reply(2, false, false, false));
    assert!(s.recovery.is_some(), "S2 has not answered yet");
    assert!(!grants(&a, &s, 2), "it abstains while it asks");
    let (s, cmds) = deliver(&a, &s, 2, recovery_reply(0, false, true, true));
    assert!(s.recovery.is_none(), "every peer answered: nothing written");
    assert_eq!((s.term, s.voted_for), (2, Some(0)));
    assert!(cmds[0].contains("Save"), "saved first: {cmds:?}");
    assert!(!grants(&a, &s, 2), "its vote in term 2 counts as given");
    assert!(grants(&a, &s, 3));
}

/// If any peer holds an entry, or recovers from damage it detected (it held something), the empty
/// server recovers as a damaged one does, repaired by a leader; a damaged server that finds
/// nothing anywhere does not start as new either: it knows it lost something.
#[test]
fn an_empty_server_recovers_if_anything_was_written() {
    let a = server(None);
    let empty = started(&a, Storage::unknown());
    let answers = [
        recovery_reply(1, true, false, false), // holds entries
        recovery_reply(1, false, true, false), // detected damage
        recovery_reply(1, true, true, true),   // empty-started, but got entries since
    ];
    for answer in answers {
        let (s, _) = deliver(&a, &empty, 1, answer.clone());
        let (s, _) = deliver(&a, &s, 2, recovery_reply(1, false, false, false));
        assert!(s.recovery.is_some(), "{answer:?}");
        assert!(!grants(&a, &s, 2), "{answer:?}");
    }
    let damaged = started(&a, Storage::wiped());
    let (s, _) = deliver(&a, &damaged, 1, recovery_reply(1, false, false, false));
    let (s, _) = deliver(&a, &s, 2, recovery_reply(1, false, false, false));
    assert!(
        s.recovery.is_some(),
        "detected damage is repaired, never new"
    );
}

/// Under load the leader's log keeps growing: the recovering server is repaired once it holds
/// the leader's log through the last index the leader first answered, not its latest one (before,
/// each answer named a later index than the entries then on their way, and it never caught up).
#[test]
fn repair_completes_while_the_leader_keeps_appending() {
    let a = server(None);
    let (s, _) = recovering(&a, vec![]);
    let reply = leader_answer;
    let (s, _) = deliver(&a, &s, 2, reply(None));
    let (s, _) = deliver(&a, &s, 1, reply(Some(3)));
    let mut s = s;
    for i in 1..=5u64 {
        let prev = (i - 1, if i == 1 { 0 } else { 2 });
        (s, _) = deliver(&a, &s, 1, append_entries(2, prev, vec![entry(2, "v")], 0));
        // The leader now has two more entries than this one: it answers so.
        (s, _) = deliver(&a, &s, 1, reply(Some(i + 2)));
        assert_eq!(s.recovery.is_none(), i >= 3, "after entry {i}");
    }
}

/// Two damaged servers of five (a minority): each answers the other "recovering", which bounds
/// nothing but counts as an answer, so each learns its floor from the other three and takes the
/// leader's entries (before, each waited for the other to be repaired first: forever).
#[test]
fn two_damaged_servers_of_five_do_not_wait_for_each_other() {
    let a = RaftServer::new(ServerConfig::new(5));
    let s = started(&a, Storage::wiped());
    let (s, _) = deliver(&a, &s, 1, recovery_reply(0, false, true, false));
    let (s, _) = deliver(&a, &s, 2, recovery_reply(3, true, false, false));
    let (s, _) = deliver(&a, &s, 3, recovery_reply(3, true, false, false));
    let (s, _) = deliver(&a, &s, 4, recovery_reply(2, true, false, false));
    assert_eq!(s.recovery.as_ref().map(|r| r.floor), Some(3));
    let (s, cmds) = deliver(&a, &s, 2, append_entries(3, (0, 0), vec![entry(3, "1")], 1));
    assert_eq!(s.log.last_index(), 1, "{cmds:?}");
    assert!(
        s.recovery.is_some(),
        "repaired only when the leader confirms"
    );
}

/// Servers started together learn their floors in one round trip, not one election timeout
/// each: a recovering server asked by a peer it has not heard from answers and asks it back at
/// once; once it has heard from that peer, it only answers.
#[test]
fn a_recovering_server_asks_an_unheard_asker_back_at_once() {
    let a = server(None);
    let s = started(&a, Storage::wiped());
    let answer = send(1, recovery_reply(0, false, true, false));
    let (_, cmds) = deliver(&a, &s, 1, Msg::RecoveryQuery);
    assert_eq!(cmds, [answer.clone(), send(1, Msg::RecoveryQuery)]);
    let (s, _) = deliver(&a, &s, 1, recovery_reply(0, false, true, false));
    let (_, cmds) = deliver(&a, &s, 1, Msg::RecoveryQuery);
    assert_eq!(cmds, [answer]);
    // Its election timeout asks again only the peer it has not heard from.
    let mut out = Out::new();
    let mut state = Cow::Borrowed(&s);
    a.on_timeout(Id::from(0), &mut state, &ServerTimer::Election, &mut out);
    let asked: Vec<String> = out.iter().map(|c| format!("{c:?}")).collect();
    assert!(asked.contains(&send(2, Msg::RecoveryQuery)), "{asked:?}");
    assert!(!asked.contains(&send(1, Msg::RecoveryQuery)), "{asked:?}");
}

/// Only a recovering server reads a `RecoveryReply`: to any other it is moot, and the model
/// discards it (a server that recovers again asks again).
#[test]
fn a_recovery_reply_is_moot_once_the_server_is_not_recovering() {
    let a = server(None);
    let reply = recovery_reply(2, true, false, false);
    assert!(a.is_moot(&follower(2, vec![]), &reply));
    assert!(!a.is_moot(&started(&a, Storage::wiped()), &reply));
}

/// A server's state prints as the one line a person reads in the explorer and in failure
/// messages: role, term, vote, log, commit and applied indices, and whether it is recovering.
#[test]
fn a_server_state_prints_as_one_readable_line() {
    let mut s = follower(2, vec![entry(1, "1")]);
    s.voted_for = Some(0);
    (s.commit_index, s.last_applied) = (1, 1);
    let line = "follower t2 vote=S0 log=[1:x=1] commit=1 applied=1";
    assert_eq!(format!("{s:?}"), line);
    s.voted_for = None;
    s.recovery = Some(Recovery::default());
    let line = "follower recovering t2 vote=- log=[1:x=1] commit=1 applied=1";
    assert_eq!(format!("{s:?}"), line);
}

/// Only the leader it follows in its term sets a recovering server's target: an answer naming a
/// last index, from a server whose AppendEntries it has not yet accepted in this term, is not
/// taken; the same answer after the leader's first AppendEntries is.
#[test]
fn a_recovering_server_takes_its_target_only_from_the_leader_it_follows() {
    let a = server(None);
    let (s, _) = recovering(&a, vec![]);
    let reply = leader_answer;
    let target = |s: &ServerState| s.recovery.as_ref().and_then(|r| r.target);
    let (s, _) = deliver(&a, &s, 2, reply(None));
    let (s, _) = deliver(&a, &s, 1, reply(None));
    assert_eq!(s.recovery.as_ref().map(|r| r.floor), Some(2));
    let (s, _) = deliver(&a, &s, 1, reply(Some(3)));
    assert_eq!(target(&s), None, "S1 is not yet the leader it follows");
    let (s, _) = deliver(&a, &s, 1, append_entries(2, (0, 0), vec![], 0));
    assert_eq!(s.leader, Some(1));
    let (s, _) = deliver(&a, &s, 1, reply(Some(3)));
    assert_eq!(target(&s), Some(3));
}

/// §8: an entry older than its session's last applied request is a stale duplicate (a retry
/// appended again after the first copy): applying it changes nothing and answers nothing, for
/// the session's recorded result is a newer request's.
#[test]
fn a_stale_duplicate_is_applied_silently() {
    let (a, mut s) = lone_leader(ServerConfig::new(1));
    let stale = Command {
        client: 7,
        request_id: 1,
        op: Op::Put {
            key: "k".into(),
            value: "old".into(),
        },
    };
    s.log.entries = vec![Entry {
        term: 1,
        command: std::sync::Arc::new(stale),
    }]
    .into();
    s.kv.sessions.insert(7, (2, OpResult::Written));
    let read = Command {
        client: 8,
        request_id: 1,
        op: Op::Get { key: "k".into() },
    };
    let (next, cmds) = deliver(&a, &s, 8, Msg::ClientRequest(read));
    assert_eq!(next.last_applied, 2);
    assert!(next.kv.data.is_empty(), "the duplicate is not applied");
    let answer = |to: usize, request_id, result| {
        let reply = ClientReply::Done(result);
        send(to, Msg::ClientResponse { request_id, reply })
    };
    assert!(
        cmds.contains(&answer(8, 1, OpResult::Value(None))),
        "{cmds:?}"
    );
    let to_seven = cmds
        .iter()
        .filter(|c| c.contains("ClientResponse") && c.contains("Id(7)"));
    assert_eq!(to_seven.count(), 0, "{cmds:?}");
    assert!(!cmds.contains(&answer(7, 1, OpResult::Written)), "{cmds:?}");
}

/// nextIndex and matchIndex of a server that must still lead.
fn progress(s: &ServerState) -> (&[LogIndex], &[LogIndex]) {
    let Role::Leader {
        next_index,
        match_index,
    } = &s.role
    else {
        panic!("not the leader: {s:?}");
    };
    (next_index, match_index)
}

/// Term 2's leader with log `[1:a 2:b 2:c]`, all committed; follower 1 has the given
/// (nextIndex, matchIndex), follower 2 has everything.
fn leader_of_term_2((next, matched): (LogIndex, LogIndex)) -> ServerState {
    let mut s = follower(2, vec![entry(1, "a"), entry(2, "b"), entry(2, "c")]);
    s.commit_index = 3;
    s.role = Role::Leader {
        next_index: vec![4, next, 4],
        match_index: vec![3, matched, 3],
    };
    s
}

/// §7: a follower that installed a snapshot and is still behind the leader's log is sent the
/// rest at once; one that is caught up is sent nothing more.
#[test]
fn a_snapshot_reply_from_a_follower_still_behind_sends_it_the_rest() {
    let a = server(None);
    let s = leader_of_term_2((1, 0));
    let reply = |last_index| Msg::InstallSnapshotReply {
        term: 2,
        last_index,
    };
    let (next, cmds) = deliver(&a, &s, 1, reply(1));
    let (next_index, _) = progress(&next);
    assert_eq!(next_index[1], 2);
    let rest = vec![entry(2, "b"), entry(2, "c")];
    assert_eq!(cmds, [send(1, append_entries(2, (1, 1), rest, 3))]);
    // A snapshot through the leader's last entry: caught up, nothing more to send.
    let (next, cmds) = deliver(&a, &s, 1, reply(3));
    assert_eq!(cmds, Vec::<String>::new());
    let (_, match_index) = progress(&next);
    assert_eq!(match_index[1], 3);
}

/// A follower that acknowledged index 3 answers with a log that ends at 1 (its disk was wiped,
/// or the answer is older): its matchIndex falls to 1 and it is sent the rest from index 2.
/// Keeping matchIndex would count towards commits entries it no longer holds.
#[test]
fn a_follower_that_lost_acknowledged_entries_is_counted_from_its_log_end() {
    let a = server(None);
    let s = leader_of_term_2((4, 3));
    let lost = append_conflict(2, None, 2);
    let (next, cmds) = deliver(&a, &s, 1, lost);
    let (next_index, match_index) = progress(&next);
    assert_eq!((next_index[1], match_index[1]), (2, 1));
    let rest = vec![entry(2, "b"), entry(2, "c")];
    assert_eq!(cmds, [send(1, append_entries(2, (1, 1), rest, 3))]);
}

/// A conflict reply moves nextIndex back a whole term; an older one, reordered after the
/// follower acknowledged index 2, moves it back only to just past that: entries the follower
/// holds are not sent again.
#[test]
fn a_conflict_reply_moves_next_index_a_term_back_but_not_below_what_was_acknowledged() {
    let a = server(None);
    let mut s = leader_of_term_2((4, 2));
    let older = append_conflict(2, Some(1), 1);
    let (next, cmds) = deliver(&a, &s, 1, older);
    let (next_index, _) = progress(&next);
    assert_eq!(next_index[1], 3);
    assert_eq!(
        cmds,
        [send(1, append_entries(2, (2, 2), vec![entry(2, "c")], 3))]
    );
    // Reference: section 5.3's optimization. With nothing acknowledged, a conflict in term 1
    // moves nextIndex just past the leader's last entry of term 1, skipping the whole term.
    s.role = Role::Leader {
        next_index: vec![4, 4, 4],
        match_index: vec![3, 0, 3],
    };
    let conflict = append_conflict(2, Some(1), 3);
    let (_, cmds) = deliver(&a, &s, 1, conflict);
    let rest = vec![entry(2, "b"), entry(2, "c")];
    assert_eq!(cmds, [send(1, append_entries(2, (1, 1), rest, 3))]);
}

/// A reply to an AppendEntries or InstallSnapshot of an earlier term says nothing about this
/// term's log (the TLA+ spec's `DropStaleResponse`): the leader changes nothing and sends
/// nothing. Counting it, as the `AcceptStaleReplies` bug does, credits a follower with entries a
/// deposed leader sent.
#[test]
fn a_leader_ignores_a_reply_of_an_earlier_term() {
    let s = leader_of_term_2((1, 0));
    let matched = Msg::AppendEntriesReply {
        term: 1,
        outcome: AppendOutcome::Matched { match_index: 3 },
    };
    let conflict = append_conflict(1, None, 1);
    let snapshot = Msg::InstallSnapshotReply {
        term: 1,
        last_index: 3,
    };
    for stale in [matched.clone(), conflict, snapshot] {
        let (next, cmds) = deliver(&server(None), &s, 1, stale);
        assert_eq!(next, s, "{:?}", next.role);
        assert_eq!(cmds, Vec::<String>::new());
    }
    let (next, _) = deliver(&server(Some(Bug::AcceptStaleReplies)), &s, 1, matched);
    let (_, match_index) = progress(&next);
    assert_eq!(match_index[1], 3);
}

/// A recovering server counts each peer's answer once (its `heard` bit): a second answer from
/// the same peer (a duplicated datagram, or the answer to a query asked again) changes nothing,
/// even if the peer has since taken entries.
#[test]
fn a_recovering_server_counts_only_the_first_answer_of_each_peer() {
    let a = server(None);
    let s = started(&a, Storage::unknown());
    let (first, _) = deliver(&a, &s, 1, recovery_reply(1, false, false, false));
    let (again, cmds) = deliver(&a, &first, 1, recovery_reply(1, true, false, false));
    assert_eq!((&again, cmds), (&first, vec![]), "{:?}", again.recovery);
    // The peer's first answer stands: nothing was written, so it starts as new at term 1.
    let (s, _) = deliver(&a, &again, 2, recovery_reply(1, false, false, false));
    assert!(s.recovery.is_none(), "nothing written");
    assert_eq!(s.term, 1);
}

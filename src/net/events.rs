//! What a node logs (through `tracing`; `node` prints it, filtered by `RUST_LOG`, default
//! `info`): elections started, won and lost, term and role changes, snapshots taken and
//! installed, at `info`; commits and dropped datagrams at `debug`. The node compares what it
//! can see of the actor's state after each round with what it saw before, so the protocol
//! itself stays free of I/O, and the simulator, which installs no subscriber, prints nothing.

use crate::protocol::server::ServerState;
use crate::protocol::view::ServerView;

/// What the log lines are about, read off the server's state after a round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    role: &'static str,
    term: u64,
    commit: u64,
    snapshot: u64,
    leader: Option<u64>,
    /// While recovering: the peers heard from, and the floor.
    recovery: Option<(u32, u64)>,
    /// It holds no entry and no snapshot.
    empty: bool,
}

impl Seen {
    /// The parts of `state` the log follows.
    pub fn of(state: &ServerState) -> Seen {
        Seen {
            role: state.role_name(),
            term: state.term(),
            commit: state.commit_index(),
            snapshot: state.log().base_index,
            leader: state.leader(),
            recovery: state
                .recovery
                .as_ref()
                .map(|r| (r.heard.count_ones(), r.floor)),
            empty: state.log().last_index() == 0,
        }
    }
}

/// Logs what changed from `before` to `after` at server `node`.
pub fn log_changes(node: usize, before: &Seen, after: &Seen) {
    if after.term != before.term {
        tracing::info!(node, from = before.term, to = after.term, "term changes");
    }
    log_role(node, before, after);
    log_recovery(node, before, after);
    if after.leader != before.leader && after.role == "follower" {
        if let Some(leader) = after.leader {
            tracing::info!(node, term = after.term, leader, "follows leader S{leader}");
        }
    }
    if after.snapshot > before.snapshot {
        // A server compacts only what it applied; a snapshot past its commit index came from
        // the leader.
        let how = if after.snapshot > before.commit {
            "installed"
        } else {
            "taken"
        };
        tracing::info!(node, through = after.snapshot, "snapshot {how}");
    }
    if after.commit > before.commit {
        tracing::debug!(node, commit = after.commit, "entries committed");
    }
}

/// Recovery from damaged storage: each peer heard, and the repair.
fn log_recovery(node: usize, before: &Seen, after: &Seen) {
    match (before.recovery, after.recovery) {
        (Some((heard, _)), Some((now, floor))) if now > heard => tracing::info!(
            node,
            peers = now,
            floor,
            "recovering: {now} peer(s) answered; it may have promised something in any term \
             up to {floor}, so it abstains through it"
        ),
        (Some(_), None) if after.empty => tracing::info!(
            node,
            term = after.term,
            "every peer answered and none holds an entry or a snapshot: nothing was ever \
             written, so nothing can be lost; starting as a new server in term {} (its vote in \
             that term counted as given)",
            after.term
        ),
        (Some(_), None) => tracing::info!(
            node,
            term = after.term,
            "recovered: its log matches the leader of term {}; it votes again",
            after.term
        ),
        _ => {}
    }
}

/// Elections: started (now a candidate), won (candidate to leader), lost (candidate to
/// follower), and a leader stepping down.
fn log_role(node: usize, before: &Seen, after: &Seen) {
    let term = after.term;
    match (before.role, after.role) {
        (_, "candidate") if after.term != before.term || before.role != "candidate" => {
            tracing::info!(node, term, "election started")
        }
        // From a follower in one round: it stood and won at once (a one-server cluster, or
        // every vote arriving in the round that started the election).
        ("candidate" | "follower", "leader") => {
            tracing::info!(node, term, "election won: leader of term {term}")
        }
        ("candidate", "follower") => tracing::info!(node, term, "election lost"),
        ("leader", "follower") => tracing::info!(node, term, "stepped down"),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(role: &'static str, term: u64, commit: u64, snapshot: u64) -> Seen {
        Seen {
            role,
            term,
            commit,
            snapshot,
            leader: None,
            recovery: None,
            empty: true,
        }
    }

    #[test]
    fn a_fresh_node_starts_as_a_follower_of_term_0() {
        let s = Seen::of(&ServerState::restore(None));
        assert_eq!(s, seen("follower", 0, 0, 0));
    }

    #[test]
    fn logging_a_change_never_panics() {
        // No subscriber here: the calls must be cheap no-ops (the simulator relies on it).
        log_changes(0, &seen("follower", 0, 0, 0), &seen("candidate", 1, 0, 0));
        log_changes(0, &seen("candidate", 1, 0, 0), &seen("leader", 1, 3, 2));
    }
}

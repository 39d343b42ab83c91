//! What a violation concerns, in words: the servers, terms and entries that break a property on
//! a trace's last states ("two leaders in term 2: S0 and S2"; "S1 (its log could win the next
//! election) lacks entry 1, committed in term 3"), or what a liveness run never reaches. The
//! text report prints it under the trace (`why:`), JSON gives it as `explanation`, and the
//! sequence diagrams end with it.

use crate::check::properties as p;
use crate::model::{RaftModel, SystemState};
use crate::protocol::server::ServerState;
use crate::protocol::types::Term;
use crate::protocol::view::ServerView;

/// What a violation concerns, read off the trace's last states: which servers, terms and
/// entries break the property (a line per finding), or what a liveness run never reaches.
pub fn concerns(model: &RaftModel, name: &str, states: &[SystemState]) -> Vec<String> {
    let last = states.last().expect("a trace has a state");
    let before = states.len().checked_sub(2).map(|k| &states[k]);
    match name {
        p::ELECTION_SAFETY => two_leaders(last),
        p::LOG_MATCHING => unmatched_logs(last),
        p::LEADER_COMPLETENESS => lacking_committed(last, |i, s| {
            let why = format!("leader of term {}", s.term());
            (s.is_leader() && !last.down[i]).then_some((why, s.term()))
        }),
        p::ELECTABLE_LOGS_HOLD_COMMITTED => lacking_committed(last, |_, s| {
            let why = "its log could win the next election".to_string();
            electable(last, s).then_some((why, Term::MAX))
        }),
        p::STATE_MACHINE_SAFETY_NAME => committed_differently(last),
        p::COMMIT_NEVER_DECREASES | p::LEADER_APPEND_ONLY_NAME => before
            .map(|b| changed_at_last_step(model, b, last, name))
            .unwrap_or_default(),
        p::APPLIED_LE_COMMIT => applied_past_commit(last),
        p::LINEARIZABLE => {
            let mut lines =
                vec!["no order of the clients' operations explains their results:".into()];
            lines.extend((0..last.clients.len()).map(|c| client_results(model, last, c)));
            lines
        }
        p::EVENTUALLY_APPLIED => behind_leader(last),
        p::EVENTUALLY_COMMITTED => uncommitted_own_entries(last),
        p::EVENTUALLY_LEADER => vec!["no server is ever leader on this run".into()],
        p::EVENTUALLY_CLIENTS_DONE => (0..last.clients.len())
            .filter(|&c| last.clients[c].next_op() < model.clients[c].cfg.ops.len())
            .filter(|&c| !last.clients[c].expired())
            .map(|c| format!("never done: {}", model.client_summary(last, c)))
            .collect(),
        other => vec![format!("on this run, forever, it is not so that {other}")],
    }
}

/// What each of a client's operations returned: `C0: put x=1 → ok, get x → 2`.
fn client_results(model: &RaftModel, last: &SystemState, c: usize) -> String {
    let ops = &model.clients[c].cfg.ops;
    let results = &last.clients[c].results;
    let done: Vec<String> = ops
        .iter()
        .zip(results)
        .map(|(op, r)| format!("{op} → {r}"))
        .collect();
    let pending = ops.get(results.len()).map(|op| format!(", {op} pending"));
    format!("C{c}: {}{}", done.join(", "), pending.unwrap_or_default())
}

/// `EVENTUALLY_APPLIED`'s goal missed: live servers that have not applied what a live leader
/// has committed.
fn behind_leader(last: &SystemState) -> Vec<String> {
    let up = |i: &usize| !last.down[*i];
    let servers = || last.servers.iter().enumerate().filter(|(i, _)| up(i));
    let Some((l, leader)) = servers()
        .filter(|(_, s)| s.is_leader())
        .max_by_key(|(_, s)| s.commit_index())
    else {
        return Vec::new();
    };
    servers()
        .filter(|(_, s)| s.last_applied() < leader.commit_index())
        .map(|(i, s)| {
            format!(
                "S{i} has applied through {} and stays there, while leader S{l} committed through {}",
                s.last_applied(),
                leader.commit_index()
            )
        })
        .collect()
}

/// `EVENTUALLY_COMMITTED`'s goal missed: live leaders with entries of their own term that they
/// have not committed.
fn uncommitted_own_entries(last: &SystemState) -> Vec<String> {
    let up = last
        .servers
        .iter()
        .enumerate()
        .filter(|(i, _)| !last.down[*i]);
    up.filter(|(_, s)| s.is_leader())
        .filter_map(|(i, s)| {
            let own = s.log().last_index_of_term(s.term())?;
            (s.commit_index() < own).then(|| {
                format!(
                    "leader S{i} (term {}) accepted entry {own} ({}) and stays at commit {}",
                    s.term(),
                    entry(s, own),
                    s.commit_index()
                )
            })
        })
        .collect()
}

/// Election Safety: the terms in which two servers were leader.
fn two_leaders(last: &SystemState) -> Vec<String> {
    let leaders = &last.ghost.leaders;
    let mut out = Vec::new();
    for w in leaders.windows(2).filter(|w| w[0].0 == w[1].0) {
        out.push(format!(
            "two leaders in term {}: S{} and S{}",
            w[0].0, w[0].1, w[1].1
        ));
    }
    out
}

/// Log Matching: two logs with an entry of the same index and term that differ before it.
fn unmatched_logs(last: &SystemState) -> Vec<String> {
    let servers = &last.servers;
    let mut out = Vec::new();
    for (a, x) in servers.iter().enumerate() {
        for (b, y) in servers.iter().enumerate().skip(a + 1) {
            if let Some((top, i)) = p::log_mismatch(x.log(), y.log()) {
                out.push(format!(
                    "S{a} and S{b} agree on index {top} (term {}) but differ at index {i}: {} vs {}",
                    x.log().term_at(top).unwrap_or(0),
                    entry(x, i),
                    entry(y, i)
                ));
            }
        }
    }
    out
}

/// A server's entry at an index, or `none`.
fn entry(s: &ServerState, i: u64) -> String {
    s.log().get(i).map_or("none".into(), |e| e.to_string())
}

/// Whether `s`'s log is at least as up-to-date as a majority's (§5.4.1): it could be elected.
fn electable(last: &SystemState, s: &ServerState) -> bool {
    let fresh = |s: &ServerState| (s.log().last_term(), s.log().last_index());
    let outvotes = last.servers.iter().filter(|v| fresh(v) <= fresh(s)).count();
    outvotes > last.servers.len() / 2
}

/// The servers `who` picks, with why and the term before which every committed entry must be
/// in their log, that lack one.
fn lacking_committed(
    last: &SystemState,
    who: impl Fn(usize, &ServerState) -> Option<(String, Term)>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (i, s) in last.servers.iter().enumerate() {
        let Some((why, before)) = who(i, s) else {
            continue;
        };
        let committed = last.ghost.committed.iter();
        for (&idx, (e, term)) in committed.filter(|(_, (_, t))| *t < before) {
            if idx > s.log().base_index && s.log().get(idx) != Some(e) {
                out.push(format!(
                    "S{i} ({why}, log {}) lacks entry {idx} ({e}), committed in term {term}",
                    s.log().summary()
                ));
            }
        }
    }
    out
}

/// State Machine Safety: servers that committed another entry where one was committed first.
fn committed_differently(last: &SystemState) -> Vec<String> {
    let mut out = Vec::new();
    for (i, s) in last.servers.iter().enumerate() {
        for (&idx, (first, term)) in &last.ghost.committed {
            match s.log().get(idx) {
                Some(e) if idx <= s.commit_index() && e != first => out.push(format!(
                    "S{i} committed {e} at index {idx}, where {first} was committed first (term {term})"
                )),
                _ => {}
            }
        }
    }
    out
}

/// The transition properties: what the last step changed in the server that broke them.
fn changed_at_last_step(
    model: &RaftModel,
    before: &SystemState,
    last: &SystemState,
    name: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..model.n() {
        let (b, s) = (&before.servers[i], &last.servers[i]);
        if name == p::COMMIT_NEVER_DECREASES && s.commit_index() < b.commit_index() {
            out.push(format!(
                "S{i}'s commit index went from {} to {}",
                b.commit_index(),
                s.commit_index()
            ));
        }
        if name == p::LEADER_APPEND_ONLY_NAME && b.is_leader() && b.log() != s.log() {
            out.push(format!(
                "S{i}, leader of term {}, changed its log from {} to {}",
                s.term(),
                b.log().summary(),
                s.log().summary()
            ));
        }
    }
    out
}

/// Running servers whose applied or commit index runs past what they hold.
fn applied_past_commit(last: &SystemState) -> Vec<String> {
    let up = last
        .servers
        .iter()
        .enumerate()
        .filter(|(i, _)| !last.down[*i]);
    up.filter(|(_, s)| {
        s.last_applied() > s.commit_index() || s.commit_index() > s.log().last_index()
    })
    .map(|(i, s)| {
        format!(
            "S{i}: applied {}, commit {}, last log index {}",
            s.last_applied(),
            s.commit_index(),
            s.log().last_index()
        )
    })
    .collect()
}

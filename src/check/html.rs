//! A report as figures: each violated property's trace as a sequence diagram (`check --svg`,
//! drawn by `model::diagram`), naming at its end the servers and entries that break the
//! property; and the whole report as one self-contained HTML page (`check --html`) that needs
//! no network: verdicts, figures, and each trace as a diagram and as the text table.

use crate::check::properties as p;
use crate::check::report::{render_trace, searched_steps, PropertyReport, Report, Status};
use crate::model::diagram::{escape, Drawing, Ending};
use crate::model::{Action, RaftModel, SystemState, DROP_EVENT};
use crate::protocol::server::ServerState;
use crate::protocol::types::Term;
use crate::protocol::view::ServerView;

/// A violated property's trace as a sequence diagram, or None when it has no counterexample.
/// `id` prefixes the SVG's ids, so that several diagrams can share a page.
pub fn diagram(model: &RaftModel, prop: &PropertyReport, id: &str) -> Option<Drawing> {
    let trace = prop
        .trace
        .as_ref()
        .filter(|_| prop.status == Status::Violated)?;
    let actions: Vec<Action> = trace.iter().filter_map(|s| s.action.clone()).collect();
    let given = trace.iter().filter(|s| s.given).count();
    let states = model.replay(&actions);
    let lost = trace
        .iter()
        .filter(|s| s.given && s.event.starts_with(DROP_EVENT))
        .count();
    let given_note = match (given - lost, lost) {
        (0, 0) => String::new(),
        (g, 0) => format!(" after {g} given steps"),
        (g, l) => format!(" after {g} given steps and the loss of {l} messages"),
    };
    let ending = Ending {
        title: Some(format!(
            "{} violated in {} steps{given_note}",
            prop.name,
            searched_steps(trace)
        )),
        lines: concerns(model, &prop.name, &states),
        loop_from: prop.loop_from,
        id: id.to_string(),
    };
    Some(model.sequence_diagram(&actions, given, &ending))
}

/// Every violated property's diagram, one below the other, as one SVG document (`check
/// --svg`); None when no property is violated.
pub fn svg(model: &RaftModel, report: &Report) -> Option<String> {
    let drawings: Vec<Drawing> = report
        .properties
        .iter()
        .enumerate()
        .filter_map(|(k, prop)| diagram(model, prop, &format!("p{k}-")))
        .collect();
    (!drawings.is_empty()).then(|| Drawing::stack(&drawings))
}

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
            let from = x.log().base_index.max(y.log().base_index) + 1;
            let to = x.log().last_index().min(y.log().last_index());
            let Some(top) = (from..=to)
                .rev()
                .find(|&i| x.log().term_at(i) == y.log().term_at(i))
            else {
                continue;
            };
            if let Some(i) = (from..=top).find(|&i| x.log().get(i) != y.log().get(i)) {
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

/// The page's stylesheet: inline, so that the file is all there is to open.
const PAGE_STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:100%}\
table.verdicts{border-collapse:collapse;margin:1em 0}\
table.verdicts td,table.verdicts th{border:1px solid #ccc;padding:3px 8px;text-align:left}\
td.violated{background:#f9d6d5;font-weight:bold}td.holds,td.vacuous,td.example_found{background:#dff3e4}\
td.unknown,td.no_example{background:#f3f3f3}\
.figure{overflow-x:auto;border:1px solid #ddd;padding:6px;margin:1em 0}\
pre{background:#f7f7f7;padding:8px;overflow-x:auto;font-size:12px}";

/// The whole report as one self-contained HTML page (`check --html`): no script, no external
/// style or font, every diagram inline, so that it opens offline and can be mailed or attached.
pub fn html(model: &RaftModel, report: &Report, description: &str) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>check {m}</title>\n<style>{PAGE_STYLE}</style>\n</head>\n<body>\n\
         <h1>model {m}</h1>\n<p>{d}</p>\n",
        m = escape(&report.model),
        d = escape(description)
    );
    out.push_str(&verdicts(report));
    out.push_str(&figures(report));
    for (k, prop) in report.properties.iter().enumerate() {
        let (Some(drawing), Some(trace)) = (diagram(model, prop, &format!("p{k}-")), &prop.trace)
        else {
            continue;
        };
        let mut table = render_trace(trace);
        if let Some(back) = prop.loop_from {
            table.push_str(&format!(
                "   ↻ back to step {back}: the steps after it repeat forever\n"
            ));
        }
        out.push_str(&format!(
            "<h2 id=\"p{k}\">{} violated</h2>\n<div class=\"figure\">\n{}</div>\n<pre>{}</pre>\n",
            escape(&prop.name),
            drawing.svg(),
            escape(&table)
        ));
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// One row per property: its name (a link to its trace when violated), kind and verdict.
fn verdicts(report: &Report) -> String {
    let mut out = String::from(
        "<table class=\"verdicts\">\n<tr><th>property</th><th>kind</th><th>verdict</th></tr>\n",
    );
    for (k, prop) in report.properties.iter().enumerate() {
        let name = escape(&prop.name);
        let name = match prop.status {
            Status::Violated if prop.trace.is_some() => format!("<a href=\"#p{k}\">{name}</a>"),
            _ => name,
        };
        let status = prop.status.name();
        out.push_str(&format!(
            "<tr><td>{name}</td><td>{}</td><td class=\"{status}\">{status}</td></tr>\n",
            prop.kind
        ));
    }
    out.push_str("</table>\n");
    out
}

/// The run's figures: checker, states, depth, time, and whether the search was complete.
fn figures(report: &Report) -> String {
    let coverage = match report.stopped_by {
        None => "complete".to_string(),
        Some(stop) => format!("incomplete: stopped at {}", stop.describe()),
    };
    let symmetry = if report.symmetry { ", symmetry" } else { "" };
    let mut out = format!(
        "<p>checker {}{symmetry} · states {} · unique {} · depth {} · {:.2} s · {coverage}</p>\n",
        report.checker, report.states, report.unique_states, report.max_depth, report.elapsed_s
    );
    if let (Some(walks), Some(seed)) = (report.walks, report.seed) {
        out.push_str(&format!(
            "<p>swarm: {walks} random walks from seed {seed}</p>\n"
        ));
    }
    if let Some(stops) = report.bound_stops {
        out.push_str(&format!(
            "<p>liveness: {stops} states stop at a bound (not counterexamples)</p>\n"
        ));
    }
    out
}

//! What a check found, for people and for machines: verdicts, figures and traces as a table
//! (one column per server, time going down) or as JSON (`--json`, keys are a contract).

use crate::check::bfs::Stop;
use crate::check::coverage::Coverage;
use crate::model::{Action, RaftModel, SystemState, DROP_EVENT};
use crate::protocol::view::ServerView as _;
use serde::Serialize;
use stateright::Model;

/// A property's verdict: `status` in `check --json`, and what suites expect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// An `always` or `eventually` property held in a complete search: proved within the bounds.
    Holds,
    /// Some state (for `eventually`, some run's end) breaks the property; `trace` leads there.
    Violated,
    /// A `sometimes` property: some reachable state shows it; `trace` leads there.
    ExampleFound,
    /// A `sometimes` property no state of a complete search shows: unreachable within the bounds.
    NoExample,
    /// Not decided: the search stopped early (`stopped_by`) without a trace for it.
    Unknown,
    /// Held, but only because the model leaves nothing that could break it (linearizability
    /// with no client operation, log properties when no entry can be appended; the rule is
    /// `check::vacuity`'s, from the model's configuration). Proves nothing; exits as `holds`.
    Vacuous,
}

impl Status {
    /// The word `check` prints, the same as in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Status::Holds => "holds",
            Status::Violated => "violated",
            Status::ExampleFound => "example_found",
            Status::NoExample => "no_example",
            Status::Unknown => "unknown",
            Status::Vacuous => "vacuous",
        }
    }
}

/// One server at one trace step: an element of `servers` in a trace step of `check --json`.
#[derive(Clone, Debug, Serialize)]
pub struct ServerView {
    /// The server's id: `S<id>` in events.
    pub id: usize,
    /// `follower`, `candidate` or `leader`, or `down` while it is crashed.
    pub role: String,
    /// Its currentTerm (Figure 2) after the event.
    pub term: u64,
    /// Its votedFor in that term (a server id), or null.
    pub vote: Option<u64>,
    /// Its log as `[term:op ...]`, with `…N|` first when indices through N are in a snapshot.
    pub log: String,
    /// Its commitIndex: the entries through it are committed, as far as it knows.
    pub commit: u64,
    /// Its lastApplied: entries through this index are in its state machine.
    pub applied: u64,
    /// True while it is crashed; the other fields then show its state when it crashed.
    pub down: bool,
}

/// One step of a trace: the event and every server and client after it (an element of a property's
/// `trace` in `check --json`).
#[derive(Clone, Debug, Serialize)]
pub struct TraceStep {
    /// 0 for the initial state, then one per event; the model's given steps come first.
    pub step: usize,
    /// What happened, in the words traces and given steps use (`S0 → S1: RequestVote(t1, ...)`).
    pub event: String,
    /// One of the model's given steps, taken before the search started.
    pub given: bool,
    /// Every server after the event, in id order.
    pub servers: Vec<ServerView>,
    /// Every client after the event, e.g. `C0: 1/2 ops, #2 get x → S1` (operations done, the one in
    /// flight and the server it is sent to).
    pub clients: Vec<String>,
    /// The messages in flight after the event, in the words of events (`S0 → S1:
    /// AppendEntries(…)`), in the network's order: what can still arrive, late or out of order.
    pub in_flight: Vec<String>,
    /// The action taken at this step (None for step 0), so that the trace can be drawn as a
    /// sequence diagram (`check --svg`, `--html`); not in JSON, whose `event` names it.
    #[serde(skip)]
    pub action: Option<Action>,
}

/// One property's verdict: an element of `properties` in `check --json`.
#[derive(Clone, Debug, Serialize)]
pub struct PropertyReport {
    /// The property's name, as in the paper where it has one (`Election Safety`): suites key on it.
    pub name: String,
    /// `always` (in every state), `sometimes` (in some state), `eventually` (every fair run
    /// reaches it) or `leads_to` (every fair run reaches it again, from every state).
    pub kind: &'static str,
    /// `holds`, `violated`, `example_found`, `no_example`, `unknown` or `vacuous`.
    pub status: Status,
    /// For a violation: what it concerns, in words (the servers, terms and entries that break
    /// the property on the trace's last state, or what a liveness run never reaches); empty
    /// (absent in JSON) otherwise. See `check::explain`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub explanation: Vec<String>,
    /// Absent unless violated or example_found: the steps from the fresh cluster to the state that
    /// shows it (shortest with `bfs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<Vec<TraceStep>>,
    /// For a liveness counterexample that is a lasso: the step of `trace` the cycle returns to
    /// (the trace's last step leads back to it, forever). Absent for a deadlock: the run stays
    /// at the trace's last state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loop_from: Option<usize>,
    /// For a random search: the walk that first showed it (`--seed S --walk W` replays it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub walk: Option<u64>,
}

/// What one check found: the object `check --json` prints (its keys are a contract).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The model's name (`default`, `bugs/figure8`).
    pub model: String,
    /// Which checker ran (`--checker`): `bfs`, `dfs` or `simulation`.
    pub checker: &'static str,
    /// Whether the search checked one state per renaming of server ids: the model declares
    /// `symmetry = true` or `--symmetry` asked for it, and `--no-symmetry` did not turn it off.
    pub symmetry: bool,
    /// States generated, counting each one as often as it was reached.
    pub states: u64,
    /// Distinct states visited (symmetry classes with `--symmetry`): the size of the state space.
    pub unique_states: u64,
    /// The most steps from the search's start (after the given steps) to a state it visited.
    pub max_depth: usize,
    /// Wall-clock seconds the search took.
    pub elapsed_s: f64,
    /// True when every reachable state within the model's bounds was visited: only then can a
    /// property be `holds`, `vacuous` or `no_example`.
    pub complete: bool,
    /// Why the search ended early (absent when complete).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<Stop>,
    /// Peak resident memory of this process so far (Linux), for the bytes-per-state figure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes: Option<u64>,
    /// States whose every run breaking a liveness property is cut short by a bound
    /// (`max_term`, `max_log_len`, `max_messages`): not counterexamples, only where the model
    /// ends. Present when liveness was checked on a complete search.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bound_stops: Option<u64>,
    /// For a random search: the walks it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub walks: Option<u64>,
    /// For a random search: its seed (each walk's own is drawn from it and the walk's number).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// For a random search: the states of new shapes its walks kept for later walks to start
    /// from (`check::swarm`'s corpus).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub corpus: Option<u64>,
    /// What the transitions the search took exercised: elections won, crashes, drops,
    /// snapshots… (`check::coverage`). A zero says the search never took that path.
    pub coverage: Coverage,
    /// One verdict per property, in the order of `properties::all`, then `properties::liveness`.
    pub properties: Vec<PropertyReport>,
}

/// VmHWM from /proc/self/status: the peak resident set size.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

impl Report {
    /// True when an `always` or `eventually` property is violated (exit status 1).
    pub fn has_violation(&self) -> bool {
        self.properties.iter().any(|p| p.status == Status::Violated)
    }
}

fn view(model: &RaftModel, state: &SystemState) -> (Vec<ServerView>, Vec<String>) {
    let servers = state
        .servers
        .iter()
        .enumerate()
        .map(|(i, s)| ServerView {
            id: i,
            role: if state.down[i] {
                "down".to_string()
            } else {
                s.role_name().to_string()
            },
            term: s.term(),
            vote: s.voted_for(),
            log: s.log().summary(),
            commit: s.commit_index(),
            applied: s.last_applied(),
            down: state.down[i],
        })
        .collect();
    let clients = (0..state.clients.len())
        .map(|c| model.client_summary(state, c))
        .collect();
    (servers, clients)
}

/// The most given steps a trace shows one by one: a model `sim --emit-model` wrote may give
/// thousands, and each row holds every server and message. Earlier ones are one row.
const SHOWN_GIVEN: usize = 100;

/// The whole path a trace shows: the model's given steps (some may be folded into one row),
/// then the searched steps.
pub fn trace_actions(model: &RaftModel, trace: &[TraceStep]) -> Vec<Action> {
    let searched = trace.iter().filter(|s| !s.given);
    let mut actions = model.given.clone();
    actions.extend(searched.filter_map(|s| s.action.clone()));
    actions
}

/// Replays a path into readable steps: step 0 is the fresh cluster, then the model's given
/// steps (all but the last [`SHOWN_GIVEN`] folded into one row when there are more), then the
/// path the search found.
pub fn trace(model: &RaftModel, actions: &[Action]) -> Vec<TraceStep> {
    let mut state = model.fresh_state();
    let (servers, clients) = view(model, &state);
    let mut steps = vec![TraceStep {
        step: 0,
        event: "initial state".into(),
        given: false,
        servers,
        clients,
        in_flight: in_flight(model, &state),
        action: None,
    }];
    // Losses are never folded (the report counts them, and a run of them prints as one row):
    // the last steps shown are those before the first.
    let first_loss = model
        .given
        .iter()
        .position(|a| matches!(a, Action::Drop(_)));
    let folded = first_loss
        .unwrap_or(model.given.len())
        .saturating_sub(SHOWN_GIVEN);
    if folded > 1 {
        for action in &model.given[..folded] {
            state = model
                .next_state(&state, action.clone())
                .expect("given steps replay");
        }
        let (servers, clients) = view(model, &state);
        steps.push(TraceStep {
            step: folded,
            event: format!("{folded} given steps (the model file lists them)"),
            given: true,
            servers,
            clients,
            in_flight: in_flight(model, &state),
            action: None,
        });
    }
    let skip = if folded > 1 { folded } else { 0 };
    let given = model.given.iter().map(|a| (a, true));
    let found = actions.iter().map(|a| (a, false));
    for (i, (action, given)) in given.chain(found).enumerate().skip(skip) {
        let mut event = model.describe(action);
        state = model
            .next_state(&state, action.clone())
            .expect("validated traces replay");
        if let Action::Restart(i) = action {
            let s = &state.servers[*i as usize];
            let vote = s.voted_for().map_or("-".into(), |v| format!("S{v}"));
            event.push_str(&format!(
                " (restored t{} vote={vote} log={})",
                s.term(),
                s.log().summary()
            ));
        }
        let (servers, clients) = view(model, &state);
        steps.push(TraceStep {
            step: i + 1,
            event,
            given,
            servers,
            clients,
            in_flight: in_flight(model, &state),
            action: Some(action.clone()),
        });
    }
    steps
}

/// The messages in the network of `state`, each as the event of its delivery.
fn in_flight(model: &RaftModel, state: &SystemState) -> Vec<String> {
    state
        .network
        .iter()
        .map(|e| model.describe(&Action::Deliver(e.clone())))
        .collect()
}

/// Server cell in the trace table: `L t2 v0 [1:x=1] c1` (role, term, vote, log, commit).
fn cell(s: &ServerView) -> String {
    if s.down {
        return format!("DOWN t{} {}", s.term, s.log);
    }
    let role = match s.role.as_str() {
        "leader" => "L",
        "candidate" => "C",
        _ => "F",
    };
    let vote = s.vote.map_or("-".into(), |v| v.to_string());
    format!("{role} t{} v{vote} {} c{}", s.term, s.log, s.commit)
}

/// How many steps of a trace the search found (the model's given steps come before them).
pub fn searched_steps(trace: &[TraceStep]) -> usize {
    trace.iter().skip(1).filter(|s| !s.given).count()
}

/// The trace as a table: one column per server, time going down; `*` marks what changed.
pub fn render_trace(steps: &[TraceStep]) -> String {
    render_trace_with(steps, false)
}

/// `render_trace`, with the messages in flight after each step under its row when
/// `show_network` (`check --show-network`).
pub fn render_trace_with(steps: &[TraceStep], show_network: bool) -> String {
    let n = steps.first().map_or(0, |s| s.servers.len());
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut header = vec!["#".to_string(), "event".to_string()];
    header.extend((0..n).map(|i| format!("S{i}")));
    rows.push(header);
    // What goes under each row: the messages in flight after it (with `show_network`).
    let mut notes: Vec<Option<String>> = vec![None];
    let mut prev: Option<Vec<String>> = None;
    let last_given = steps.iter().rposition(|s| s.given);
    let given_drop = |k: usize| {
        steps
            .get(k)
            .is_some_and(|s| s.given && s.event.starts_with(DROP_EVENT))
    };
    let mut drops_before = 0;
    for (k, st) in steps.iter().enumerate() {
        if last_given.is_some_and(|g| k == g + 1) {
            let mut row = vec![String::new(), "(the search starts here)".to_string()];
            row.resize(n + 2, String::new());
            rows.push(row);
            notes.push(None);
        }
        // A given loss of many messages (`keep_in_flight`) reads as one row; JSON keeps each.
        if given_drop(k) && given_drop(k + 1) {
            drops_before += 1;
            continue;
        }
        let (number, event) = match std::mem::take(&mut drops_before) {
            0 => (st.step.to_string(), st.event.clone()),
            d => (
                format!("{}-{}", st.step - d, st.step),
                format!("network loses {} messages in flight", d + 1),
            ),
        };
        let cells: Vec<String> = st.servers.iter().map(cell).collect();
        let mut row = vec![number, event];
        for (i, c) in cells.iter().enumerate() {
            let changed = prev.as_ref().is_some_and(|p| p[i] != *c);
            row.push(format!("{}{c}", if changed { "*" } else { " " }));
        }
        prev = Some(cells);
        rows.push(row);
        notes.push(show_network.then(|| in_flight_line(&st.in_flight)));
    }
    let widths: Vec<usize> = (0..n + 2)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (row, note) in rows.into_iter().zip(notes) {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, v)| {
                let pad = widths[c] - v.chars().count();
                if c == 0 {
                    format!("{}{v}", " ".repeat(pad))
                } else {
                    format!("{v}{}", " ".repeat(pad))
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
        if let Some(note) = note {
            out.push_str(&format!("{}{note}\n", " ".repeat(widths[0] + 2)));
        }
    }
    if let Some(last) = steps.last() {
        for c in &last.clients {
            out.push_str(&format!("   at the end, {c}\n"));
        }
    }
    out
}

/// The line under a step with `--show-network`: what is in flight after it.
fn in_flight_line(messages: &[String]) -> String {
    match messages {
        [] => "in flight: nothing".into(),
        _ => format!("in flight: {}", messages.join(" · ")),
    }
}

/// How a liveness counterexample goes on after its last step: around its cycle forever, or
/// nowhere (only faults could still happen).
fn ending(p: &PropertyReport, steps: usize) -> String {
    match (p.kind, p.loop_from) {
        (_, Some(k)) => format!(
            "   ↻ back to step {k}: steps {}-{} repeat forever, and every fair action enabled throughout is taken in them\n",
            k + 1,
            steps - 1
        ),
        ("eventually" | "leads_to", None) => {
            "   ■ the run ends here: nothing but faults can happen, so it stays here forever\n".into()
        }
        _ => String::new(),
    }
}

/// The human report: one row per property, the figures, then each violation's trace.
pub fn render(report: &Report, description: &str) -> String {
    render_with(report, description, false)
}

/// `render`, with the messages in flight under each trace step when `show_network`.
pub fn render_with(report: &Report, description: &str, show_network: bool) -> String {
    let symmetry = if report.symmetry { ", symmetry" } else { "" };
    let mut out = format!("model {} ({}{symmetry})", report.model, report.checker);
    if !description.is_empty() {
        out.push_str(&format!(": {description}"));
    }
    out.push('\n');
    let width = report
        .properties
        .iter()
        .map(|p| p.name.len())
        .max()
        .unwrap_or(0);
    for p in &report.properties {
        out.push_str(&format!(
            "  {:width$}  {:10}  {}\n",
            p.name,
            p.kind,
            p.status.name()
        ));
    }
    if report
        .properties
        .iter()
        .any(|p| p.status == Status::Vacuous)
    {
        out.push_str(
            "  (vacuous: holds only because nothing in this model could break it: no client \
             operation, or no entry can be appended)\n",
        );
    }
    out.push_str(&figures(report));
    out.push_str(&violations(report, show_network));
    out
}

/// The run's figures: states, speed, memory, and what the search did and did not cover.
fn figures(report: &Report) -> String {
    let mut out = String::new();
    let secs = report.elapsed_s.max(1e-9);
    out.push_str(&format!(
        "states {} · unique {} · depth {} · {:.2} s · {:.0} states/s · {:.0} unique/s · {}\n",
        report.states,
        report.unique_states,
        report.max_depth,
        report.elapsed_s,
        report.states as f64 / secs,
        report.unique_states as f64 / secs,
        match report.stopped_by {
            None => "complete".to_string(),
            Some(stop) => format!("incomplete: stopped at {}", stop.describe()),
        }
    ));
    if let Some(rss) = report.peak_rss_bytes {
        out.push_str(&format!(
            "peak memory {:.0} MiB · {:.0} bytes per unique state\n",
            rss as f64 / (1024.0 * 1024.0),
            rss as f64 / report.unique_states.max(1) as f64
        ));
    }
    if let Some(walks) = report.walks {
        out.push_str(&format!(
            "swarm: {walks} random walks from seed {} (unique states estimated), {} states of new shapes kept to start from\n",
            report.seed.unwrap_or(0),
            report.corpus.unwrap_or(0)
        ));
    }
    if report.stopped_by.is_some() && !report.has_violation() {
        out.push_str(&format!(
            "no violation within depth {} ({} states): the properties are not proved\n",
            report.max_depth, report.states
        ));
    }
    if let Some(stops) = report.bound_stops {
        out.push_str(&format!(
            "liveness: {stops} states stop at a bound (runs the bounds cut short: not counterexamples)\n"
        ));
    }
    out.push_str(&format!(
        "exercised (transitions): {}\n",
        report.coverage.summary()
    ));
    out
}

/// Each violation's trace, with how the run goes on after it for liveness.
fn violations(report: &Report, show_network: bool) -> String {
    let mut out = String::new();
    for p in &report.properties {
        if let (Status::Violated, Some(trace)) = (p.status, &p.trace) {
            let given = trace.iter().filter(|s| s.given);
            let lost = given
                .clone()
                .filter(|s| s.event.starts_with(DROP_EVENT))
                .count();
            // Given rows are numbered from 1 (folded ones under the number of the last).
            let all_given = given.map(|s| s.step).max().unwrap_or(0);
            let after_given = match (all_given - lost, lost) {
                (0, 0) => String::new(),
                (g, 0) => format!(" after {g} given steps"),
                (g, l) => format!(" after {g} given steps and the loss of {l} messages"),
            };
            out.push_str(&format!(
                "\n{} violated in {} steps{after_given}:\n{}",
                p.name,
                searched_steps(trace),
                render_trace_with(trace, show_network)
            ));
            out.push_str(&ending(p, trace.len()));
            for line in &p.explanation {
                out.push_str(&format!("   why: {line}\n"));
            }
            if let Some(w) = p.walk {
                let seed = report.seed.unwrap_or(0);
                out.push_str(&format!(
                    "   found by walk {w} of seed {seed}, shortened; `--seed {seed} --walk {w}` replays that walk alone\n"
                ));
            }
        }
    }
    out
}

//! Runs one checker on one model and turns what it found into a report: a verdict per property,
//! the figures, and replayed, validated traces.

use crate::bfs::{self, Limits, Progress, Stop};
use crate::config::ModelConfig;
use crate::model::{Action, RaftModel, SystemState, DROP_EVENT};
use crate::properties;
use serde::Serialize;
use stateright::Checker;
use stateright::{Expectation, HasDiscoveries, Model, UniformChooser};
use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum CheckerKind {
    Bfs,
    Dfs,
    Simulation,
}

impl CheckerKind {
    pub fn name(self) -> &'static str {
        match self {
            CheckerKind::Bfs => "bfs",
            CheckerKind::Dfs => "dfs",
            CheckerKind::Simulation => "simulation",
        }
    }
}

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub checker: CheckerKind,
    pub threads: usize,
    pub depth: Option<usize>,
    pub max_states: Option<usize>,
    pub seed: u64,
    pub timeout: Option<Duration>,
    /// Symmetry reduction over server ids (models without clients only).
    pub symmetry: bool,
    /// BFS stops (incomplete) at this resident size; None: 80% of physical memory.
    pub max_memory_bytes: Option<u64>,
    /// Print a progress line on stderr (only when stderr is a terminal).
    pub progress: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            checker: CheckerKind::Bfs,
            threads: 2,
            depth: None,
            max_states: None,
            seed: 0,
            timeout: None,
            symmetry: false,
            max_memory_bytes: None,
            progress: false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Holds,
    Violated,
    ExampleFound,
    NoExample,
    Unknown,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Holds => "holds",
            Status::Violated => "violated",
            Status::ExampleFound => "example_found",
            Status::NoExample => "no_example",
            Status::Unknown => "unknown",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ServerView {
    pub id: usize,
    pub role: String,
    pub term: u64,
    pub vote: Option<u64>,
    pub log: String,
    pub commit: u64,
    pub applied: u64,
    pub down: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct TraceStep {
    pub step: usize,
    pub event: String,
    /// One of the model's given steps, taken before the search started.
    pub given: bool,
    pub servers: Vec<ServerView>,
    pub clients: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PropertyReport {
    pub name: String,
    pub kind: &'static str,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<Vec<TraceStep>>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub model: String,
    pub checker: &'static str,
    pub states: u64,
    pub unique_states: u64,
    pub max_depth: usize,
    pub elapsed_s: f64,
    pub complete: bool,
    /// Why the search ended early (absent when complete).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<Stop>,
    /// Peak resident memory of this process so far (Linux), for the bytes-per-state figure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes: Option<u64>,
    pub properties: Vec<PropertyReport>,
}

/// VmHWM from /proc/self/status: the peak resident set size.
fn peak_rss_bytes() -> Option<u64> {
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

/// Refuses option combinations that would make the verdict meaningless.
pub fn check_options(cfg: &ModelConfig, opts: &RunOptions) -> Result<(), String> {
    if opts.symmetry && !cfg.client_ops.is_empty() {
        return Err(format!(
            "symmetry: model {} has clients, and clients try servers in id order, so servers \
             are not interchangeable; use symmetry only on models without clients",
            cfg.name
        ));
    }
    Ok(())
}

pub fn run(cfg: &ModelConfig, opts: &RunOptions) -> Report {
    let model = RaftModel::new(cfg.clone());
    let depth = opts.depth.or(cfg.file.bounds.max_depth);
    let result = match opts.checker {
        CheckerKind::Bfs => {
            let limits = Limits {
                max_depth: depth,
                max_states: opts.max_states,
                timeout: opts.timeout,
                max_memory_bytes: opts.max_memory_bytes.or_else(default_memory_limit),
                threads: opts.threads,
            };
            let progress = Progress::default();
            std::thread::scope(|s| {
                if opts.progress && std::io::stderr().is_terminal() {
                    s.spawn(|| show_progress(&progress));
                }
                let symmetry = opts.symmetry.then_some(
                    crate::symmetry::canonical_fingerprint as bfs::Symmetry<SystemState>,
                );
                bfs::check(&model, &limits, symmetry, &progress)
            })
        }
        CheckerKind::Dfs | CheckerKind::Simulation => run_stateright(cfg, opts, depth),
    };

    let mut out = Vec::new();
    for p in properties::all() {
        let found = result
            .discoveries
            .get(p.name)
            .and_then(|actions| validate(&model, &p, actions));
        let status = match (&p.expectation, &found, result.complete) {
            (Expectation::Sometimes, Some(_), _) => Status::ExampleFound,
            (Expectation::Sometimes, None, true) => Status::NoExample,
            (_, Some(_), _) => Status::Violated,
            (Expectation::Always | Expectation::Eventually, None, true) => Status::Holds,
            (_, None, false) => Status::Unknown,
        };
        out.push(PropertyReport {
            name: p.name.to_string(),
            kind: properties::kind(&p.expectation),
            status,
            trace: found.map(|path| trace(&model, &path)),
        });
    }
    Report {
        model: cfg.name.clone(),
        checker: opts.checker.name(),
        states: result.states,
        unique_states: result.unique,
        max_depth: result.max_depth,
        elapsed_s: result.elapsed.as_secs_f64(),
        complete: result.complete,
        stopped_by: result.stopped,
        peak_rss_bytes: peak_rss_bytes(),
        properties: out,
    }
}

/// 80% of physical memory (Linux): past it a search stops and reports what it has.
pub fn default_memory_limit() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024 / 5 * 4)
}

/// DFS and simulation come from stateright; they stop at the first violation.
fn run_stateright(
    cfg: &ModelConfig,
    opts: &RunOptions,
    depth: Option<usize>,
) -> bfs::BfsResult<RaftModel> {
    let start = Instant::now();
    let mut model = RaftModel::new(cfg.clone());
    model.check_liveness = opts.checker != CheckerKind::Simulation;
    let mut builder = model
        .checker()
        .threads(opts.threads.max(1))
        .finish_when(HasDiscoveries::AnyFailures);
    if opts.symmetry {
        builder = builder.symmetry();
    }
    if let Some(d) = depth {
        builder = builder.target_max_depth(d);
    }
    if let Some(m) = opts.max_states {
        builder = builder.target_state_count(m);
    }
    // A simulation never ends by itself: bound it by time if nothing else bounds it.
    let timeout = match (opts.checker, opts.timeout, opts.max_states) {
        (CheckerKind::Simulation, None, None) => Some(Duration::from_secs(10)),
        (_, t, _) => t,
    };
    if let Some(t) = timeout {
        builder = builder.timeout(t);
    }
    let show = opts.progress && std::io::stderr().is_terminal();
    macro_rules! finish {
        ($c:expr) => {{
            let c = $c;
            while !c.is_done() {
                if show {
                    eprint!(
                        "\r{} states, {} unique, depth {}   ",
                        c.state_count(),
                        c.unique_state_count(),
                        c.max_depth()
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if show {
                eprint!("\r{:60}\r", "");
            }
            let c = c.join();
            let discoveries: std::collections::HashMap<_, _> = c
                .discoveries()
                .into_iter()
                .map(|(k, path)| (k, path.into_actions()))
                .collect();
            let failed = discoveries.keys().any(|k| {
                c.model()
                    .properties()
                    .iter()
                    .any(|p| p.name == *k && p.expectation != Expectation::Sometimes)
            });
            let elapsed = start.elapsed();
            let stopped = if failed {
                Some(Stop::Violation)
            } else if timeout.is_some_and(|t| elapsed >= t) {
                Some(Stop::Time)
            } else if opts.max_states.is_some() {
                Some(Stop::States)
            } else if depth.is_some() || opts.checker == CheckerKind::Simulation {
                // Depth-limited DFS is incomplete (stateright 0.31 does not re-expand a state
                // first reached near the limit), and a simulation samples.
                Some(Stop::Depth)
            } else {
                None
            };
            bfs::BfsResult {
                states: c.state_count() as u64,
                unique: c.unique_state_count() as u64,
                max_depth: c.max_depth(),
                elapsed,
                complete: stopped.is_none(),
                stopped,
                discoveries,
            }
        }};
    }
    match opts.checker {
        CheckerKind::Dfs => finish!(builder.spawn_dfs()),
        _ => finish!(builder.spawn_simulation(opts.seed, UniformChooser)),
    }
}

/// Replays a path from the initial state and returns the shortest prefix that really shows the
/// property (a simulation path can run past the state it reported, or be invalid).
fn validate(
    model: &RaftModel,
    p: &stateright::Property<RaftModel>,
    actions: &[Action],
) -> Option<Vec<Action>> {
    let is_terminal = |s: &SystemState| {
        let mut acts = Vec::new();
        model.actions(s, &mut acts);
        acts.into_iter().all(|a| {
            model
                .next_state(s, a)
                .is_none_or(|n| !model.within_boundary(&n))
        })
    };
    // Only `eventually` needs to know whether a state is terminal (which expands all successors).
    let shows = |s: &SystemState| match p.expectation {
        Expectation::Always => !(p.condition)(model, s),
        Expectation::Sometimes => (p.condition)(model, s),
        Expectation::Eventually => !(p.condition)(model, s) && is_terminal(s),
    };
    let mut state = model.init_states().pop()?;
    if shows(&state) {
        return Some(Vec::new());
    }
    // A simulation walk may contain actions that changed nothing: leave them out.
    let mut path = Vec::new();
    for action in actions {
        let Some(next) = model.next_state(&state, action.clone()) else {
            continue;
        };
        state = next;
        path.push(action.clone());
        if shows(&state) {
            return Some(path);
        }
    }
    None
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
            term: s.term,
            vote: s.voted_for,
            log: s.log.summary(),
            commit: s.commit_index,
            applied: s.last_applied,
            down: state.down[i],
        })
        .collect();
    let clients = (0..state.clients.len())
        .map(|c| model.client_summary(state, c))
        .collect();
    (servers, clients)
}

/// Replays a path into readable steps: step 0 is the fresh cluster, then the model's given
/// steps, then the path the search found.
pub fn trace(model: &RaftModel, actions: &[Action]) -> Vec<TraceStep> {
    let mut state = model.fresh_state();
    let (servers, clients) = view(model, &state);
    let mut steps = vec![TraceStep {
        step: 0,
        event: "initial state".into(),
        given: false,
        servers,
        clients,
    }];
    let given = model.given.iter().map(|a| (a, true));
    let found = actions.iter().map(|a| (a, false));
    for (i, (action, given)) in given.chain(found).enumerate() {
        let mut event = model.describe(action);
        state = model
            .next_state(&state, action.clone())
            .expect("validated traces replay");
        if let Action::Restart(i) = action {
            let s = &state.servers[*i as usize];
            let vote = s.voted_for.map_or("-".into(), |v| format!("S{v}"));
            event.push_str(&format!(
                " (restored t{} vote={vote} log={})",
                s.term,
                s.log.summary()
            ));
        }
        let (servers, clients) = view(model, &state);
        steps.push(TraceStep {
            step: i + 1,
            event,
            given,
            servers,
            clients,
        });
    }
    steps
}

fn show_progress(p: &Progress) {
    let start = Instant::now();
    while !p.done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(250));
        let unique = p.unique.load(Ordering::Relaxed);
        let secs = start.elapsed().as_secs_f64().max(1e-9);
        eprint!(
            "\r{} states, {} unique, depth {}, {:.0} unique/s   ",
            p.states.load(Ordering::Relaxed),
            unique,
            p.depth.load(Ordering::Relaxed),
            unique as f64 / secs
        );
    }
    eprint!("\r{:70}\r", "");
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
    let n = steps.first().map_or(0, |s| s.servers.len());
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut header = vec!["#".to_string(), "event".to_string()];
    header.extend((0..n).map(|i| format!("S{i}")));
    rows.push(header);
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
    }
    let widths: Vec<usize> = (0..n + 2)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
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
    }
    if let Some(last) = steps.last() {
        for c in &last.clients {
            out.push_str(&format!("   at the end, {c}\n"));
        }
    }
    out
}

/// The human report: one row per property, the figures, then each violation's trace.
pub fn render(report: &Report, description: &str) -> String {
    let mut out = format!("model {} ({})", report.model, report.checker);
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
    for p in &report.properties {
        if let (Status::Violated, Some(trace)) = (p.status, &p.trace) {
            let given = trace.iter().filter(|s| s.given);
            let lost = given
                .clone()
                .filter(|s| s.event.starts_with(DROP_EVENT))
                .count();
            let after_given = match (given.count() - lost, lost) {
                (0, 0) => String::new(),
                (g, 0) => format!(" after {g} given steps"),
                (g, l) => format!(" after {g} given steps and the loss of {l} messages"),
            };
            out.push_str(&format!(
                "\n{} violated in {} steps{after_given}:\n{}",
                p.name,
                searched_steps(trace),
                render_trace(trace)
            ));
        }
    }
    out
}

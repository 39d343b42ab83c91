//! Runs one checker on one model and turns what it found into a report: a verdict per property,
//! the figures, and replayed, validated traces.

use crate::check::bfs::{self, Limits, Progress, Stop};
use crate::check::dfs;
use crate::check::fairness;
use crate::check::liveness::{self, Adjacency, Graph, Recording};
use crate::check::properties::{self, LivenessProperty};
use crate::check::report::peak_rss_bytes;
pub use crate::check::report::{
    render, render_trace, searched_steps, trace, PropertyReport, Report, ServerView, Status,
    TraceStep,
};
use crate::model::spec::ModelConfig;
use crate::model::{Action, RaftModel, SystemState};
use serde::Serialize;
use stateright::Checker;
use stateright::{Expectation, HasDiscoveries, Model, UniformChooser};
use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Which checker explores the model (`--checker`, or a suite entry's `checker`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum CheckerKind {
    /// This crate's parallel BFS (`bfs`): shortest, reproducible traces; the default.
    Bfs,
    /// This crate's single-threaded DFS (`dfs`): the same limits as BFS; its traces need not be
    /// shortest, and it checks no liveness.
    Dfs,
    /// stateright's seeded random walks: a sample, never complete (10 s unless bounded otherwise).
    Simulation,
}

impl CheckerKind {
    /// The checker's name in reports (`checker` in JSON).
    pub fn name(self) -> &'static str {
        match self {
            CheckerKind::Bfs => "bfs",
            CheckerKind::Dfs => "dfs",
            CheckerKind::Simulation => "simulation",
        }
    }
}

/// How to run one check: the `check` command's flags, or a suite entry's settings.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Which checker to run.
    pub checker: CheckerKind,
    /// Worker threads for the checker (default 2).
    pub threads: usize,
    /// Paths of at most this many steps (the run is then incomplete); overrides `bounds.max_depth`.
    pub depth: Option<usize>,
    /// Stop after this many distinct states (the run is then incomplete).
    pub max_states: Option<usize>,
    /// Seed of the simulation's random walks, so that a simulation can be repeated.
    pub seed: u64,
    /// Stop after this long (the run is then incomplete).
    pub timeout: Option<Duration>,
    /// Symmetry reduction over server ids (models without clients only).
    pub symmetry: bool,
    /// BFS stops (incomplete) at this resident size; None: 80% of physical memory.
    pub max_memory_bytes: Option<u64>,
    /// Print a progress line on stderr (only when stderr is a terminal).
    pub progress: bool,
    /// Check only these properties (by name); empty: all.
    pub properties: Vec<String>,
    /// Check the liveness properties (BFS only: it records the graph they are checked on).
    pub liveness: bool,
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
            properties: Vec::new(),
            liveness: true,
        }
    }
}

/// Refuses option combinations that would make the verdict meaningless.
pub fn check_options(cfg: &ModelConfig, opts: &RunOptions) -> Result<(), String> {
    let known = properties::names();
    if let Some(name) = opts
        .properties
        .iter()
        .find(|p| !known.contains(&p.as_str()))
    {
        return Err(format!(
            "--property '{name}': no such property (known: {})",
            known.join(", ")
        ));
    }
    if opts.symmetry && !cfg.client_ops.is_empty() {
        return Err(format!(
            "symmetry: model {} has clients, and clients try servers in id order, so servers \
             are not interchangeable; use symmetry only on models without clients",
            cfg.name
        ));
    }
    Ok(())
}

/// Runs the chosen checker on the model and turns what it found into a report: a verdict per
/// property, and each discovery replayed, validated and shortened into a trace.
pub fn run(cfg: &ModelConfig, opts: &RunOptions) -> Report {
    let selected =
        |name: &str| opts.properties.is_empty() || opts.properties.iter().any(|p| p == name);
    let safety: Vec<_> = properties::all()
        .into_iter()
        .filter(|p| selected(p.name))
        .collect();
    let live: Vec<LivenessProperty> = match opts.liveness {
        true => properties::liveness()
            .into_iter()
            .filter(|p| selected(p.name))
            .filter(|p| cfg.file.timing.heartbeats || !p.needs_heartbeats)
            .collect(),
        false => Vec::new(),
    };
    let model = RaftModel::new(cfg.clone()).with_properties(safety);
    let depth = opts.depth.or(cfg.file.bounds.max_depth);
    let start = Instant::now();
    let mut result = match opts.checker {
        CheckerKind::Bfs => run_bfs(&model, opts, depth, &live),
        CheckerKind::Dfs => run_dfs(&model, opts, depth),
        CheckerKind::Simulation => run_stateright(&model, opts, depth),
    };
    let mut out = Vec::new();
    for p in model.properties() {
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
            loop_from: None,
        });
    }
    let graph = result.graph.take().filter(|_| result.complete);
    let bound_stops = graph.as_ref().map(|g| g.bound_stops() as u64);
    out.extend(check_liveness(&model, opts, graph, &live));
    Report {
        model: cfg.name.clone(),
        checker: opts.checker.name(),
        states: result.states,
        unique_states: result.unique,
        max_depth: result.max_depth,
        // The whole run: the search, and the liveness pass after it.
        elapsed_s: start.elapsed().as_secs_f64(),
        complete: result.complete,
        stopped_by: result.stopped,
        peak_rss_bytes: peak_rss_bytes(),
        bound_stops,
        properties: out,
    }
}

/// The crate's BFS, recording the explored graph when liveness properties are to be checked.
fn run_bfs(
    model: &RaftModel,
    opts: &RunOptions,
    depth: Option<usize>,
    live: &[LivenessProperty],
) -> bfs::BfsResult<RaftModel> {
    let limits = Limits {
        max_depth: depth,
        max_states: opts.max_states,
        timeout: opts.timeout,
        max_memory_bytes: opts.max_memory_bytes.or_else(default_memory_limit),
        threads: opts.threads,
    };
    let progress = Progress::default();
    let symmetry = opts
        .symmetry
        .then_some(crate::check::symmetry::canonical_fingerprint as bfs::Symmetry<SystemState>);
    let classify = |s: &SystemState, a: &Action| fairness::classify(model, s, a);
    let goals = |s: &SystemState| {
        live.iter()
            .enumerate()
            .fold(0u8, |bits, (k, p)| bits | u8::from((p.goal)(model, s)) << k)
    };
    let recording = Recording {
        classes: fairness::classes(model),
        classify: &classify,
        goals: &goals,
    };
    std::thread::scope(|s| {
        if opts.progress && std::io::stderr().is_terminal() {
            s.spawn(|| show_progress(&progress));
        }
        // Under symmetry a state stands for its renamings, and fairness classes name servers:
        // the graph would mix them, so liveness is not checked (it reports `unknown`).
        match live.is_empty() || opts.symmetry {
            true => bfs::check(model, &limits, symmetry, &progress),
            false => bfs::check_recording(model, &limits, symmetry, &progress, &recording),
        }
    })
}

/// The crate's DFS (single-threaded: `opts.threads` does not apply). It records no graph, so
/// liveness is `unknown`.
fn run_dfs(
    model: &RaftModel,
    opts: &RunOptions,
    depth: Option<usize>,
) -> bfs::BfsResult<RaftModel> {
    let limits = Limits {
        max_depth: depth,
        max_states: opts.max_states,
        timeout: opts.timeout,
        max_memory_bytes: opts.max_memory_bytes.or_else(default_memory_limit),
        threads: 1,
    };
    let progress = Progress::default();
    let symmetry = opts
        .symmetry
        .then_some(crate::check::symmetry::canonical_fingerprint as bfs::Symmetry<SystemState>);
    std::thread::scope(|s| {
        if opts.progress && std::io::stderr().is_terminal() {
            s.spawn(|| show_progress(&progress));
        }
        dfs::check(model, &limits, symmetry, &progress)
    })
}

/// Verdicts of the liveness properties: from the recorded graph of a complete search, or
/// `unknown` (an incomplete search, or a checker that records no graph).
fn check_liveness(
    model: &RaftModel,
    opts: &RunOptions,
    graph: Option<Graph>,
    live: &[LivenessProperty],
) -> Vec<PropertyReport> {
    let mut graph = graph;
    let adjacency = graph.as_mut().map(Adjacency::new);
    let key = |s: &SystemState| match opts.symmetry {
        true => crate::check::symmetry::canonical_fingerprint(s),
        false => bfs::fingerprint(s),
    };
    live.iter()
        .enumerate()
        .map(|(k, p)| {
            let verdict = graph
                .as_ref()
                .zip(adjacency.as_ref())
                .map(|(g, adj)| liveness::check(g, adj, k as u8, p.kind));
            let (status, trace, loop_from) = match verdict.and_then(|v| v.counterexample) {
                None if graph.is_some() => (Status::Holds, None, None),
                None => (Status::Unknown, None, None),
                Some(c) => {
                    let g = graph.as_ref().expect("a verdict needs the graph");
                    let fps = |path: &[u32]| {
                        path.iter()
                            .map(|&i| g.fingerprints[i as usize])
                            .collect::<Vec<_>>()
                    };
                    let mut chain = fps(&c.stem);
                    chain.extend(fps(&c.cycle));
                    let fair = |s: &SystemState, a: &Action| {
                        fairness::classify(model, s, a) != liveness::Fairness::Fault
                    };
                    let actions = bfs::replay_preferring(model, &key, &chain, &fair);
                    let stem_steps = model.given.len() + c.stem.len() - 1;
                    let loop_from = (!c.cycle.is_empty()).then_some(stem_steps);
                    (Status::Violated, Some(trace(model, &actions)), loop_from)
                }
            };
            PropertyReport {
                name: p.name.to_string(),
                kind: properties::liveness_kind(p.kind),
                status,
                trace,
                loop_from,
            }
        })
        .collect()
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
    model: &RaftModel,
    opts: &RunOptions,
    depth: Option<usize>,
) -> bfs::BfsResult<RaftModel> {
    let start = Instant::now();
    let model = model.clone();
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
    let bounds = Bounds {
        opts,
        depth,
        timeout,
        start,
    };
    match opts.checker {
        CheckerKind::Dfs => finish_stateright(builder.spawn_dfs(), &bounds),
        _ => finish_stateright(builder.spawn_simulation(opts.seed, UniformChooser), &bounds),
    }
}

/// What bounded a stateright run, to tell afterwards why it stopped.
struct Bounds<'a> {
    opts: &'a RunOptions,
    depth: Option<usize>,
    timeout: Option<Duration>,
    start: Instant,
}

/// Waits for a stateright checker (showing progress), then collects what it found in the same
/// shape as the BFS's result.
fn finish_stateright(
    checker: impl Checker<RaftModel>,
    bounds: &Bounds,
) -> bfs::BfsResult<RaftModel> {
    let opts = bounds.opts;
    let show = opts.progress && std::io::stderr().is_terminal();
    while !checker.is_done() {
        if show {
            eprint!(
                "\r{} states, {} unique, depth {}   ",
                checker.state_count(),
                checker.unique_state_count(),
                checker.max_depth()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if show {
        eprint!("\r{:60}\r", "");
    }
    let checker = checker.join();
    let discoveries: std::collections::HashMap<_, _> = checker
        .discoveries()
        .into_iter()
        .map(|(k, path)| (k, path.into_actions()))
        .collect();
    let failed = discoveries.keys().any(|k| {
        checker
            .model()
            .properties()
            .iter()
            .any(|p| p.name == *k && p.expectation != Expectation::Sometimes)
    });
    let elapsed = bounds.start.elapsed();
    let stopped = if failed {
        Some(Stop::Violation)
    } else if bounds.timeout.is_some_and(|t| elapsed >= t) {
        Some(Stop::Time)
    } else if opts.max_states.is_some() {
        Some(Stop::States)
    } else if bounds.depth.is_some() || opts.checker == CheckerKind::Simulation {
        // Depth-limited DFS is incomplete (stateright 0.31 does not re-expand a state first
        // reached near the limit), and a simulation samples.
        Some(Stop::Depth)
    } else {
        None
    };
    bfs::BfsResult {
        states: checker.state_count() as u64,
        unique: checker.unique_state_count() as u64,
        max_depth: checker.max_depth(),
        elapsed,
        complete: stopped.is_none(),
        stopped,
        discoveries,
        graph: None,
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

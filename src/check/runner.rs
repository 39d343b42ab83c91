//! Runs one checker on one model and turns what it found into a report: a verdict per property,
//! the figures, and replayed, validated traces.

use crate::check::bfs::{self, Limits, Progress};
use crate::check::coverage::raft_observer;
use crate::check::dfs;
use crate::check::explain;
use crate::check::fairness;
use crate::check::liveness::{self, Adjacency, Graph, Recording};
use crate::check::properties::{self, LivenessProperty};
use crate::check::report::{self, peak_rss_bytes};
pub use crate::check::report::{
    render, render_trace, render_with, searched_steps, trace, PropertyReport, Report, ServerView,
    Status, TraceStep,
};
use crate::check::swarm;
use crate::model::spec::ModelConfig;
use crate::model::{Action, RaftModel, SystemState};
use serde::Serialize;
use stateright::{Expectation, Model};
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
    /// Symmetry reduction over server ids (models without clients only), also when the model
    /// does not declare it (`symmetry = true` in a model file turns it on by itself).
    pub symmetry: bool,
    /// No symmetry reduction, even when the model declares it (`check --no-symmetry`).
    pub no_symmetry: bool,
    /// BFS stops (incomplete) at this resident size; None: 80% of physical memory.
    pub max_memory_bytes: Option<u64>,
    /// Print a progress line on stderr (only when stderr is a terminal).
    pub progress: bool,
    /// Check only these properties (by name); empty: all.
    pub properties: Vec<String>,
    /// Check the liveness properties (BFS only: it records the graph they are checked on).
    pub liveness: bool,
    /// Simulation: stop after this many walks.
    pub walks: Option<u64>,
    /// Simulation: run only this walk (replays what an earlier run found).
    pub walk: Option<u64>,
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
            no_symmetry: false,
            max_memory_bytes: None,
            progress: false,
            properties: Vec::new(),
            liveness: true,
            walks: None,
            walk: None,
        }
    }
}

impl RunOptions {
    /// Whether a run of `cfg` uses symmetry reduction: the model declares it or `symmetry`
    /// asks for it, and `no_symmetry` does not turn it off.
    pub fn symmetry_for(&self, cfg: &ModelConfig) -> bool {
        (self.symmetry || cfg.file.symmetry) && !self.no_symmetry
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
    if opts.symmetry && opts.no_symmetry {
        return Err("symmetry: asked both on and off; choose one".into());
    }
    if opts.symmetry_for(cfg) && !cfg.client_ops.is_empty() {
        return Err(format!(
            "symmetry: model {} has clients, and {}",
            cfg.name,
            crate::model::spec::CLIENTS_BREAK_SYMMETRY
        ));
    }
    Ok(())
}

/// Runs the chosen checker on the model and turns what it found into a report: a verdict per
/// property, and each discovery replayed, validated and shortened into a trace.
pub fn run(cfg: &ModelConfig, opts: &RunOptions) -> Report {
    // From here on `opts.symmetry` is what this run uses: the model's declaration or the flag.
    let opts = &RunOptions {
        symmetry: opts.symmetry_for(cfg),
        no_symmetry: false,
        ..opts.clone()
    };
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
    let mut swarm = None;
    let mut result = match opts.checker {
        CheckerKind::Bfs => run_bfs(&model, opts, depth, &live),
        CheckerKind::Dfs => run_dfs(&model, opts, depth),
        CheckerKind::Simulation => {
            let (result, figures) = run_swarm(&model, opts, depth);
            swarm = Some(figures);
            result
        }
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
            walk: found
                .as_ref()
                .and(swarm.as_ref())
                .and_then(|s| s.found_in.get(p.name).copied()),
            trace: found.map(|path| trace(&model, &path)),
            loop_from: None,
            explanation: Vec::new(),
        });
    }
    let graph = result.graph.take().filter(|_| result.complete);
    let bound_stops = graph.as_ref().map(|g| g.bound_stops() as u64);
    out.extend(check_liveness(&model, opts, graph, &live));
    explain_violations(&model, &mut out);
    crate::check::vacuity::mark(cfg, &mut out);
    Report {
        model: cfg.name.clone(),
        checker: opts.checker.name(),
        symmetry: opts.symmetry,
        states: result.states,
        unique_states: result.unique,
        max_depth: result.max_depth,
        // The whole run: the search, and the liveness pass after it.
        elapsed_s: start.elapsed().as_secs_f64(),
        complete: result.complete,
        stopped_by: result.stopped,
        peak_rss_bytes: peak_rss_bytes(),
        bound_stops,
        walks: swarm.as_ref().map(|s| s.walks),
        seed: swarm.as_ref().map(|_| opts.seed),
        corpus: swarm.as_ref().map(|s| s.corpus),
        coverage: result.coverage,
        properties: out,
    }
}

/// What a swarm adds to the report: how many walks ran, and which walk found each property.
struct SwarmFigures {
    walks: u64,
    corpus: u64,
    found_in: std::collections::HashMap<&'static str, u64>,
}

/// The kinds of action a swarm walk weighs apart (`swarm::Config`): delivery and loss on each
/// link, each actor's timers, each server's crash and restart, proposals. Per link, so that a
/// walk can hold one link's messages back while the rest of the cluster moves on: the way a
/// stale reply arrives late.
fn action_kind(actors: usize, servers: usize, action: &Action) -> usize {
    let links = actors * actors;
    let link = |e: &crate::model::Envelope| e.src as usize * actors + e.dst as usize;
    match action {
        Action::Deliver(e) => link(e),
        Action::Drop(e) => links + link(e),
        Action::Timeout(i, t) => 2 * links + *i as usize * 3 + *t as usize,
        Action::Crash(i) | Action::Damage(i, _) => 2 * links + 3 * actors + *i as usize,
        Action::Restart(i) => 2 * links + 3 * actors + servers + *i as usize,
        Action::Propose(..) | Action::Request(..) => 2 * links + 3 * actors + 2 * servers,
    }
}

/// A state's shape, for the swarm's corpus (`swarm::Kinds::feature`): each server's role, term,
/// whether it is down and the terms of its log (a multiset: which server is which does not
/// count), and which kinds of stale reply are in flight at which terms (a set: how many, from
/// whom and to whom do not count). Coarse on purpose: a walk that reaches a shape no walk
/// reached before (a leader of term 3 whose log was cut back, with a term-1 acknowledgement
/// still in flight) keeps that state for later walks to start from. A walk computes it at
/// most steps, so it allocates little and mixes with a multiply-rotate hash rather than SipHash.
fn shape(state: &SystemState) -> u64 {
    use crate::protocol::view::ServerView as _;
    let mix = |h: u64, x: u64| (h.rotate_left(5) ^ x).wrapping_mul(0x517c_c1b7_2722_0a95);
    let mut servers: Vec<u64> = (state.servers.iter().zip(&state.down))
        .map(|(server, &down)| {
            let role = match server.role_name() {
                "follower" => 1,
                "candidate" => 2,
                _ => 3,
            };
            let log = server.log();
            let h = [role, server.term(), u64::from(down), log.base_index]
                .into_iter()
                .fold(0, mix);
            let h = log
                .entries
                .iter()
                .fold(mix(h, u64::MAX), |h, e| mix(h, e.term));
            finish(h)
        })
        .collect();
    servers.sort_unstable();
    let mut stale: Vec<(u8, u64)> = (state.network.iter())
        .filter_map(|e| stale_reply(state, e))
        .collect();
    stale.sort_unstable();
    stale.dedup();
    let h = servers.into_iter().fold(u64::from(state.proposed), mix);
    let h = stale.into_iter().fold(mix(h, u64::MAX), |h, (kind, term)| {
        mix(mix(h, u64::from(kind)), term)
    });
    finish(h)
}

/// A reply in flight to a server that has moved on to a later term since it was sent: its
/// kind (a refused vote 1, a granted one 2, AppendEntries 4, InstallSnapshot 6) and term.
fn stale_reply(state: &SystemState, e: &crate::model::Envelope) -> Option<(u8, u64)> {
    use crate::protocol::types::Msg;
    let receiver = state.servers.get(e.dst as usize)?;
    let (kind, term) = match &*e.msg {
        Msg::RequestVoteReply { term, granted } => (1 + u8::from(*granted), *term),
        Msg::AppendEntriesReply { term, .. } => (4, *term),
        Msg::InstallSnapshotReply { term, .. } => (6, *term),
        _ => return None,
    };
    (term < receiver.term).then_some((kind, term))
}

/// SplitMix64's finaliser: spreads a multiply-rotate hash's bits, so that sorting and set
/// membership see well-mixed values.
fn finish(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A state's aspects, for the swarm's choice of where to start (`swarm::Kinds::aspects`):
/// each server's role, term, whether it is down and its log's terms; each stale reply in flight
/// (its kind and term) with the role, term and log of the server it goes to; and how many
/// proposals were made at which highest term. A leader of term 3 with a term-1 acknowledgement
/// on its way is one aspect, which few states show.
fn aspects(state: &SystemState, out: &mut Vec<u64>) {
    use crate::protocol::view::ServerView as _;
    use std::hash::{Hash, Hasher};
    let hash = |x: &dyn Fn(&mut std::collections::hash_map::DefaultHasher)| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        x(&mut h);
        h.finish()
    };
    let server = |i: usize, h: &mut std::collections::hash_map::DefaultHasher| {
        let s = &state.servers[i];
        (s.role_name(), s.term(), state.down[i], s.log().base_index).hash(h);
        s.log().entries.iter().for_each(|e| e.term.hash(h));
    };
    for i in 0..state.servers.len() {
        out.push(hash(&|h| {
            0u8.hash(h);
            server(i, h);
        }));
    }
    for e in state.network.iter() {
        if let Some(reply) = stale_reply(state, e) {
            out.push(hash(&|h| {
                (1u8, reply).hash(h);
                server(e.dst as usize, h);
            }));
        }
    }
    let top = state.servers.iter().map(|s| s.term).max().unwrap_or(0);
    out.push(hash(&|h| (2u8, state.proposed, top).hash(h)));
}

/// The crate's swarm (`check::swarm`): random walks from the initial state, each with its own
/// configuration; a simulation never ends by itself, so it is bounded by 10 s unless walks,
/// states or time bound it.
fn run_swarm(
    model: &RaftModel,
    opts: &RunOptions,
    depth: Option<usize>,
) -> (bfs::BfsResult<RaftModel>, SwarmFigures) {
    let timeout = match (opts.timeout, opts.walks, opts.walk, opts.max_states) {
        (None, None, None, None) => Some(Duration::from_secs(10)),
        (t, ..) => t,
    };
    let swarm_opts = swarm::SwarmOptions {
        seed: opts.seed,
        walks: opts.walks,
        walk: opts.walk,
        timeout,
        max_states: opts.max_states.map(|m| m as u64),
        max_depth: depth.unwrap_or(100),
        threads: opts.threads,
    };
    let (actors, servers) = (model.n() + model.clients.len(), model.n());
    let kind = |a: &Action| action_kind(actors, servers, a);
    let identity = |a: &Action| match a {
        Action::Deliver(e) | Action::Drop(e) => {
            e.msg.hash_code() ^ (e.src as u64) << 8 ^ e.dst as u64
        }
        other => action_kind(actors, servers, other) as u64,
    };
    let kinds = swarm::Kinds {
        count: 2 * actors * actors + 3 * actors + 2 * servers + 1,
        of: &kind,
        identity: &identity,
        feature: Some(&shape),
        futile: Some(&|s: &SystemState, a: &Action| model.surely_leaves_bounds(s, a)),
        aspects: Some(&aspects),
    };
    let progress = Progress::default();
    let found = std::thread::scope(|s| {
        if opts.progress && std::io::stderr().is_terminal() {
            s.spawn(|| show_progress(&progress));
        }
        swarm::run(
            model,
            &kinds,
            &swarm_opts,
            &progress,
            Some(&raft_observer()),
        )
    });
    let found_in = found
        .discoveries
        .iter()
        .map(|(&n, (w, _))| (n, *w))
        .collect();
    let result = bfs::BfsResult {
        states: found.states,
        unique: found.unique,
        max_depth: found.max_depth,
        elapsed: found.elapsed,
        complete: false,
        stopped: Some(found.stopped),
        discoveries: found
            .discoveries
            .into_iter()
            .map(|(n, (_, actions))| (n, actions))
            .collect(),
        graph: None,
        coverage: found.coverage,
    };
    let figures = SwarmFigures {
        walks: found.walks,
        corpus: found.corpus,
        found_in,
    };
    (result, figures)
}

/// A search's limits from the run's options: depth, states, time, and memory (80% of RAM
/// unless given).
fn limits(opts: &RunOptions, depth: Option<usize>, threads: usize) -> Limits {
    Limits {
        max_depth: depth,
        max_states: opts.max_states,
        timeout: opts.timeout,
        max_memory_bytes: opts.max_memory_bytes.or_else(default_memory_limit),
        threads,
    }
}

/// The crate's BFS, recording the explored graph when liveness properties are to be checked.
fn run_bfs(
    model: &RaftModel,
    opts: &RunOptions,
    depth: Option<usize>,
    live: &[LivenessProperty],
) -> bfs::BfsResult<RaftModel> {
    let limits = limits(opts, depth, opts.threads);
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
        let recording = (!live.is_empty() && !opts.symmetry).then_some(&recording);
        let observer = raft_observer();
        bfs::check_recording(
            model,
            &limits,
            symmetry,
            &progress,
            recording,
            Some(&observer),
        )
    })
}

/// The crate's DFS (single-threaded: `opts.threads` does not apply). It records no graph, so
/// liveness is `unknown`.
fn run_dfs(
    model: &RaftModel,
    opts: &RunOptions,
    depth: Option<usize>,
) -> bfs::BfsResult<RaftModel> {
    let limits = limits(opts, depth, 1);
    let progress = Progress::default();
    let symmetry = opts
        .symmetry
        .then_some(crate::check::symmetry::canonical_fingerprint as bfs::Symmetry<SystemState>);
    std::thread::scope(|s| {
        if opts.progress && std::io::stderr().is_terminal() {
            s.spawn(|| show_progress(&progress));
        }
        dfs::check_observing(model, &limits, symmetry, &progress, Some(&raft_observer()))
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
                walk: None,
                explanation: Vec::new(),
            }
        })
        .collect()
}

/// Says, for each violation, what it concerns (`check::explain`), from its trace's states.
fn explain_violations(model: &RaftModel, reports: &mut [PropertyReport]) {
    for p in reports.iter_mut().filter(|p| p.status == Status::Violated) {
        let Some(trace) = &p.trace else { continue };
        let actions = report::trace_actions(model, trace);
        p.explanation = explain::concerns(model, &p.name, &model.replay(&actions));
    }
}

/// 80% of physical memory (Linux): past it a search stops and reports what it has.
pub fn default_memory_limit() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024 / 5 * 4)
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

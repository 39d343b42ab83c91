//! Real runs validated against the model (`check --validate-trace`), as etcd raft validates
//! its traces against the TLA+ spec: the traces `node --trace` wrote (one file per node, one
//! handler invocation per line) are merged into one order consistent with causality and
//! replayed through the model's own transitions and `always` properties.
//!
//! The merge is greedy and needs no search: an event of one node is possible once the model
//! has it enabled (a delivery once its message was sent and is still in flight, a timer once
//! armed), and another node's event can only add messages, never disable it. So taking any
//! enabled event first never blocks a later one, and when no node's next event is possible the
//! run is one the model cannot make. A delivery of a message the model already dropped as moot
//! (it changes nothing) is accepted as the no-op it is.

use crate::check::explain;
use crate::check::properties;
use crate::model::shared::Shared;
use crate::model::{spec, Action, Damage, Envelope, RaftModel, SystemState};
use crate::protocol::server::{RaftServer, ServerConfig};
use crate::protocol::trace::{Restored, TraceEvent, TracedConfig};
use crate::protocol::types::{Msg, Timer};
use stateright::{Expectation, Model};
use std::path::{Path, PathBuf};

/// One line of a trace file.
#[derive(Clone, Debug)]
struct Line {
    file: PathBuf,
    line: usize,
    event: TraceEvent,
}

/// Where a trace stops agreeing with the model: the first event it cannot take, or the first
/// property broken.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// The trace file and line (1-based) of the event.
    pub file: PathBuf,
    /// The line number.
    pub line: usize,
    /// The node that recorded it.
    pub node: usize,
    /// What is wrong.
    pub why: String,
}

/// What a validation found.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// Nodes traced.
    pub nodes: usize,
    /// Events replayed (all of them when the traces are valid).
    pub events: usize,
    /// The first problem, if any.
    pub problem: Option<Problem>,
}

/// Reads the trace files of one run: `Err` for input that is not a trace (unreadable, not one
/// JSON event per line, a node in two files, no start first).
fn load(paths: &[PathBuf]) -> Result<Vec<Vec<Line>>, String> {
    let mut nodes: Vec<Vec<Line>> = Vec::new();
    let mut owner: Vec<Option<&Path>> = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        for (k, raw) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let at = || format!("{}:{}", path.display(), k + 1);
            let event: TraceEvent = serde_json::from_str(raw)
                .map_err(|e| format!("{}: not a trace event: {e}", at()))?;
            let node = event.node();
            if node >= 64 {
                return Err(format!("{}: node {node} is out of range", at()));
            }
            // What a node could have received: the wire refuses the rest before any handler.
            if let TraceEvent::Deliver { msg, .. } = &event {
                if !msg.numbers_in_range() {
                    return Err(format!("{}: a term or log index at or above 2^62", at()));
                }
            }
            if nodes.len() <= node {
                nodes.resize(node + 1, Vec::new());
                owner.resize(node + 1, None);
            }
            match owner[node] {
                Some(p) if p != path.as_path() => {
                    return Err(format!(
                        "{}: node {node} is also traced in {}",
                        at(),
                        p.display()
                    ))
                }
                _ => owner[node] = Some(path),
            }
            if nodes[node].is_empty() && !matches!(event, TraceEvent::Start { .. }) {
                return Err(format!(
                    "{}: node {node}'s trace must begin with its start",
                    at()
                ));
            }
            nodes[node].push(Line {
                file: path.clone(),
                line: k + 1,
                event,
            });
        }
    }
    if nodes.is_empty() {
        return Err("the traces hold no event".into());
    }
    Ok(nodes)
}

/// Each node's cluster size and configuration, from its first start.
fn configs(nodes: &[Vec<Line>]) -> Result<(usize, Vec<TracedConfig>), String> {
    let mut servers = None;
    let mut configs = Vec::new();
    for (i, lines) in nodes.iter().enumerate() {
        let Some(TraceEvent::Start {
            servers: n, config, ..
        }) = lines.first().map(|l| &l.event)
        else {
            return Err(format!(
                "no trace of node {i} (every node of the run is needed)"
            ));
        };
        if servers.is_some_and(|s| s != *n) {
            return Err(format!(
                "node {i} says the cluster has {n} servers, others differ"
            ));
        }
        servers = Some(*n);
        configs.push(config.clone());
    }
    let n = servers.unwrap_or(0);
    if n != nodes.len() || !(1..=7).contains(&n) {
        return Err(format!(
            "the cluster has {n} servers but nodes 0..{} are traced (1 to 7 servers, every node)",
            nodes.len()
        ));
    }
    Ok((n, configs))
}

/// The model a run is replayed on: its servers with their nodes' configurations, and a network
/// that reorders and loses. Its bounds only limit which actions a search enumerates; the replay
/// takes the traced events directly, so a real run's terms and logs may pass them.
fn model_for(n: usize, configs: &[TracedConfig]) -> Result<RaftModel, String> {
    let text = format!(
        "servers = {n}\n[network]\nsemantics = \"unordered_nonduplicating\"\nlossy = true\n\
         [bounds]\nmax_term = 20\nmax_log_len = 20\n"
    );
    let cfg = spec::parse("trace", Path::new("trace"), &text).map_err(|e| e.to_string())?;
    let mut model = RaftModel::new(cfg);
    model.servers = configs
        .iter()
        .map(|c| {
            let mut s = ServerConfig::new(n);
            s.snapshot_after = c.snapshot_after;
            s.max_entries_per_append = c.max_entries_per_append;
            s.max_db_bytes = c.max_db_bytes;
            RaftServer::new(s)
        })
        .collect();
    Ok(model)
}

/// Why an event cannot be taken now.
enum Refusal {
    /// Not yet: its message has not been sent (another node's event may send it).
    Waiting,
    /// Never: the model cannot take it here.
    Impossible(String),
}

/// Takes one event on `state`: the state after it (unchanged for a no-op).
fn take(
    model: &RaftModel,
    state: &SystemState,
    event: &TraceEvent,
    started: bool,
) -> Result<SystemState, Refusal> {
    let n = model.n();
    match event {
        TraceEvent::Start { node, restored, .. } => {
            let mut next = state.clone();
            let i = *node as u8;
            let restart = [Action::Crash(i), Action::Restart(i)];
            // A first start on an empty data directory: `node --initial-cluster-state auto`
            // asks its peers whether it is new, as the model's deleted server does; by default it
            // recovers, as a wiped one does. A *restart* stays a restart: if it finds its state
            // gone, that was lost, and it is reported.
            let empty = |kind| {
                [
                    Action::Crash(i),
                    Action::Damage(i, kind),
                    Action::Restart(i),
                ]
            };
            let (ask, lost) = (empty(Damage::Delete), empty(Damage::Wipe));
            let actions: &[Action] = match (started, restored.maybe_new, restored.recovering) {
                (true, ..) => &restart, // The process died and came back from its disk.
                (false, true, _) => &ask,
                (false, false, true) => &lost,
                (false, false, false) => &[],
            };
            for action in actions {
                next = model.next_state(&next, action.clone()).unwrap_or(next);
            }
            let model_has = Restored::of(&next.servers[*node]);
            if model_has != *restored {
                return Err(Refusal::Impossible(format!(
                    "S{node} started from {restored:?}, but what it had saved is {model_has:?}: \
                     durable state lost or invented"
                )));
            }
            Ok(next)
        }
        TraceEvent::Timeout { node, timer } => {
            let timer = Timer::from(*timer);
            if state.timers[*node] & timer.bit() == 0 {
                return Err(Refusal::Impossible(format!(
                    "S{node}'s {timer:?} timer fired, but it was not armed"
                )));
            }
            let action = Action::Timeout(*node as u8, timer);
            Ok(model
                .next_state(state, action)
                .unwrap_or_else(|| state.clone()))
        }
        TraceEvent::Deliver { node, from, msg } if (*from as usize) < n => {
            let env = Envelope {
                src: *from as u8,
                dst: *node as u8,
                msg: Shared::new(msg.clone()),
            };
            if !state.network.contains(&env) {
                return Err(Refusal::Waiting);
            }
            let action = Action::Deliver(env);
            Ok(model
                .next_state(state, action)
                .unwrap_or_else(|| state.clone()))
        }
        TraceEvent::Deliver { node, from, msg } => match msg {
            Msg::ClientRequest(_) => Ok(model
                .external_request(state, *node, *from, msg.clone())
                .unwrap_or_else(|| state.clone())),
            other => Err(Refusal::Impossible(format!(
                "S{node} got {} from client session {from}, which only servers send",
                crate::model::describe_message(other)
            ))),
        },
    }
}

/// A delivery whose message is not in flight, accepted if it changes nothing (the model drops
/// moot messages from its network as soon as they are moot).
fn moot(model: &RaftModel, state: &SystemState, event: &TraceEvent) -> bool {
    let TraceEvent::Deliver { node, from, msg } = event else {
        return false;
    };
    let env = Envelope {
        src: *from as u8,
        dst: *node as u8,
        msg: Shared::new(msg.clone()),
    };
    model.next_state(state, Action::Deliver(env)).is_none()
}

/// A replay in progress: the model's state after the events taken, and where each node's
/// trace stands.
struct Replay<'a> {
    model: RaftModel,
    always: Vec<stateright::Property<RaftModel>>,
    nodes: &'a [Vec<Line>],
    state: SystemState,
    next: Vec<usize>,
    started: Vec<bool>,
    events: usize,
}

impl<'a> Replay<'a> {
    fn new(nodes: &'a [Vec<Line>], model: RaftModel) -> Self {
        let always = properties::all()
            .into_iter()
            .filter(|p| p.expectation == Expectation::Always && p.name != properties::LINEARIZABLE)
            .collect();
        let n = nodes.len();
        Replay {
            state: model.fresh_state(),
            model,
            always,
            nodes,
            next: vec![0; n],
            started: vec![false; n],
            events: 0,
        }
    }

    /// Node `i`'s next event, if it has one left.
    fn pending(&self, i: usize) -> Option<&'a Line> {
        self.nodes[i].get(self.next[i])
    }

    /// Moves past node `i`'s next event.
    fn advance(&mut self, i: usize) {
        let line = self.pending(i).expect("an event to pass");
        self.started[i] |= matches!(line.event, TraceEvent::Start { .. });
        self.next[i] += 1;
        self.events += 1;
    }

    /// Takes node `i`'s events while the model can: whether it took any, or the problem.
    fn run_node(&mut self, i: usize) -> Result<bool, Problem> {
        let mut took = false;
        while let Some(l) = self.pending(i) {
            match take(&self.model, &self.state, &l.event, self.started[i]) {
                Ok(after) => self.state = after,
                Err(Refusal::Waiting) => break,
                Err(Refusal::Impossible(why)) => return Err(problem(l, why)),
            }
            self.advance(i);
            took = true;
            if let Some(p) = self
                .always
                .iter()
                .find(|p| !(p.condition)(&self.model, &self.state))
            {
                let mut why = format!("{} violated", p.name);
                let state = std::slice::from_ref(&self.state);
                for line in explain::concerns(&self.model, p.name, state) {
                    why.push_str(": ");
                    why.push_str(&line);
                }
                return Err(problem(l, why));
            }
        }
        Ok(took)
    }

    /// When every node waits for a message: passes one that is moot, or says that none of the
    /// awaited messages was ever sent.
    fn unblock(&mut self) -> Result<(), Problem> {
        let waiting: Vec<(usize, &Line)> = (0..self.nodes.len())
            .filter_map(|i| self.pending(i).map(|l| (i, l)))
            .collect();
        if let Some(&(i, _)) = waiting
            .iter()
            .find(|(_, l)| moot(&self.model, &self.state, &l.event))
        {
            self.advance(i);
            return Ok(());
        }
        let waits: Vec<String> = waiting
            .iter()
            .filter_map(|(_, w)| match &w.event {
                TraceEvent::Deliver { node, from, msg } => Some(format!(
                    "S{node} ({}:{}) receives {} from S{from}",
                    w.file.display(),
                    w.line,
                    crate::model::describe_message(msg)
                )),
                _ => None,
            })
            .collect();
        let why = format!(
            "no node can go on: each next event receives a message its sender had not sent (or \
             that was delivered already) at any point the traces allow: {}",
            waits.join("; ")
        );
        let first = waiting.first().expect("some node has events left").1;
        Err(problem(first, why))
    }

    /// Whether every node's trace has been taken.
    fn done(&self) -> bool {
        (0..self.nodes.len()).all(|i| self.pending(i).is_none())
    }
}

/// A problem at trace line `l`.
fn problem(l: &Line, why: String) -> Problem {
    Problem {
        file: l.file.clone(),
        line: l.line,
        node: l.event.node(),
        why,
    }
}

/// Takes every node's events in turn while any can go on, unblocking moot deliveries: the
/// first problem, if any.
fn replay_all(replay: &mut Replay) -> Option<Problem> {
    while !replay.done() {
        let mut progressed = false;
        for i in 0..replay.nodes.len() {
            match replay.run_node(i) {
                Ok(took) => progressed |= took,
                Err(p) => return Some(p),
            }
        }
        if !progressed && !replay.done() {
            if let Err(p) = replay.unblock() {
                return Some(p);
            }
        }
    }
    None
}

/// Replays the traces of one run (every node's file) through the model: `Err` for bad input,
/// else a verdict (with the first problem, if any).
pub fn validate(paths: &[PathBuf]) -> Result<Verdict, String> {
    let nodes = load(paths)?;
    let (n, configs) = configs(&nodes)?;
    let mut replay = Replay::new(&nodes, model_for(n, &configs)?);
    let problem = replay_all(&mut replay);
    Ok(Verdict {
        nodes: n,
        events: replay.events,
        problem,
    })
}

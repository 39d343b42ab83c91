//! From a field failure to the checker (`sim --emit-model FILE`): a simulated run's protocol
//! events, as its nodes recorded them (the events `node --trace` writes), become the given
//! steps of a model file, so that `check FILE` replays the run through the model and searches
//! around where it ended.
//!
//! Each event becomes the model step that takes it: a timer, a delivery from a server, a
//! request from a client session (`session S → Si: Request#R(op)`, a step only given steps
//! have), and a restart (a crash, then the restart from storage). What the model cannot say is
//! left out and counted: deliveries that change nothing (the model drops such messages as
//! moot), timing, the simulated disk and network (loss is the model's lossy network: messages
//! the run lost stay in flight, where the search may deliver or lose them), and the client
//! sessions' histories (their requests are given; linearizability is the simulator's check).
//! An event the model cannot take ends the given steps there, and the file says why.

use crate::model::shared::Shared;
use crate::model::{spec, Action, Envelope, RaftModel, SystemState};
use crate::protocol::trace::{Restored, TraceEvent};
use crate::protocol::types::{Msg, Timer};
use crate::sim::cluster::SimConfig;
use stateright::Model;
use std::path::Path;
use std::sync::Arc;

/// What `--emit-model` wrote, and what it left out.
#[derive(Clone, Debug)]
pub struct Emitted {
    /// The model file's text.
    pub text: String,
    /// Given steps written.
    pub steps: usize,
    /// Events read.
    pub events: usize,
    /// Deliveries left out because they change nothing in the model.
    pub moot: usize,
    /// Why the given steps end before the last event, if they do.
    pub stopped: Option<String>,
}

/// Turns a run's `events` (in the run's order) into a model file. `title` heads the file (the
/// scenario and seed, and the failure if any).
pub fn model_file(cfg: &SimConfig, title: &str, events: &[TraceEvent]) -> Result<Emitted, String> {
    let restarts = events
        .iter()
        .filter(|e| matches!(e, TraceEvent::Start { .. }))
        .count()
        .saturating_sub(cfg.servers);
    let max_crashes = u8::try_from(restarts + 1).map_err(|_| {
        format!("the run restarted servers {restarts} times; a model allows at most 254 crashes")
    })?;
    let settings = |max_term: u64, max_log_len: u64| {
        let mut text = format!("servers = {}\n", cfg.servers);
        if let Some(bug) = cfg.bug {
            text.push_str(&format!("bug = {}\n", toml_string(&bug_name(bug)?)?));
        }
        text.push_str(
            "\n[network]\nsemantics = \"unordered_nonduplicating\"\nlossy = true\n\n[faults]\n",
        );
        text.push_str(&format!("max_crashes = {max_crashes}\n\n[replication]\n"));
        text.push_str(&format!(
            "max_entries_per_append = {}\n\n",
            crate::net::wire::MAX_ENTRIES_PER_APPEND
        ));
        if let Some(after) = cfg.snapshot_after {
            text.push_str(&format!("[snapshot]\nafter = {after}\n\n"));
        }
        if let Some(max) = cfg.max_sessions {
            text.push_str(&format!("[sessions]\nmax = {max}\n\n"));
        }
        text.push_str(&format!(
            "[bounds]\nmax_term = {max_term}\nmax_log_len = {max_log_len}\nmax_depth = 6\n"
        ));
        Ok::<String, String>(text)
    };
    // Replayed with bounds no run reaches, then written with the run's own plus a little room.
    let wide = spec::parse(
        "emitted",
        Path::new("emitted"),
        &settings(1 << 40, 1 << 40)?,
    )
    .map_err(|e| e.to_string())?;
    let model = RaftModel::try_new(wide).map_err(|(f, e)| format!("{f}: {e}"))?;
    let replay = replay(&model, events);
    let mut text = format!("description = {}\n", toml_string(title)?);
    text.push_str(&header(&replay, events.len()));
    text.push_str(&settings(replay.max_term + 1, replay.max_log + 2)?);
    text.push_str("\n[given]\nsteps = [\n");
    for step in &replay.steps {
        text.push_str(&format!("  {},\n", toml_string(step)?));
    }
    text.push_str("]\n");
    let kept = replay.recent_in_flight(&model);
    if kept.len() < replay.state.network.len() {
        text.push_str(&format!(
            "# Messages in flight at the end that were sent more than {RECENT} steps before it are\n\
             # lost here ({} of {}): the run most likely lost them or they are long superseded,\n\
             # and each would multiply the states to search.\nkeep_in_flight = [\n",
            replay.state.network.len() - kept.len(),
            replay.state.network.len()
        ));
        for k in &kept {
            text.push_str(&format!("  {},\n", toml_string(k)?));
        }
        text.push_str("]\n");
    }
    check_round_trip(&text, &replay.state)?;
    Ok(Emitted {
        text,
        steps: replay.steps.len(),
        events: events.len(),
        moot: replay.moot,
        stopped: replay.stopped,
    })
}

/// The comment that opens the file: where it came from and what it leaves out.
fn header(replay: &Replay, events: usize) -> String {
    let mut h = format!(
        "# Written by `sim --emit-model`: {} given steps from the run's {events} protocol events.\n\
         # Left out: {} deliveries that change nothing in the model (it drops moot messages),\n\
         # timing, the simulated disk, and the client sessions' histories (their requests are\n\
         # given steps; linearizability is the simulator's check). Messages the run lost stay in\n\
         # flight: the search (lossy network) may deliver or lose them. `check` replays the\n\
         # steps, then searches 6 steps around where the run ended (bounds.max_depth; a long\n\
         # run's states are large: add --max-states 100000); delete steps from the end to let\n\
         # it look for other ways there.\n",
        replay.steps.len(),
        replay.moot
    );
    if let Some(why) = &replay.stopped {
        h.push_str(&format!("# The given steps stop early: {why}\n"));
    }
    h.push('\n');
    h
}

/// Messages still in flight at the end that were sent within this many given steps of it are
/// kept for the search; older ones are lost in the given steps.
const RECENT: usize = 30;

/// A message in flight, as a map key: its link and its fingerprint.
type Key = (u8, u8, u64);

fn key(e: &Envelope) -> Key {
    (e.src, e.dst, e.msg.hash_code())
}

/// A replay of a run's events through the model.
struct Replay {
    state: SystemState,
    /// The given step at which each message now in flight was sent, by its [`key`].
    sent_at: std::collections::HashMap<Key, usize>,
    steps: Vec<String>,
    moot: usize,
    stopped: Option<String>,
    max_term: u64,
    max_log: u64,
}

/// Takes each event as the model step it is, until one cannot be taken.
fn replay(model: &RaftModel, events: &[TraceEvent]) -> Replay {
    let mut r = Replay {
        state: model.fresh_state(),
        sent_at: std::collections::HashMap::new(),
        steps: Vec::new(),
        moot: 0,
        stopped: None,
        max_term: 0,
        max_log: 0,
    };
    let mut started = vec![false; model.n()];
    for (k, event) in events.iter().enumerate() {
        let actions = match to_actions(model, &r.state, event, &mut started) {
            Ok(actions) => actions,
            Err(why) => {
                r.stopped = Some(format!("event {} of the run: {why}", k + 1));
                break;
            }
        };
        for action in actions {
            match model.next_state(&r.state, action.clone()) {
                Some(next) => {
                    r.steps.push(model.describe(&action));
                    let now: std::collections::HashSet<Key> =
                        next.network.iter().map(key).collect();
                    r.sent_at.retain(|k, _| now.contains(k));
                    for k in now {
                        r.sent_at.entry(k).or_insert(r.steps.len());
                    }
                    for s in &next.servers {
                        r.max_term = r.max_term.max(s.term);
                        r.max_log = r.max_log.max(s.log.last_index());
                    }
                    r.state = next;
                }
                None => r.moot += 1,
            }
        }
        if let TraceEvent::Start { node, restored, .. } = event {
            let has = Restored::of(&r.state.servers[*node]);
            if has != *restored {
                r.stopped = Some(format!(
                    "event {}: S{node} restarted from {restored:?}, but the model's storage holds \
                     {has:?} (the simulated disk lost or tore a write)",
                    k + 1
                ));
                break;
            }
        }
    }
    r
}

impl Replay {
    /// How `model` words the messages in flight at the end that were sent within [`RECENT`]
    /// steps of it.
    fn recent_in_flight(&self, model: &RaftModel) -> Vec<String> {
        let end = self.steps.len();
        let mut kept: Vec<String> = self
            .state
            .network
            .iter()
            .filter(|e| {
                self.sent_at
                    .get(&key(e))
                    .is_some_and(|&at| at + RECENT >= end)
            })
            .map(|e| model.describe(&Action::Deliver(e.clone())))
            .collect();
        kept.dedup();
        kept
    }
}

/// The model actions one event is: none for a node's first start, a crash and a restart for a
/// later one.
fn to_actions(
    model: &RaftModel,
    state: &SystemState,
    event: &TraceEvent,
    started: &mut [bool],
) -> Result<Vec<Action>, String> {
    let n = model.n();
    Ok(match event {
        TraceEvent::Start { node, .. } if !std::mem::replace(&mut started[*node], true) => {
            Vec::new()
        }
        TraceEvent::Start { node, .. } => {
            let i = *node as u8;
            vec![Action::Crash(i), Action::Restart(i)]
        }
        TraceEvent::Timeout { node, timer } => {
            let timer = Timer::from(*timer);
            if state.timers[*node] & timer.bit() == 0 {
                return Err(format!(
                    "S{node}'s {timer:?} timer fired, but it was not armed"
                ));
            }
            vec![Action::Timeout(*node as u8, timer)]
        }
        TraceEvent::Deliver { node, from, msg } if (*from as usize) < n => {
            let env = Envelope {
                src: *from as u8,
                dst: *node as u8,
                msg: Shared::new(msg.clone()),
            };
            let action = Action::Deliver(env.clone());
            if !state.network.contains(&env) && model.next_state(state, action.clone()).is_some() {
                return Err(format!(
                    "S{node} got {} from S{from} a second time; the model delivers a message once",
                    crate::model::describe_message(msg)
                ));
            }
            vec![action]
        }
        TraceEvent::Deliver { node, from, msg } => match msg {
            Msg::ClientRequest(c) if c.client == *from => {
                vec![Action::Request(*node as u8, Arc::new(c.clone()))]
            }
            other => {
                return Err(format!(
                    "S{node} got {} from client session {from}",
                    crate::model::describe_message(other)
                ))
            }
        },
    })
}

/// Loads the written file as `check` will, and compares where its given steps lead with where
/// the replay ended: a step two actions would answer to (entries print alike) would differ.
fn check_round_trip(text: &str, expected: &SystemState) -> Result<(), String> {
    let cfg = spec::parse("emitted", Path::new("emitted"), text)
        .map_err(|e| format!("the written model does not load: {e}"))?;
    let model = RaftModel::try_new(cfg).map_err(|(f, e)| format!("{f}: {e}"))?;
    let Some(start) = model.init_states().into_iter().next() else {
        return Err("the written model has no start state".into());
    };
    // The given steps lead to the run's end; then the older messages in flight are lost.
    let kept_all = start.network.iter().all(|e| expected.network.contains(e));
    if start.servers != expected.servers || !kept_all {
        return Err(
            "the written given steps lead elsewhere than the run (two messages print \
                    alike): please report this"
                .into(),
        );
    }
    Ok(())
}

/// A bug's model-file name (`vote_not_persisted`).
pub fn bug_name(bug: crate::protocol::server::Bug) -> Result<String, String> {
    match serde_json::to_value(bug) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        other => Err(format!("cannot name the bug {bug:?}: {other:?}")),
    }
}

/// A TOML basic string.
fn toml_string(s: &str) -> Result<String, String> {
    serde_json::to_string(s).map_err(|e| e.to_string())
}

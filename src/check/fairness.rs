//! The fairness of the Raft model: what each action is to a liveness check. Declared per model
//! in `[fairness]` (every part on by default):
//!
//! - delivery on each link (src → dst) is a weakly fair class;
//! - each actor's timers (election, heartbeat, client retry) are weakly fair classes, each
//!   server's restart too;
//! - message loss and crashes are faults, and so is an election timeout at a follower that knows
//!   a live leader of its own term (Raft's timing assumption: heartbeats arrive well within the
//!   election timeout), when `stable_leader` is on: they happen only finitely often;
//! - a workload proposal is the environment's choice: never owed.

use crate::check::liveness::Fairness;
use crate::model::{Action, RaftModel, SystemState};
use crate::protocol::types::Timer;
use crate::protocol::view::ServerView;

/// Timers per actor that get a class of their own.
const TIMERS: usize = 3;

/// How many fairness classes the model has: links, then timers, then restarts.
pub fn classes(model: &RaftModel) -> usize {
    let actors = model.n() + model.clients.len();
    actors * actors + actors * TIMERS + model.n()
}

/// How an action taken at `state` counts for fairness.
pub fn classify(model: &RaftModel, state: &SystemState, action: &Action) -> Fairness {
    let fair = &model.cfg.file.fairness;
    let actors = model.n() + model.clients.len();
    let class = |c: usize| Fairness::Fair(c as u16);
    match action {
        Action::Deliver(e) if fair.delivery => class(e.src as usize * actors + e.dst as usize),
        Action::Timeout(i, Timer::Election)
            if fair.stable_leader && follows_live_leader(state, *i) =>
        {
            Fairness::Fault
        }
        Action::Timeout(i, timer) if fair.timers => {
            class(actors * actors + *i as usize * TIMERS + timer_slot(*timer))
        }
        Action::Restart(i) if fair.restarts => {
            class(actors * actors + actors * TIMERS + *i as usize)
        }
        Action::Drop(_) | Action::Crash(_) | Action::Damage(..) => Fairness::Fault,
        _ => Fairness::Unfair,
    }
}

fn timer_slot(timer: Timer) -> usize {
    match timer {
        Timer::Election => 0,
        Timer::Heartbeat => 1,
        Timer::ClientRetry => 2,
    }
}

/// Whether server `i` is a follower that knows the leader of its term, and that leader is up
/// and leads it: its heartbeats keep `i`'s election timer from expiring.
fn follows_live_leader(state: &SystemState, i: u8) -> bool {
    let s = &state.servers[i as usize];
    if s.role_name() != "follower" {
        return false;
    }
    s.leader().is_some_and(|l| {
        let l = l as usize;
        l < state.servers.len()
            && !state.down[l]
            && state.servers[l].is_leader()
            && state.servers[l].term() == s.term()
    })
}

//! Given steps: a prefix scripted in a model file (`[given]`), replayed from a fresh cluster
//! before a search starts, as etcd raft's scenario tests script theirs. Each step is written as
//! a trace prints it, so a trace can be pasted into a model file.

use super::{Action, Envelope, RaftModel, SystemState};
use stateright::Model;

impl RaftModel {
    /// Takes each given step, written as `describe` prints it, from the fresh cluster on. A step
    /// must be enabled where it is written and must stay within the model's bounds.
    pub(super) fn replay_given(&self) -> Result<(SystemState, Vec<Action>), (String, String)> {
        let given = &self.cfg.file.given;
        let mut state = self.fresh_state();
        let mut taken = Vec::new();
        for (i, step) in given.steps.iter().enumerate() {
            let at = |e: String| (format!("given.steps[{i}]"), e);
            let wanted = normalize_step(step);
            let mut enabled = Vec::new();
            self.actions(&state, &mut enabled);
            // A request from a session outside the model (`sim --emit-model`) is never enabled
            // by the model itself: it is read from its words.
            if let Some((i, command)) = super::render::parse_request_step(&wanted) {
                if usize::from(i) < self.n() && command.client >= 64 {
                    enabled.push(Action::Request(i, std::sync::Arc::new(command)));
                }
            }
            // A prefix may lose messages even where the search does not: Raft must survive
            // loss, so the run stays a real one (over a lossy network), and the search starts
            // without messages the scenario has no use for.
            if !self.cfg.file.network.lossy {
                enabled.extend(state.network.iter().map(|e| Action::Drop(e.clone())));
            }
            let Some(action) = enabled
                .iter()
                .find(|a| normalize_step(&self.describe(a)) == wanted)
            else {
                let listed: Vec<String> = enabled
                    .iter()
                    .map(|a| format!("\n  {}", self.describe(a)))
                    .collect();
                return Err(at(format!(
                    "'{step}' is not enabled after the steps before it; enabled are:{}",
                    listed.concat()
                )));
            };
            let Some(next) = self.next_state(&state, action.clone()) else {
                return Err(at(format!("'{step}' changes nothing")));
            };
            if !self.within_boundary(&next) {
                return Err(at(format!("'{step}' leaves the model's bounds")));
            }
            state = next;
            taken.push(action.clone());
        }
        if let Some(keep) = &given.keep_in_flight {
            let mut kept = vec![false; keep.len()];
            for env in state.network.clone() {
                let delivery = self.delivery(&env);
                match keep.iter().position(|k| normalize_step(k) == delivery) {
                    Some(k) => kept[k] = true,
                    None => {
                        let drop = Action::Drop(env);
                        state = self
                            .next_state(&state, drop.clone())
                            .expect("a drop changes");
                        taken.push(drop);
                    }
                }
            }
            if let Some(k) = kept.iter().position(|&kept| !kept) {
                // A kept reply may be gone already because its server would ignore it: so
                // for the stale acknowledgement of `bugs/accept_stale_replies` checked with
                // correct Raft. It must then be in flight where moot replies are kept.
                if !self.discard_moot || !self.in_flight_if_moot_kept(&keep[k])? {
                    return Err((
                        format!("given.keep_in_flight[{k}]"),
                        format!("'{}' is not in flight after the given steps", keep[k]),
                    ));
                }
            }
        }
        Ok((state, taken))
    }

    pub(super) fn delivery(&self, env: &Envelope) -> String {
        normalize_step(&self.describe(&Action::Deliver(env.clone())))
    }

    /// Whether `message` is in flight after the given steps in this model, were moot replies
    /// kept in the network.
    pub(super) fn in_flight_if_moot_kept(&self, message: &str) -> Result<bool, (String, String)> {
        let mut keeping = self.clone();
        keeping.discard_moot = false;
        keeping.cfg.file.given.keep_in_flight = None;
        let (state, _) = keeping.replay_given()?;
        let wanted = normalize_step(message);
        Ok(state.network.iter().any(|e| keeping.delivery(e) == wanted))
    }
}

/// A step as written in a model file: `->` may stand for `→`, and spacing does not matter.
fn normalize_step(step: &str) -> String {
    step.replace("->", "→")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

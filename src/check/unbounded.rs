//! Warnings, before a search starts, about models whose state space has no end, and which bound
//! to set.
//!
//! Which settings bound what in this model: terms are bounded by `bounds.max_term` and logs by
//! `bounds.max_log_len` (states past them are outside the model), crashes by `faults.max_crashes`,
//! proposals and client operations by their lists, and so elections and every message a step
//! answers with. Messages in flight are bounded only by `bounds.max_messages`, or by the network
//! itself when it duplicates: it is then a set over finitely many distinct messages. A network
//! that keeps every copy (`unordered_nonduplicating`, a multiset, or `ordered`, FIFO queues)
//! grows without end when something sends again and again regardless of what it hears: a leader's
//! periodic heartbeats (with two servers or more), or a client retrying an operation not yet
//! answered. Every such state is within the other bounds, so a search never runs out of new
//! states: BFS never completes and DFS dives deeper and deeper, its states growing with the depth,
//! until a time or memory limit stops it. A depth limit (`bounds.max_depth`) bounds the search.

use crate::model::spec::{ModelConfig, Semantics};
use crate::protocol::server::Bug;

/// Why the model's state space may have no end, and which bound to set: one line per reason
/// (none for a bounded model). `check` prints them on stderr before it runs any checker. A model
/// with `bounds.max_depth` gets none (the search is bounded); neither should a run with `--depth`.
pub fn warnings(cfg: &ModelConfig) -> Vec<String> {
    let file = &cfg.file;
    if file.bounds.max_depth.is_some() || file.bounds.max_messages.is_some() {
        return Vec::new();
    }
    let network = match file.network.semantics {
        Semantics::UnorderedDuplicating => return Vec::new(),
        Semantics::UnorderedNonduplicating => "\"unordered_nonduplicating\": a multiset",
        Semantics::Ordered => "\"ordered\": FIFO queues",
    };
    let heartbeats = file.timing.heartbeats && file.servers > 1;
    let retries = !cfg.client_ops.is_empty() && file.bug != Some(Bug::ClientNoRetry);
    let senders = match (heartbeats, retries) {
        (false, false) => return Vec::new(),
        (true, false) => "leaders send heartbeats",
        (false, true) => "clients retry",
        (true, true) => "leaders send heartbeats and clients retry",
    };
    vec![format!(
        "model {}: {senders} without end, the network keeps every copy (semantics = {network}) \
         and there is no bounds.max_messages: messages in flight pile up, so the state space is \
         unbounded (BFS cannot complete; DFS dives until a time or memory limit stops it); set \
         bounds.max_messages (e.g. 4)",
        cfg.name
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::spec::parse;
    use std::path::Path;

    fn warnings_of(text: &str) -> Vec<String> {
        warnings(&parse("t", Path::new("models/t.toml"), text).unwrap())
    }

    #[test]
    fn warns_when_copies_pile_up_without_a_cap_on_messages() {
        let base = "[bounds]\nmax_term = 2\nmax_log_len = 1\n";
        for semantics in ["ordered", "unordered_nonduplicating"] {
            let w = warnings_of(&format!("[network]\nsemantics = \"{semantics}\"\n{base}"));
            assert_eq!(w.len(), 1, "{semantics}: {w:?}");
            assert!(w[0].starts_with("model t: "), "{}", w[0]);
            assert!(w[0].contains(semantics), "{}", w[0]);
            assert!(w[0].contains("heartbeats"), "{}", w[0]);
            assert!(
                w[0].contains("set bounds.max_messages (e.g. 4)"),
                "{}",
                w[0]
            );
        }
        // Clients retry even without heartbeats.
        let w = warnings_of(&format!(
            "[[client]]\nops = [\"get x\"]\n[network]\nsemantics = \"ordered\"\n\
             [timing]\nheartbeats = false\n{base}"
        ));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("clients retry"), "{}", w[0]);
    }

    #[test]
    fn bounded_models_get_no_warning() {
        let base = "max_term = 2\nmax_log_len = 1\n";
        let ordered = "[network]\nsemantics = \"ordered\"\n";
        for text in [
            // A duplicating network is a set of finitely many distinct messages.
            format!("[[client]]\nops = [\"get x\"]\n[bounds]\n{base}"),
            // A cap on messages in flight, or on the depth.
            format!("{ordered}[bounds]\n{base}max_messages = 4\n"),
            format!("{ordered}[bounds]\n{base}max_depth = 20\n"),
            // Nothing sends again by itself (Figure 8's settings).
            format!("{ordered}[timing]\nheartbeats = false\n[bounds]\n{base}"),
        ] {
            assert_eq!(warnings_of(&text), Vec::<String>::new(), "{text}");
        }
    }

    #[test]
    fn the_shipped_models_that_search_to_completion_get_none() {
        for name in [
            "default",
            "election",
            "five",
            "figure8",
            "crash",
            "snapshot",
            "lossy_crash",
        ] {
            let cfg = crate::check::load::load(name).unwrap();
            assert_eq!(warnings(&cfg), Vec::<String>::new(), "{name}");
        }
    }
}

//! Vacuity: a property that holds only because the model leaves nothing that could break it is
//! reported `vacuous`, not `holds`. The rule reads the model's configuration, never the search:
//!
//! - no entry can ever be appended when `bounds.max_log_len = 0`, or when the model has no
//!   client operation and no `[workload] proposals`. Every property about logs, commits and
//!   applying is then vacuous: Leader Append-Only, Log Matching, Leader Completeness, electable
//!   logs hold every committed entry, State Machine Safety, commit index never decreases,
//!   applied <= commit <= last log index, and the two liveness properties about committed and
//!   accepted entries;
//! - no client operation can complete when the model has no client operation (no `[[client]]`,
//!   or only clients with no `ops`), or when no entry can be appended (an operation completes
//!   only once its entry is committed). The client properties are then vacuous: client
//!   operations are linearizable, every client operation eventually completes;
//! - no storage can be damaged when `faults.max_damage = 0`: every damaged server is eventually
//!   repaired is then vacuous.
//!
//! Only `holds` becomes `vacuous`: `violated` stays violated (a real counterexample is never
//! hidden), `unknown` stays unknown, and the `sometimes` properties, which are what shows a
//! model is not vacuous, are left as they are. Election Safety and "a leader is eventually
//! elected" are never vacuous: every model holds elections.

use crate::check::properties as p;
use crate::check::report::{PropertyReport, Status};
use crate::model::spec::ModelConfig;

/// Properties about logs, commits and applying: vacuous when no entry can be appended.
const LOG_PROPERTIES: [&str; 9] = [
    p::LEADER_APPEND_ONLY_NAME,
    p::LOG_MATCHING,
    p::LEADER_COMPLETENESS,
    p::ELECTABLE_LOGS_HOLD_COMMITTED,
    p::STATE_MACHINE_SAFETY_NAME,
    p::COMMIT_NEVER_DECREASES,
    p::APPLIED_LE_COMMIT,
    p::EVENTUALLY_APPLIED,
    p::EVENTUALLY_COMMITTED,
];

/// Properties about client operations: vacuous when no client operation can complete.
const CLIENT_PROPERTIES: [&str; 2] = [p::LINEARIZABLE, p::EVENTUALLY_CLIENTS_DONE];

/// Whether the model's configuration leaves nothing that could break `property` (see the
/// module's rule): if it holds, it holds vacuously.
pub fn is_vacuous(cfg: &ModelConfig, property: &str) -> bool {
    let no_client_op = cfg.client_ops.iter().all(|ops| ops.is_empty());
    let no_entry = cfg.file.bounds.max_log_len == 0 || (no_client_op && cfg.proposals.is_empty());
    (no_entry && LOG_PROPERTIES.contains(&property))
        || ((no_client_op || no_entry) && CLIENT_PROPERTIES.contains(&property))
        || (cfg.file.faults.max_damage == 0 && property == p::EVENTUALLY_REPAIRED)
}

/// Turns each `holds` verdict of a property vacuous in `cfg` into `vacuous`; every other
/// verdict is left as it is.
pub fn mark(cfg: &ModelConfig, reports: &mut [PropertyReport]) {
    for r in reports {
        if r.status == Status::Holds && is_vacuous(cfg, &r.name) {
            r.status = Status::Vacuous;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::spec::parse;
    use std::path::Path;

    fn model(text: &str) -> ModelConfig {
        parse("t", Path::new("models/t.toml"), text).unwrap()
    }

    const ALWAYS_CHECKED: [&str; 2] = [p::ELECTION_SAFETY, p::EVENTUALLY_LEADER];

    #[test]
    fn elections_only_make_log_and_client_properties_vacuous() {
        let m = model("[bounds]\nmax_term = 2\nmax_log_len = 0\n");
        for name in LOG_PROPERTIES.iter().chain(&CLIENT_PROPERTIES) {
            assert!(is_vacuous(&m, name), "{name}");
        }
        for name in ALWAYS_CHECKED {
            assert!(!is_vacuous(&m, name), "{name}");
        }
    }

    #[test]
    fn proposals_without_a_client_make_only_client_properties_vacuous() {
        let m = model(
            "[workload]\nproposals = [\"put x 1\"]\n[bounds]\nmax_term = 2\nmax_log_len = 1\n",
        );
        for name in CLIENT_PROPERTIES {
            assert!(is_vacuous(&m, name), "{name}");
        }
        for name in LOG_PROPERTIES.iter().chain(&ALWAYS_CHECKED) {
            assert!(!is_vacuous(&m, name), "{name}");
        }
    }

    #[test]
    fn a_client_makes_nothing_vacuous_unless_no_entry_fits() {
        let client = "[[client]]\nops = [\"put x 1\"]\n";
        let m = model(&format!(
            "{client}[bounds]\nmax_term = 1\nmax_log_len = 1\n"
        ));
        for name in p::names() {
            let only_damage = name == p::EVENTUALLY_REPAIRED;
            assert_eq!(is_vacuous(&m, name), only_damage, "{name}");
        }
        let m = model(&format!(
            "{client}[faults]\nmax_damage = 1\n[bounds]\nmax_term = 1\nmax_log_len = 1\n"
        ));
        assert!(!is_vacuous(&m, p::EVENTUALLY_REPAIRED));
        let m = model(&format!(
            "{client}[bounds]\nmax_term = 1\nmax_log_len = 0\n"
        ));
        assert!(is_vacuous(&m, p::LINEARIZABLE));
        assert!(is_vacuous(&m, p::LOG_MATCHING));
        let m = model("[[client]]\nops = []\n[bounds]\nmax_term = 1\nmax_log_len = 1\n");
        assert!(is_vacuous(&m, p::LINEARIZABLE));
        assert!(is_vacuous(&m, p::STATE_MACHINE_SAFETY_NAME));
    }

    #[test]
    fn only_holds_becomes_vacuous() {
        let m = model("[bounds]\nmax_term = 2\nmax_log_len = 0\n");
        let report = |name: &str, status| PropertyReport {
            name: name.into(),
            kind: "always",
            status,
            trace: None,
            loop_from: None,
            walk: None,
            explanation: Vec::new(),
        };
        let mut reports = vec![
            report(p::LINEARIZABLE, Status::Holds),
            report(p::LOG_MATCHING, Status::Violated),
            report(p::LEADER_COMPLETENESS, Status::Unknown),
            report(p::ELECTION_SAFETY, Status::Holds),
        ];
        mark(&m, &mut reports);
        let got: Vec<_> = reports.iter().map(|r| r.status).collect();
        let want = [
            Status::Vacuous,
            Status::Violated,
            Status::Unknown,
            Status::Holds,
        ];
        assert_eq!(got, want);
    }
}

//! The checker: the properties of the paper over the model's states, symmetry reduction, the
//! crate's own BFS, running a checker and reporting what it found, and suites that pin verdicts.
//!
//! - [`properties`]: Figure 3's properties, invariants, linearizability, reachability, liveness.
//! - [`symmetry`]: one state per renaming of server ids.
//! - [`bfs`]: a level-synchronous parallel BFS that returns shortest traces.
//! - [`coverage`]: what a search exercised (elections won, crashes, snapshots…).
//! - [`dfs`]: a single-threaded DFS that honours the same limits.
//! - [`load`]: finding and loading model files.
//! - [`runner`]: runs a checker on a model and collects a [`runner::Report`].
//! - [`report`]: traces and reports as text and JSON.
//! - [`explorer`]: the state-space explorer (`check --explore`): a page that agrees with `check`.
//! - [`html`]: traces as sequence diagrams (SVG) and reports as HTML pages.
//! - [`suite`]: check suites that pin verdicts, state counts and trace lengths.
//! - [`vacuity`]: which properties a model's configuration leaves nothing to break (`vacuous`).
//! - [`unbounded`]: warnings about models whose state space has no end.
//! - [`validate`]: real runs (`node --trace`) replayed through the model (`--validate-trace`).

pub mod bfs;
pub mod coverage;
pub mod dfs;
pub mod explain;
pub mod explorer;
pub mod fairness;
pub mod html;
pub mod liveness;
pub mod load;
pub mod properties;
pub mod report;
pub mod runner;
pub mod suite;
pub mod swarm;
pub mod symmetry;
pub mod unbounded;
pub mod vacuity;
pub mod validate;

use crate::model::spec::ModelConfig;
use crate::model::RaftModel;

/// The model of `cfg` with every property this crate checks: what `check`, the explorer and
/// suites run.
pub fn model_with_properties(cfg: ModelConfig) -> RaftModel {
    RaftModel::new(cfg).with_properties(properties::all())
}

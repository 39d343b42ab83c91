//! Raft, written once as stateright actors, model-checked, and run for real over UDP.
//!
//! Four layers, one folder each; `tests/layers.rs` enforces the arrows between them:
//!
//! - [`protocol`]: the Raft server and key/value client actors (Figure 2, Figure 13), pure:
//!   no clock, randomness or I/O. Imports nothing else of the crate.
//! - [`model`]: the state space over the actors: network semantics, crashes, the ghost history,
//!   model files and given steps. Imports `protocol` only; it is handed its properties.
//! - [`check`]: properties, symmetry, the BFS, running a checker, reports, suites.
//!   Imports `model` and `protocol`.
//! - [`net`]: the real node over UDP (driver, wire, storage, client, local clusters).
//!   Imports `protocol` only: it cannot reach the checker, so what runs is the actor alone.
//! - [`sim`]: the real node's loop over a virtual clock, network and disk, checked with the
//!   model's properties and a linearizability check. Imports `net`, `model`, `check`, `protocol`.

#![warn(missing_docs)]

pub mod check;
pub mod model;
pub mod net;
pub mod protocol;
pub mod sim;

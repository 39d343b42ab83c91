//! Raft, written once as stateright actors, model-checked, and run for real over UDP.
//!
//! - [`server`]: the Raft server actor (Figure 2, Figure 13), deterministic and I/O-free.
//! - [`client`]: the key/value client actor.
//! - [`model`]: servers + clients + network + faults as a stateright `Model`.
//! - [`properties`]: the paper's safety properties, linearizability, reachability, liveness.
//! - [`bfs`]: a level-synchronous parallel BFS that returns shortest traces.
//! - [`config`], [`runner`], [`suite`]: model files, running a checker, check suites.

pub mod bfs;
pub mod client;
pub mod config;
pub mod log;
pub mod model;
pub mod net;
pub mod properties;
pub mod runner;
pub mod server;
pub mod shared;
pub mod suite;
pub mod symmetry;
pub mod types;

//! Deterministic simulation of the real node (issue #12): the `node` binary's loop (driver,
//! batching, coalescing, snapshot throttling, group commit, fragmentation, storage recovery)
//! runs unchanged over a virtual clock, network and disk, many nodes and clients in one
//! process and one thread, every random choice drawn from one seed. Each run is checked against
//! the model checker's own `always` properties and a linearizability check of the client
//! history; scenarios modelled on MIT 6.5840's Lab 3 and Lab 4 tests drive the faults.
//!
//! - [`world`]: the virtual clock, network endpoint and disk (fsync, crash, tear, wipe).
//! - [`network`]: per-link delays, loss, duplication, long delays, partitions.
//! - [`cluster`]: the event queue, servers, clients and faults of one run.
//! - [`checks`]: the model's properties on the run's cluster states.
//! - [`linearizability`]: the per-key Wing–Gong/Porcupine check of the client history.
//! - [`lab`]: 6.5840's test helpers (one leader, agreement on a command).
//! - [`scenarios`]: the named scenarios, and running one on a seed.
//! - [`picture`]: a run's last steps as a sequence diagram (`sim --svg`).
//! - [`emit`]: a run's protocol events as a model file's given steps (`sim --emit-model`).

pub mod checks;
pub mod cluster;
pub mod emit;
pub mod lab;
pub mod linearizability;
pub mod network;
pub mod picture;
pub mod scenarios;
pub mod world;

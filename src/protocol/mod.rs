//! The protocol: Raft as deterministic stateright actors, the only code that decides anything.
//! The checker explores it and the UDP node runs it, unchanged. No clock, no randomness, no I/O:
//! timers and saves are requested through `Out`, and the caller (model or node) carries them out.
//!
//! - [`types`]: messages, log entries, client operations, the key/value state machine.
//! - [`log`]: the log with logical indices over a compacted prefix.
//! - [`bug`]: the classic mistakes that can be injected, one rule at a time.
//! - [`server`]: the Raft server actor, split by concern (roles, election, replication,
//!   snapshots, the client service).
//! - [`client`]: the key/value client actor.
//! - [`view`]: what the model and checker may read of a server, and how to rename its ids.
//! - [`trace`]: what `node --trace` records of the actor, for `check --validate-trace`.

pub mod bug;
pub mod client;
pub mod entries;
pub mod log;
pub mod server;
pub mod trace;
pub mod types;
pub mod view;

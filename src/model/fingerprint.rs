//! Fingerprints of states and of the values they share: one fixed-seed hash, the same on every
//! run and machine, so that state counts can be pinned and traces reproduced.

use std::hash::{Hash, Hasher};

/// A 64-bit hash of a state or value: what the BFS keeps of each state it has visited.
pub type Fingerprint = u64;

/// A fixed-seed foldhash (quality variant): fast, well mixed, and the same on every run and
/// machine, so traces are reproducible and state counts can be pinned.
pub fn fingerprint<T: Hash>(value: &T) -> Fingerprint {
    let mut h = hasher();
    value.hash(&mut h);
    h.finish()
}

/// The hasher behind `fingerprint`, for hashing several values into one fingerprint.
pub fn hasher() -> impl Hasher {
    use std::hash::BuildHasher;
    foldhash::quality::FixedState::with_seed(0x5241_4654).build_hasher()
}

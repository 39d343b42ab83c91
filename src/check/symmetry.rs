//! Symmetry reduction over server ids. Servers run identical code, so a state and the same state
//! with server ids permuted behave alike and satisfy the same properties: the checker only needs
//! one of them. `canonical` picks a representative by sorting servers on an id-free key and
//! renaming every server id in the state (roles, votes, leader hints, replication indices,
//! messages, storage, timers, ghost history) accordingly. Servers with equal keys are tried in
//! every order and the smallest fingerprint wins, so all renamings of a state share one
//! representative and state counts do not depend on which renaming the search met first.
//!
//! Models with clients are not symmetric: a client tries servers in id order.

use crate::model::fingerprint::{fingerprint, hasher};
use crate::model::ghost::Ghost;
use crate::model::shared::IdFree;
use crate::model::shared::Shared;
use crate::model::{Envelope, SystemState};
use crate::protocol::server::{ServerState, Storage};
use crate::protocol::view::{Renaming, ServerView, Symmetric};
use smallvec::SmallVec;
use std::hash::{Hash, Hasher};

/// Servers and their storage hash their id-free part through the protocol's seam.
impl IdFree for ServerState {
    fn id_free_hash(&self) -> u64 {
        let mut h = hasher();
        self.hash_without_ids(&mut h);
        h.finish()
    }
}

impl IdFree for Storage {
    fn id_free_hash(&self) -> u64 {
        let mut h = hasher();
        self.hash_without_ids(&mut h);
        h.finish()
    }
}

impl IdFree for Ghost {
    fn id_free_hash(&self) -> u64 {
        let Ghost {
            leaders: _, // renamed in `hash_renamed`
            committed,
            violations,
            history,
            linearizable,
            read_a_write,
        } = self;
        let mut h = hasher();
        (committed, violations, history, linearizable, read_a_write).hash(&mut h);
        h.finish()
    }
}

/// What identifies server `i` up to renaming: everything about it but the ids it mentions
/// (which `hash_renamed` adds). Sorting on it puts servers in representative order up to ties.
fn key(state: &SystemState, i: usize) -> (bool, u64) {
    let s = &state.servers[i];
    let me = Some(i as u64);
    let mut h = hasher();
    (s.id_free_hash(), s.voted_for() == me, s.leader() == me).hash(&mut h);
    state.timers[i].hash(&mut h);
    let storage = state.storage[i].as_ref();
    storage
        .map(|st| (st.id_free_hash(), st.voted_for == me))
        .hash(&mut h);
    (state.down[i], h.finish())
}

/// The representative of `state`'s symmetry class: servers renamed into representative order. The
/// explorer's `Representative` and the tests use it; the BFS needs only its fingerprint.
pub fn canonical(state: &SystemState) -> SystemState {
    apply(state, &representative_order(state).1)
}

/// A fingerprint of `state`'s symmetry class: the fingerprint BFS deduplicates on. It is the
/// representative's (`canonical(state)`) hash, computed without building the representative.
pub fn canonical_fingerprint(state: &SystemState) -> u64 {
    representative_order(state).0
}

/// The renaming to the representative, and the representative's hash. Servers with equal keys
/// may be ordered either way: every order of each tie group is tried and the smallest hash
/// wins, so every renaming of a state gets the same representative.
fn representative_order(state: &SystemState) -> (u64, Order) {
    let n = state.servers.len();
    let keys: SmallVec<[(bool, u64); 8]> = (0..n).map(|i| key(state, i)).collect();
    let mut order: Order = (0..n).collect();
    order.sort_by_key(|&i| keys[i]);
    let invariant = InvariantParts::of(state);
    let mut best: Option<(u64, Order)> = None;
    for_each_tie_order(&mut order, &keys, 0, &mut |order| {
        let fp = hash_renamed(state, &keys, &invariant, order);
        if best.as_ref().is_none_or(|(b, _)| fp < *b) {
            best = Some((fp, order.into()));
        }
    });
    best.expect("at least one order")
}

/// A renaming: old server `order[new]` becomes `new` (at most 7 servers, on the stack).
type Order = SmallVec<[usize; 8]>;

/// What every renaming of a state hashes alike, hashed once per state.
struct InvariantParts {
    /// Per flow of messages (src, dst): the hash of its messages in order. A renaming moves
    /// whole flows; messages keep their order within one. None when a message names a server.
    flows: Option<SmallVec<[(u64, u64, u64); 16]>>,
    /// Clients, fault budget, workload progress, and the ghost history but its leaders.
    rest: u64,
}

impl InvariantParts {
    fn of(state: &SystemState) -> Self {
        let SystemState {
            clients,
            crashes,
            damaged,
            proposed,
            network,
            ghost,
            servers,
            storage: _, // in the keys, but for ids (`hash_renamed`)
            timers,
            down: _, // in the keys
        } = state;
        let n = servers.len();
        let names_a_server = network.iter().any(|e| e.msg.names_a_server());
        let flows = (!names_a_server).then(|| {
            network
                .chunk_by(|a, b| (a.src, a.dst) == (b.src, b.dst))
                .map(|flow| {
                    let mut h = hasher();
                    for e in flow {
                        e.msg.hash_code().hash(&mut h);
                    }
                    (flow[0].src as u64, flow[0].dst as u64, h.finish())
                })
                .collect()
        });
        let mut h = hasher();
        (clients, crashes, damaged, proposed, &timers[n..]).hash(&mut h);
        ghost.id_free_hash().hash(&mut h);
        InvariantParts {
            flows,
            rest: h.finish(),
        }
    }
}

/// The hash of `state` renamed so that old server `order[new]` becomes `new`, without building
/// the renamed state: the id-free part of each server comes from its key, and only what names a
/// server is renamed and hashed here. Equal for every renaming of a state taken with the
/// matching order, so it identifies the renamed state.
fn hash_renamed(
    state: &SystemState,
    keys: &[(bool, u64)],
    invariant: &InvariantParts,
    order: &[usize],
) -> u64 {
    let r = Renaming::new(order);
    let id = |x: u64| r.id(x);
    let mut h = hasher();
    for &old in order {
        keys[old].hash(&mut h);
        state.servers[old].hash_ids(&r, &mut h);
        if let Some(st) = &state.storage[old] {
            st.hash_ids(&r, &mut h);
        }
    }
    match &invariant.flows {
        // The network is the set of its flows, each named by its renamed ends: summed, their
        // hashes need no sorting.
        Some(flows) => flows
            .iter()
            .fold(0u64, |sum, &(src, dst, messages)| {
                let mut f = hasher();
                (id(src), id(dst), messages).hash(&mut f);
                sum.wrapping_add(f.finish())
            })
            .hash(&mut h),
        // Messages in the renamed state's order: by (src, dst), keeping the order within a flow.
        None => {
            let mut flows: SmallVec<[(u64, u64, usize); 32]> = state
                .network
                .iter()
                .enumerate()
                .map(|(j, e)| (id(e.src as u64), id(e.dst as u64), j))
                .collect();
            flows.sort_by_key(|&(src, dst, _)| (src, dst));
            for (src, dst, j) in flows {
                let msg = &state.network[j].msg;
                let renamed = msg.renamed(&r);
                (
                    src,
                    dst,
                    renamed.map_or(msg.hash_code(), |m| fingerprint(&m)),
                )
                    .hash(&mut h);
            }
        }
    }
    let mut leaders: SmallVec<[(u64, u64); 16]> = state
        .ghost
        .leaders
        .iter()
        .map(|&(term, l)| (term, id(l as u64)))
        .collect();
    leaders.sort_unstable();
    leaders[..].hash(&mut h);
    invariant.rest.hash(&mut h);
    h.finish()
}

/// Calls `f` with every order that permutes servers only within runs of equal keys.
fn for_each_tie_order(
    order: &mut [usize],
    keys: &[(bool, u64)],
    from: usize,
    f: &mut dyn FnMut(&[usize]),
) {
    if from >= order.len() {
        f(order);
        return;
    }
    let end = (from..order.len())
        .find(|&j| keys[order[j]] != keys[order[from]])
        .unwrap_or(order.len());
    permutations(order, from, end, &mut |order| {
        for_each_tie_order(order, keys, end, f)
    });
}

/// Heap-free recursive permutation of `order[from..end]` in place.
fn permutations(order: &mut [usize], from: usize, end: usize, f: &mut dyn FnMut(&mut [usize])) {
    if end - from <= 1 {
        f(order);
        return;
    }
    for i in from..end {
        order.swap(from, i);
        permutations(order, from + 1, end, f);
        order.swap(from, i);
    }
}

/// Renames servers so that old server `order[new]` becomes `new`.
fn apply(state: &SystemState, order: &[usize]) -> SystemState {
    let r = Renaming::new(order);
    if r.is_identity() {
        state.clone()
    } else {
        permute(state, &r)
    }
}

fn permute(state: &SystemState, r: &Renaming) -> SystemState {
    let (order, n) = (r.order(), r.order().len());
    let id = |x: u64| r.id(x);
    // What renaming leaves equal is shared, not copied: logs and messages are most of a state.
    let servers = order
        .iter()
        .map(|&old| {
            let s = &state.servers[old];
            s.renamed(r).map_or_else(|| s.clone(), Shared::new)
        })
        .collect();
    let storage = order
        .iter()
        .map(|&old| {
            let s = state.storage[old].as_ref()?;
            Some(s.renamed(r).map_or_else(|| s.clone(), Shared::new))
        })
        .collect();
    let mut timers: Vec<u8> = r.permuted(&state.timers[..n]).collect();
    timers.extend_from_slice(&state.timers[n..]);
    let mut network: Vec<Envelope> = state
        .network
        .iter()
        .map(|e| Envelope {
            src: id(e.src as u64) as u8,
            dst: id(e.dst as u64) as u8,
            msg: e.msg.renamed(r).map_or_else(|| e.msg.clone(), Shared::new),
        })
        .collect();
    // Stable: keeps FIFO order within a flow; for unordered networks the result is fully sorted
    // because messages within a flow were sorted already.
    network.sort_by_key(|e| (e.src, e.dst));
    let renames_a_leader = |&(_, l): &(_, usize)| id(l as u64) != l as u64;
    let leaders = &state.ghost.leaders;
    let ghost = match leaders.iter().any(renames_a_leader) || !leaders.is_sorted() {
        false => state.ghost.clone(),
        true => {
            let mut ghost = state.ghost.clone();
            ghost.update(|g| {
                for (_, leader) in g.leaders.iter_mut() {
                    *leader = id(*leader as u64) as usize;
                }
                g.leaders.sort();
            });
            ghost
        }
    };
    SystemState {
        servers,
        clients: state.clients.clone(),
        storage,
        timers,
        down: r.permuted(&state.down).collect(),
        crashes: state.crashes,
        damaged: state.damaged,
        proposed: state.proposed,
        network,
        ghost,
    }
}

impl stateright::Representative for SystemState {
    fn representative(&self) -> Self {
        canonical(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RaftModel;
    use stateright::Model;

    /// Along walks through models with leaders, candidates, messages, storage, recovery from damage and given steps:
    /// canonicalizing twice changes nothing, every renaming of a state has its representative
    /// and its fingerprint, and states with different representatives have different
    /// fingerprints (the fingerprint names a class, and nothing of it is left out).
    #[test]
    fn representative_is_stable_under_renaming() {
        for name in [
            "election",
            "figure8",
            "crash",
            "damage",
            "bugs/accept_stale_replies",
        ] {
            let model = RaftModel::new(crate::check::load::load(name).unwrap());
            let n = model.n();
            let mut orders = Vec::new();
            let mut ids: Vec<usize> = (0..n).collect();
            permutations(&mut ids, 0, n, &mut |o| orders.push(o.to_vec()));
            let mut state = model.init_states().pop().unwrap();
            let mut seen: Vec<(SystemState, u64)> = Vec::new();
            let mut actions = Vec::new();
            let mut pick = 7usize;
            for step in 0..60 {
                actions.clear();
                model.actions(&state, &mut actions);
                if actions.is_empty() {
                    break;
                }
                pick = pick.wrapping_mul(1_103_515_245).wrapping_add(12_345) >> 3;
                let action = actions[pick % actions.len()].clone();
                state = model.next_state(&state, action).unwrap_or(state);
                let c = canonical(&state);
                assert!(c == canonical(&c), "{name}: idempotent at step {step}");
                let fp = canonical_fingerprint(&state);
                assert_eq!(canonical_fingerprint(&c), fp, "{name}: step {step}");
                for order in &orders {
                    // Built by `permute`, not `apply`: the identity shortcut must not make
                    // every renaming look like the state itself.
                    let renamed = permute(&state, &Renaming::new(order));
                    assert!(canonical(&renamed) == c, "{name}: {order:?} at {step}");
                    assert_eq!(canonical_fingerprint(&renamed), fp, "{name}: {order:?}");
                }
                for (other, other_fp) in &seen {
                    assert_eq!(*other == c, *other_fp == fp, "{name}: classes at {step}");
                }
                seen.push((c, fp));
            }
            assert!(seen.len() >= 20, "{name}: the walk was too short");
        }
    }
}

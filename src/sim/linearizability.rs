//! Linearizability of a key/value client history, checked one key at a time (P-compositionality:
//! a history is linearizable iff each key's sub-history is), each by the Wing–Gong search with
//! Lowe's memoisation as Porcupine does it: linearize, among the operations no other must
//! precede, one whose result the current value allows; back up when none does; never explore the
//! same (set of linearized operations, value) twice. An operation whose answer never came may or
//! may not have taken effect: it returns "at infinity" and need not be linearized at all.

use crate::protocol::types::{Op, OpResult};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// One client operation as the clients saw it.
#[derive(Clone, Debug)]
pub struct HistoryOp {
    /// The client that ran it (for messages only).
    pub client: usize,
    /// What it asked for.
    pub op: Op,
    /// When it was first sent.
    pub call: Duration,
    /// When its answer arrived and what it was; `None` when none came (it may have happened).
    pub ret: Option<(Duration, OpResult)>,
}

fn key_of(op: &Op) -> &str {
    match op {
        Op::Put { key, .. } | Op::Append { key, .. } | Op::Get { key } | Op::Delete { key } => key,
    }
}

/// `None` when the whole history is linearizable, else the first key (in key order) whose
/// operations are not, with how many it has.
pub fn check(history: &[HistoryOp]) -> Option<String> {
    let mut keys: BTreeMap<&str, Vec<&HistoryOp>> = BTreeMap::new();
    for h in history {
        keys.entry(key_of(&h.op)).or_default().push(h);
    }
    for (key, ops) in keys {
        if !check_key(&ops) {
            return Some(format!(
                "the {} operations on key {key:?} have no linearization",
                ops.len()
            ));
        }
    }
    None
}

/// Whether `op`'s recorded result (if any) is what it returns on `value`. Kept apart from
/// [`apply`] so that a rejected candidate costs no copy of the value (6.5840's appends make it
/// kilobytes long).
fn allowed(value: &Option<String>, op: &HistoryOp) -> bool {
    let Some((_, result)) = &op.ret else {
        return true;
    };
    match &op.op {
        Op::Put { .. } | Op::Append { .. } | Op::Delete { .. } => *result == OpResult::Written,
        Op::Get { .. } => matches!(result, OpResult::Value(v) if v == value),
    }
}

/// How to take an operation back off the value (see [`apply`]).
enum Undo {
    /// A get: nothing changed.
    Nothing,
    /// An append: cut the value back to this length (`None`: there was no value).
    Truncate(Option<usize>),
    /// A put or delete: the value before it.
    Restore(Option<String>),
}

/// Applies `op` to `value` in place and says how to undo it. Appends extend the value where it
/// is, so a path of 1,000 appends to one key neither copies nor keeps 1,000 growing values.
fn apply(value: &mut Option<String>, op: &Op) -> Undo {
    match op {
        Op::Put { value: v, .. } => Undo::Restore(value.replace(v.clone())),
        Op::Append { value: v, .. } => {
            let before = value.as_ref().map(String::len);
            value.get_or_insert_with(String::new).push_str(v);
            Undo::Truncate(before)
        }
        Op::Get { .. } => Undo::Nothing,
        Op::Delete { .. } => Undo::Restore(value.take()),
    }
}

fn undo(value: &mut Option<String>, undo: Undo) {
    match undo {
        Undo::Nothing => {}
        Undo::Truncate(None) => *value = None,
        Undo::Truncate(Some(len)) => value.as_mut().expect("appended").truncate(len),
        Undo::Restore(before) => *value = before,
    }
}

/// The search state: which operations are linearized (a bit set) and the path that did it.
struct Search<'a> {
    /// The key's operations in order of call.
    ops: Vec<&'a HistoryOp>,
    done: Vec<u64>,
    /// The first operation not yet linearized: everything before it is, so no scan starts
    /// earlier.
    first_open: usize,
    /// Linearized operations in order, each with how to take it back.
    path: Vec<(usize, Undo)>,
    value: Option<String>,
    completed_left: usize,
    /// Configurations (linearized set, value) from which the search already backed out. Lowe's
    /// cache holds every configuration visited, but one still on the path cannot come back (the
    /// set only grows along it), so the failed ones are the same cache; a history that never
    /// backs up, as a lone client's, then never copies or hashes its value.
    failed: HashSet<(Vec<u64>, Option<String>)>,
}

impl Search<'_> {
    fn is_done(&self, i: usize) -> bool {
        self.done[i / 64] & (1 << (i % 64)) != 0
    }
    fn flip(&mut self, i: usize) {
        self.done[i / 64] ^= 1 << (i % 64);
        if self.ops[i].ret.is_some() {
            if self.is_done(i) {
                self.completed_left -= 1;
            } else {
                self.completed_left += 1;
            }
        }
        if !self.is_done(i) {
            self.first_open = self.first_open.min(i);
        }
        while self.first_open < self.ops.len() && self.is_done(self.first_open) {
            self.first_open += 1;
        }
    }

    /// The earliest return among operations not yet linearized: an operation called after it
    /// cannot come next. Operations are in order of call and none returns before its call, so
    /// the scan stops at the first call after the earliest return seen.
    fn min_return(&self) -> Duration {
        let mut min = Duration::MAX;
        for i in self.first_open..self.ops.len() {
            if self.ops[i].call > min {
                break;
            }
            if let (false, Some((t, _))) = (self.is_done(i), &self.ops[i].ret) {
                min = min.min(*t);
            }
        }
        min
    }

    /// Linearizes the first candidate from `from` on that leads to a configuration not known to
    /// fail.
    fn advance(&mut self, from: usize) -> bool {
        let bound = self.min_return();
        for j in from.max(self.first_open)..self.ops.len() {
            if self.ops[j].call > bound {
                break;
            }
            if self.is_done(j) || !allowed(&self.value, self.ops[j]) {
                continue;
            }
            let taken_back = apply(&mut self.value, &self.ops[j].op);
            self.flip(j);
            if self.failed.is_empty()
                || !self
                    .failed
                    .contains(&(self.done.clone(), self.value.clone()))
            {
                self.path.push((j, taken_back));
                return true;
            }
            self.flip(j);
            undo(&mut self.value, taken_back);
        }
        false
    }
}

fn check_key(ops: &[&HistoryOp]) -> bool {
    let mut ops = ops.to_vec();
    ops.sort_by_key(|h| h.call);
    let completed = ops.iter().filter(|h| h.ret.is_some()).count();
    let mut s = Search {
        done: vec![0; ops.len().div_ceil(64)],
        ops,
        first_open: 0,
        path: Vec::new(),
        value: None,
        completed_left: completed,
        failed: HashSet::new(),
    };
    let mut from = 0;
    loop {
        if s.completed_left == 0 {
            return true;
        }
        if s.advance(from) {
            from = 0;
            continue;
        }
        let Some((j, taken_back)) = s.path.pop() else {
            return false;
        };
        s.failed.insert((s.done.clone(), s.value.clone()));
        undo(&mut s.value, taken_back);
        s.flip(j);
        from = j + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(t: u64) -> Duration {
        Duration::from_millis(t)
    }
    fn put(client: usize, k: &str, v: &str, call: u64, ret: Option<u64>) -> HistoryOp {
        HistoryOp {
            client,
            op: Op::Put {
                key: k.into(),
                value: v.into(),
            },
            call: ms(call),
            ret: ret.map(|r| (ms(r), OpResult::Written)),
        }
    }
    fn get(client: usize, k: &str, saw: Option<&str>, call: u64, ret: u64) -> HistoryOp {
        HistoryOp {
            client,
            op: Op::Get { key: k.into() },
            call: ms(call),
            ret: Some((ms(ret), OpResult::Value(saw.map(str::to_string)))),
        }
    }

    /// A delete leaves the key absent: a later read sees nothing, and a read that saw the
    /// deleted value must have come before the delete.
    #[test]
    fn a_delete_empties_the_key() {
        let delete = |call, ret| HistoryOp {
            client: 1,
            op: Op::Delete { key: "x".into() },
            call: ms(call),
            ret: Some((ms(ret), OpResult::Written)),
        };
        let ok = vec![
            put(0, "x", "1", 0, Some(10)),
            delete(20, 30),
            get(2, "x", None, 40, 50),
        ];
        assert_eq!(check(&ok), None);
        let stale = vec![
            put(0, "x", "1", 0, Some(10)),
            delete(20, 30),
            get(2, "x", Some("1"), 40, 50),
        ];
        assert!(check(&stale).is_some());
    }

    #[test]
    fn concurrent_writes_may_be_seen_in_either_order() {
        let h = vec![
            put(0, "x", "1", 0, Some(10)),
            put(1, "x", "2", 5, Some(15)),
            get(2, "x", Some("1"), 20, 25),
            get(3, "y", None, 0, 1),
        ];
        assert_eq!(check(&h), None);
    }

    #[test]
    fn a_stale_read_is_rejected() {
        // put 1 completes, then put 2 completes, then a read returns 1: no order explains it.
        let h = vec![
            put(0, "x", "1", 0, Some(10)),
            put(1, "x", "2", 11, Some(20)),
            get(2, "x", Some("1"), 21, 30),
            get(3, "y", None, 0, 1),
        ];
        let why = check(&h).expect("not linearizable");
        assert!(why.contains("\"x\""), "{why}");
    }

    #[test]
    fn an_unanswered_write_may_or_may_not_have_happened() {
        let seen = vec![
            put(0, "x", "1", 0, None),
            get(1, "x", Some("1"), 50, 60),
            get(1, "x", Some("1"), 70, 80),
        ];
        assert_eq!(check(&seen), None);
        let unseen = vec![put(0, "x", "1", 0, None), get(1, "x", None, 50, 60)];
        assert_eq!(check(&unseen), None);
        // But once seen, it cannot be unseen.
        let flicker = vec![
            put(0, "x", "1", 0, None),
            get(1, "x", Some("1"), 50, 60),
            get(1, "x", None, 70, 80),
        ];
        assert!(check(&flicker).is_some());
    }

    #[test]
    fn appends_applied_twice_are_caught() {
        let append = |v: &str, call, ret| HistoryOp {
            client: 0,
            op: Op::Append {
                key: "k".into(),
                value: v.into(),
            },
            call: ms(call),
            ret: Some((ms(ret), OpResult::Written)),
        };
        let h = vec![
            append("a", 0, 10),
            append("b", 20, 30),
            get(1, "k", Some("abb"), 40, 50),
        ];
        assert!(check(&h).is_some());
    }

    #[test]
    fn ten_thousand_operations_check_quickly() {
        let mut h = Vec::new();
        for i in 0..10_000u64 {
            let k = format!("k{}", i % 10);
            let c = (i % 5) as usize;
            h.push(put(c, &k, &i.to_string(), i * 10, Some(i * 10 + 15)));
        }
        let t = std::time::Instant::now();
        assert_eq!(check(&h), None);
        assert!(t.elapsed() < Duration::from_secs(10));
    }

    /// Every linearization order, tried without memoisation or pruning: the definition itself,
    /// for histories small enough to enumerate.
    fn brute_force(ops: &[HistoryOp], done: &mut Vec<bool>, value: &Option<String>) -> bool {
        let open = |i: usize, done: &[bool]| !done[i] && ops[i].ret.is_some();
        if (0..ops.len()).all(|i| !open(i, done)) {
            return true;
        }
        for j in 0..ops.len() {
            let blocked = (0..ops.len())
                .any(|i| open(i, done) && ops[i].ret.as_ref().unwrap().0 < ops[j].call);
            if done[j] || blocked || !allowed(value, &ops[j]) {
                continue;
            }
            let mut next = value.clone();
            apply(&mut next, &ops[j].op);
            done[j] = true;
            let found = brute_force(ops, done, &next);
            done[j] = false;
            if found {
                return true;
            }
        }
        false
    }

    fn arbitrary_op() -> impl Strategy<Value = HistoryOp> {
        let op = prop_oneof![
            (0..3u8).prop_map(|v| Op::Put {
                key: "k".into(),
                value: v.to_string()
            }),
            (0..3u8).prop_map(|v| Op::Append {
                key: "k".into(),
                value: v.to_string()
            }),
            Just(Op::Get { key: "k".into() }),
            Just(Op::Delete { key: "k".into() }),
        ];
        let seen = prop_oneof![
            Just(None),
            Just(Some("0".to_string())),
            Just(Some("1".to_string())),
            Just(Some("01".to_string())),
            Just(Some("10".to_string())),
            Just(Some("2".to_string())),
        ];
        (op, 0..20u64, 0..12u64, 0..6u8, seen).prop_map(|(op, call, took, answered, seen)| {
            let result = match op {
                Op::Get { .. } => OpResult::Value(seen),
                _ => OpResult::Written,
            };
            HistoryOp {
                client: 0,
                op,
                call: ms(call),
                ret: (answered > 0).then(|| (ms(call + took), result)),
            }
        })
    }

    proptest! {
        /// The memoised, pruned search agrees with trying every order, on small histories of
        /// concurrent puts, appends, gets and deletes, answered or not.
        #[test]
        fn the_search_agrees_with_trying_every_order(
            ops in proptest::collection::vec(arbitrary_op(), 1..8)
        ) {
            let mut by_call = ops.clone();
            by_call.sort_by_key(|h| h.call);
            let expected = brute_force(&by_call, &mut vec![false; ops.len()], &None);
            prop_assert_eq!(check(&ops).is_none(), expected);
        }
    }
}

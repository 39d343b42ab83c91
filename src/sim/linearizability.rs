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

/// Applies `op` to `value`: whether the recorded result (if any) is what it returns, and the
/// value after it.
fn step(value: &Option<String>, op: &HistoryOp) -> (bool, Option<String>) {
    let result = op.ret.as_ref().map(|(_, r)| r);
    match &op.op {
        Op::Put { value: v, .. } => (
            result.is_none_or(|r| *r == OpResult::Written),
            Some(v.clone()),
        ),
        Op::Append { value: v, .. } => {
            let mut new = value.clone().unwrap_or_default();
            new.push_str(v);
            (result.is_none_or(|r| *r == OpResult::Written), Some(new))
        }
        Op::Get { .. } => (
            result.is_none_or(|r| *r == OpResult::Value(value.clone())),
            value.clone(),
        ),
        Op::Delete { .. } => (result.is_none_or(|r| *r == OpResult::Written), None),
    }
}

/// The search state: which operations are linearized (a bit set) and the path that did it.
struct Search<'a> {
    ops: Vec<&'a HistoryOp>,
    done: Vec<u64>,
    /// Linearized operations in order, each with the value before it.
    path: Vec<(usize, Option<String>)>,
    value: Option<String>,
    completed_left: usize,
    seen: HashSet<(Vec<u64>, Option<String>)>,
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
    }

    /// The earliest return among operations not yet linearized: an operation called after it
    /// cannot come next.
    fn min_return(&self) -> Duration {
        (0..self.ops.len())
            .filter(|&i| !self.is_done(i))
            .filter_map(|i| self.ops[i].ret.as_ref().map(|(t, _)| *t))
            .min()
            .unwrap_or(Duration::MAX)
    }

    /// Linearizes the first candidate from `from` on that leads to an unseen configuration.
    fn advance(&mut self, from: usize) -> bool {
        let bound = self.min_return();
        for j in from..self.ops.len() {
            if self.ops[j].call > bound {
                break;
            }
            if self.is_done(j) {
                continue;
            }
            let (ok, next) = step(&self.value, self.ops[j]);
            if !ok {
                continue;
            }
            self.flip(j);
            if self.seen.insert((self.done.clone(), next.clone())) {
                let before = std::mem::replace(&mut self.value, next);
                self.path.push((j, before));
                return true;
            }
            self.flip(j);
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
        path: Vec::new(),
        value: None,
        completed_left: completed,
        seen: HashSet::new(),
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
        let Some((j, before)) = s.path.pop() else {
            return false;
        };
        s.flip(j);
        s.value = before;
        from = j + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

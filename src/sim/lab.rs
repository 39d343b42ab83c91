//! 6.5840's test helpers on a simulated cluster, with the lab's constants: `checkOneLeader`
//! (ten looks, 450–550 ms apart), `checkTerms`, `checkNoLeader`, `nCommitted` and `one` (a
//! command agreed on by a number of servers within 10 s). Where the lab calls `Start` on the
//! leader, `one` runs a client session with the one command: the node serves clients only.

use crate::protocol::types::{Entry, LogIndex, Op, Term};
use crate::sim::cluster::{Failure, Sim};
use std::collections::BTreeMap;
use std::time::Duration;

/// The lab's bound on electing a leader after the network heals.
pub const ELECTION_BOUND: Duration = Duration::from_secs(5);

impl Sim {
    /// The leader of the newest term among connected servers, after up to ten looks 450–550 ms
    /// apart; fails when a term has two leaders or no look finds one.
    pub fn check_one_leader(&mut self) -> Result<usize, Failure> {
        for _ in 0..10 {
            let pause = 450 + self.random(100);
            self.run_for(Duration::from_millis(pause));
            self.ok()?;
            let mut leaders: BTreeMap<Term, Vec<usize>> = BTreeMap::new();
            for i in (0..self.n()).filter(|&i| self.connected(i)) {
                let s = self.state(i).expect("connected servers are up");
                if s.is_leader() {
                    leaders.entry(s.term).or_default().push(i);
                }
            }
            for (term, ls) in &leaders {
                if ls.len() > 1 {
                    let f = Failure::new("one leader", format!("term {term} has leaders {ls:?}"));
                    self.fail(f.clone());
                    return Err(f);
                }
            }
            if let Some((_, ls)) = leaders.last_key_value() {
                return Ok(ls[0]);
            }
        }
        self.failed("one leader", "expected one leader, got none")
    }

    /// Fails with `check` and `detail`.
    pub fn failed<T>(&mut self, check: &str, detail: impl Into<String>) -> Result<T, Failure> {
        let f = Failure::new(check, detail);
        self.fail(f.clone());
        Err(f)
    }

    /// The term every connected server agrees on; fails when they disagree.
    pub fn check_terms(&mut self) -> Result<Term, Failure> {
        let terms: Vec<Term> = (0..self.n())
            .filter(|&i| self.connected(i))
            .filter_map(|i| self.state(i).map(|s| s.term))
            .collect();
        match terms.first() {
            Some(&t) if terms.iter().all(|&u| u == t) => Ok(t),
            Some(_) => self.failed("terms", format!("servers disagree on the term: {terms:?}")),
            None => Ok(0),
        }
    }

    /// Fails when a connected server believes it leads.
    pub fn check_no_leader(&mut self) -> Result<(), Failure> {
        for i in (0..self.n()).filter(|&i| self.connected(i)) {
            if self.state(i).is_some_and(|s| s.is_leader()) {
                return self.failed("no leader", format!("S{i} leads, but none should"));
            }
        }
        Ok(())
    }

    /// How many up servers have committed `index`, and the entry there (None when every one of
    /// them has compacted it); fails when two hold different committed entries there.
    pub fn n_committed(&mut self, index: LogIndex) -> Result<(usize, Option<Entry>), Failure> {
        let mut count = 0;
        let mut seen: Option<Entry> = None;
        for i in 0..self.n() {
            let Some(s) = self.state(i) else { continue };
            if s.commit_index < index {
                continue;
            }
            count += 1;
            if let Some(e) = s.log.get(index) {
                match &seen {
                    Some(first) if first != e => {
                        let d = format!("index {index}: {first} and {e} are both committed");
                        return self.failed("committed values match", d);
                    }
                    Some(_) => {}
                    None => seen = Some(e.clone()),
                }
            }
        }
        Ok((count, seen))
    }

    /// The index at which the most up servers have committed session `session`'s command
    /// (several leaders may each have taken it in at their own index), and how many.
    fn committed_at(&self, session: u64) -> Option<(LogIndex, usize)> {
        let mut candidates: Vec<LogIndex> = (0..self.n())
            .filter_map(|i| self.state(i))
            .flat_map(|s| {
                (s.log.base_index + 1..=s.log.last_index())
                    .filter(move |&k| s.log.get(k).is_some_and(|e| e.command.client == session))
            })
            .collect();
        candidates.sort();
        candidates.dedup();
        candidates
            .into_iter()
            .map(|k| (k, self.count_committed(k, session)))
            .max_by_key(|&(k, count)| (count, std::cmp::Reverse(k)))
    }

    /// How many up servers have committed `index` holding `session`'s command there (or in a
    /// snapshot).
    fn count_committed(&self, index: LogIndex, session: u64) -> usize {
        (0..self.n())
            .filter_map(|i| self.state(i))
            .filter(|s| s.commit_index >= index)
            .filter(|s| {
                index <= s.log.base_index
                    || s.log
                        .get(index)
                        .is_some_and(|e| e.command.client == session)
            })
            .count()
    }

    /// The lab's `one`: submits `op` (through a fresh client session, which follows redirects
    /// and retries with the same request id) and waits up to 2 s for `expected` servers to
    /// commit it; if they have not, submits it again as a new command, as the lab's `one` does
    /// with `retry`, for up to 10 s in all. Returns its index. (A new leader commits an earlier
    /// term's entry only with one of its own, §5.4.2, and this server appends no no-op entry:
    /// the lab's resubmission is what lets a committed-but-unannounced entry be seen.)
    pub fn one(&mut self, op: Op, expected: usize) -> Result<LogIndex, Failure> {
        let until = self.now() + Duration::from_secs(10);
        while self.now() < until {
            let left = (until - self.now()).min(Duration::from_secs(2));
            if let Some(k) = self.try_one(&op, expected, left)? {
                self.n_committed(k)?;
                return Ok(k);
            }
        }
        self.failed(
            "one",
            format!("{op} did not reach agreement on {expected} servers within 10 s"),
        )
    }

    /// One attempt of [`one`](Self::one): a client submits `op`; its index once `expected`
    /// servers committed it within `limit`.
    fn try_one(
        &mut self,
        op: &Op,
        expected: usize,
        limit: Duration,
    ) -> Result<Option<LogIndex>, Failure> {
        let c = self.add_client(vec![op.clone()]);
        let session = self.session(c);
        let agreed = self.run_until(limit, |sim| {
            sim.committed_at(session)
                .is_some_and(|(_, count)| count >= expected)
        });
        self.stop_client(c);
        self.ok()?;
        Ok(self
            .committed_at(session)
            .map(|(k, _)| k)
            .filter(|_| agreed))
    }

    /// Fails unless a leader was seen within [`ELECTION_BOUND`] of the last fault healing
    /// (running on until then if need be).
    pub fn check_elected_after_heal(&mut self) -> Result<Duration, Failure> {
        let heal = self.last_heal();
        let until = heal + ELECTION_BOUND;
        if self.now() < until {
            let left = until - self.now();
            self.run_until(left, |sim| sim.elected_after_heal().is_some());
        }
        self.ok()?;
        match self.elected_after_heal() {
            Some(d) if d <= ELECTION_BOUND => Ok(d),
            _ => self.failed(
                "election after heal",
                format!(
                    "no leader within 5 s of the last fault healing at {:.3}s",
                    heal.as_secs_f64()
                ),
            ),
        }
    }
}

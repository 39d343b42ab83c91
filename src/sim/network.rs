//! The simulated network's behaviour: per-link delay ranges, loss, duplication, long delays that
//! reorder (6.5840's "long reordering"), and partitions, one-way ones included. It decides the
//! fate of each datagram from the run's generator; the simulator carries it out.

use crate::net::driver::Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::time::Duration;

/// How one link (or every link, by default) treats datagrams.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkConfig {
    /// The delay of a datagram, uniform in this range: overlapping delays reorder.
    pub delay: Range<Duration>,
    /// Per mille of datagrams lost.
    pub loss: u64,
    /// Per mille of datagrams delivered twice (each copy with its own delay).
    pub duplicate: u64,
    /// Per mille of replies (to RPCs and clients) held back by a long delay instead: 200 ms
    /// plus a draw below a draw below 2000 ms, as labrpc's long reordering does.
    pub long: u64,
}

impl LinkConfig {
    /// 6.5840's reliable network: no loss, short delays (a millisecond or two).
    pub fn reliable() -> LinkConfig {
        LinkConfig {
            delay: Duration::from_micros(200)..Duration::from_millis(2),
            loss: 0,
            duplicate: 0,
            long: 0,
        }
    }

    /// 6.5840's unreliable network: 10% of datagrams lost each way, delays of 0–27 ms.
    pub fn unreliable() -> LinkConfig {
        LinkConfig {
            delay: Duration::ZERO..Duration::from_millis(27),
            loss: 100,
            ..LinkConfig::reliable()
        }
    }

    /// The unreliable network with 6.5840's long reordering: two thirds of replies are delayed
    /// 200–2199 ms (requests are not: labrpc delays only replies).
    pub fn long_reordering() -> LinkConfig {
        LinkConfig {
            long: 667,
            ..LinkConfig::unreliable()
        }
    }
}

/// The whole network: a default link, per-link overrides, and which directions are cut.
pub struct NetModel {
    /// How links without an override behave.
    pub default: LinkConfig,
    /// Per (from, to) actor: how that link behaves instead.
    pub links: BTreeMap<(usize, usize), LinkConfig>,
    /// Directions (from, to) that deliver nothing: a partition, or half of one.
    pub blocked: BTreeSet<(usize, usize)>,
}

impl NetModel {
    /// A network where every link behaves as `default` and nothing is cut.
    pub fn new(default: LinkConfig) -> NetModel {
        NetModel {
            default,
            links: BTreeMap::new(),
            blocked: BTreeSet::new(),
        }
    }

    /// Whether the link from `from` to `to` holds back replies (so the caller need only look
    /// at a datagram's kind when it does).
    pub fn reorders(&self, from: usize, to: usize) -> bool {
        self.links.get(&(from, to)).unwrap_or(&self.default).long > 0
    }

    /// The delays after which copies of a datagram from `from` to `to` arrive: none when it is
    /// lost or the direction is cut, two when it is duplicated. `reply`: it answers a request,
    /// so long reordering may hold it back.
    pub fn fate(&self, from: usize, to: usize, reply: bool, rng: &mut Rng) -> Vec<Duration> {
        if self.blocked.contains(&(from, to)) {
            return Vec::new();
        }
        let link = self.links.get(&(from, to)).unwrap_or(&self.default);
        if chance(rng, link.loss) {
            return Vec::new();
        }
        let copies = if chance(rng, link.duplicate) { 2 } else { 1 };
        (0..copies)
            .map(|_| {
                if reply && chance(rng, link.long) {
                    let spread = 1 + rng.next_u64() % 2000;
                    Duration::from_millis(200 + rng.next_u64() % spread)
                } else {
                    rng.duration_in(&link.delay)
                }
            })
            .collect()
    }

    /// Whether a datagram in flight from `from` to `to` is still delivered on arrival.
    pub fn open(&self, from: usize, to: usize) -> bool {
        !self.blocked.contains(&(from, to))
    }
}

/// True with probability `per_mille` / 1000.
pub fn chance(rng: &mut Rng, per_mille: u64) -> bool {
    per_mille > 0 && rng.next_u64() % 1000 < per_mille
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_way_cut_blocks_only_its_direction() {
        let mut net = NetModel::new(LinkConfig::reliable());
        net.blocked.insert((0, 1));
        let mut rng = Rng::from_seed(1);
        assert!(net.fate(0, 1, false, &mut rng).is_empty());
        assert_eq!(net.fate(1, 0, false, &mut rng).len(), 1);
        assert!(!net.open(0, 1) && net.open(1, 0));
    }

    #[test]
    fn loss_duplication_and_long_delays_happen_at_their_rates() {
        let mut net = NetModel::new(LinkConfig::long_reordering());
        net.default.duplicate = 100;
        let mut rng = Rng::from_seed(2);
        let (mut lost, mut twice, mut long) = (0, 0, 0);
        for _ in 0..10_000 {
            let copies = net.fate(0, 1, true, &mut rng);
            lost += usize::from(copies.is_empty());
            twice += usize::from(copies.len() == 2);
            long += copies
                .iter()
                .filter(|d| **d >= Duration::from_millis(200))
                .count();
        }
        assert!((800..1200).contains(&lost), "{lost}");
        assert!((600..1200).contains(&twice), "{twice}");
        assert!((5000..7000).contains(&long), "{long}");
        // Requests are never held back.
        let requests = (0..1000).flat_map(|_| net.fate(0, 1, false, &mut rng));
        assert!(requests.into_iter().all(|d| d < Duration::from_millis(27)));
    }
}

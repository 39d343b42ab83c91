//! The crate's own random search: swarm verification (Holzmann, Joshi and Groce, 2008).
//!
//! Many random walks, each from the initial state, each under a configuration of its own drawn
//! from its seed: which kinds of action are enabled and how strongly each is favoured, and how
//! deep it may go, so that different walks dig in different directions. A walk checks every
//! `always` and `sometimes` property on every state it visits, records the actions it took (not
//! their positions in an action list, which change when actions are filtered), and ends at its
//! depth, or where nothing inside the model's bounds can happen.
//!
//! Walks also learn from each other, as a coverage-guided fuzzer does: a state of a *shape* (an
//! abstraction the caller gives: for Raft, roles, terms, logs' terms and the stale replies in
//! flight) that no walk reached before is kept in a corpus, with the steps to it, and fifteen
//! walks in sixteen start from a corpus state instead of the initial state and go a short way on
//! from it (8 to 40 steps): many short continuations add more than a few long ones. Half of
//! those pick an *aspect* of states first (one server's situation, a stale reply and its
//! receiver's), uniformly among those the corpus shows, then a state that shows it, so that
//! what few states show gets as many walks as what many show; the others pick any state, newer
//! ones favoured.
//! So a bug 27 steps deep, behind three elections and a reply held back through two of them, is
//! reached in a chain of walks that each add a little, where no single uniform walk gets there.
//! A corpus can also wander off (every state it keeps past the point where the bug could still
//! happen), so it is emptied at the start of each epoch, and epochs grow by Luby's sequence.
//!
//! One seed, one run: walk `w` draws everything from `seed` and `w` alone, walks are handed out
//! in fixed batches, the corpus takes in a batch's new states in walk order after the batch, and
//! the walk that counts for a property is the lowest-numbered one of the first batch that showed
//! it. So results are the same for any thread count, and `--walk W` replays walk `W` alone
//! (rerunning the batches of its epoch before it, uncounted, to rebuild the corpus it started
//! from). A violating walk is shortened (cycles cut, then steps left out while a lenient replay
//! still shows the violation) before the runner replays and validates it.
//!
//! Unique states are estimated with a HyperLogLog of 2^14 registers over state fingerprints
//! (standard error about 0.8%).

use crate::check::bfs::{fingerprint, Fingerprint, Progress, Stop};
use crate::check::coverage::{observe, tag_of, Coverage, Observer};
use stateright::{Expectation, Model};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// Walks per batch: the unit in which work is handed out and results are decided.
const BATCH: u64 = 64;

/// What bounds a swarm.
#[derive(Clone, Debug)]
pub struct SwarmOptions {
    /// The run's seed; walk `w` is seeded from it and `w`.
    pub seed: u64,
    /// Stop after this many walks.
    pub walks: Option<u64>,
    /// Run only this walk (to replay what a swarm found).
    pub walk: Option<u64>,
    /// Stop after this long (checked between batches, and every 1,024 steps within a walk).
    pub timeout: Option<Duration>,
    /// Stop after this many steps in all.
    pub max_states: Option<u64>,
    /// The deepest a walk goes; each walk draws its own limit up to it.
    pub max_depth: usize,
    /// Worker threads.
    pub threads: usize,
}

/// How a swarm sees a model's actions: `kinds` kinds, and the kind of each action; and, when
/// given, an abstraction of its states that steers walks toward what no walk has reached yet.
pub struct Kinds<'a, A, S> {
    /// The number of kinds.
    pub count: usize,
    /// The kind of an action, below `count`.
    pub of: &'a (dyn Fn(&A) -> usize + Sync),
    /// A hash of what the action is about (the message it delivers, say), the same wherever it
    /// is enabled: each walk favours or holds back each message on its own, so a walk can keep
    /// one reply in flight while the same link carries others.
    pub identity: &'a (dyn Fn(&A) -> u64 + Sync),
    /// A hash of a state's shape (roles, terms, logs' terms, kinds of messages in flight), coarse
    /// enough that the reachable shapes are few. A walk that reaches a shape no earlier walk
    /// reached adds that state to the corpus, and later walks may start there: the way a fuzzer
    /// keeps inputs that showed new coverage. Without it every walk starts at the initial state.
    pub feature: Option<&'a (dyn Fn(&S) -> u64 + Sync)>,
    /// Whether an action certainly leads outside the model's bounds where it stands, known
    /// without running it (a server standing for election at the last term). A walk never
    /// picks these; without it, it runs each to find out, which at the last term is most of
    /// what a walk does.
    pub futile: Option<&'a Futile<'a, S, A>>,
    /// Hashes of a state's aspects (one server's role, term and log; a stale reply in flight
    /// and the situation of its receiver), many per state, few in all. Half the walks that start
    /// from the corpus pick an aspect first, uniformly among those the corpus shows, then a
    /// state that shows it: an aspect that one state in ten thousand shows gets as many walks
    /// as the commonest (rare branches first, as FairFuzz does).
    pub aspects: Option<&'a AspectsOf<'a, S>>,
}

/// Whether an action certainly leaves the bounds where it stands (`Kinds::futile`).
pub type Futile<'a, S, A> = dyn Fn(&S, &A) -> bool + Sync + 'a;

/// What gives a state's aspects (`Kinds::aspects`).
pub type AspectsOf<'a, S> = dyn Fn(&S, &mut Vec<u64>) + Sync + 'a;

/// What a swarm found.
pub struct SwarmResult<M: Model> {
    /// Walks run.
    pub walks: u64,
    /// Steps taken in all (states visited, counting repeats).
    pub states: u64,
    /// Estimated distinct states visited (HyperLogLog).
    pub unique: u64,
    /// The deepest walk.
    pub max_depth: usize,
    /// Why it stopped.
    pub stopped: Stop,
    /// Property name → (walk number, the walk's actions up to the state that showed it).
    pub discoveries: HashMap<&'static str, (u64, Vec<M::Action>)>,
    /// How long it ran.
    pub elapsed: Duration,
    /// What the walks' steps exercised (zero without an observer).
    pub coverage: Coverage,
    /// States of new shapes kept in the corpus for walks to start from.
    pub corpus: u64,
}

/// SplitMix64: a small, fast, well-mixed generator; the same sequence on every machine.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, walk: u64) -> Self {
        let mut r = Rng(seed ^ walk.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        r.next();
        r
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A walk's configuration: a weight per kind of action (0: never taken, unless nothing else
/// is possible), and its depth limit.
struct Config {
    weights: Vec<u64>,
    depth: usize,
    /// Salts each action's identity into this walk's own factor for it.
    salt: u64,
}

impl Config {
    /// Most walks favour some kinds and starve others; one in four takes every kind alike.
    fn draw(rng: &mut Rng, kinds: usize, max_depth: usize) -> Self {
        let uniform = rng.below(4) == 0;
        let weights = (0..kinds)
            .map(|_| match (uniform, rng.below(6)) {
                (true, _) => 4,
                (false, 0) => 0,
                (false, 1) => 1,
                (false, 2..=3) => 4,
                _ => 16,
            })
            .collect();
        let depth = max_depth / 4 + rng.below((max_depth - max_depth / 4 + 1) as u64) as usize;
        let salt = rng.next();
        Config {
            weights,
            depth,
            salt,
        }
    }
}

/// The unique-state estimator: 2^14 six-bit registers (HyperLogLog).
struct Hll(Vec<AtomicU8>);

impl Hll {
    const BITS: u32 = 14;

    fn new() -> Self {
        Hll((0..1 << Self::BITS).map(|_| AtomicU8::new(0)).collect())
    }

    fn add(&self, fp: Fingerprint) {
        let h = fp.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let index = (h >> (64 - Self::BITS)) as usize;
        let rank = ((h << Self::BITS) | 1 << (Self::BITS - 1)).leading_zeros() as u8 + 1;
        self.0[index].fetch_max(rank, Ordering::Relaxed);
    }

    fn estimate(&self) -> u64 {
        let m = (1u64 << Self::BITS) as f64;
        let (sum, zeros) = self.0.iter().fold((0.0, 0), |(sum, zeros), r| {
            let r = r.load(Ordering::Relaxed);
            // 2^-r, built from its exponent bits: `powi` on every register of every batch
            // cost a walk's worth of time.
            let inverse = f64::from_bits((1023 - u64::from(r)) << 52);
            (sum + inverse, zeros + u64::from(r == 0))
        });
        let raw = 0.7213 / (1.0 + 1.079 / m) * m * m / sum;
        if raw <= 2.5 * m && zeros > 0 {
            (m * (m / zeros as f64).ln()).round() as u64
        } else {
            raw.round() as u64
        }
    }
}

/// How a walk sees the model's actions and states, and what it counts of its steps.
type Lenses<'a, M> = (
    &'a Kinds<'a, <M as Model>::Action, <M as Model>::State>,
    Option<&'a Observer<'a, M>>,
);

/// What one walk found: per property, the number of steps to the state that showed it.
struct Walk<S, A> {
    /// The corpus entry it started from (None: the initial state).
    start: Option<usize>,
    actions: Vec<A>,
    shown: Vec<(&'static str, usize)>,
    steps: u64,
    coverage: Coverage,
    /// States of shapes the corpus did not hold when the walk began: (shape, state, steps taken).
    novel: Vec<(u64, S, usize)>,
}

/// Most states a walk adds to the corpus, so that one lucky walk cannot crowd it.
const NOVEL_PER_WALK: usize = 4;
/// A walk that starts from the corpus takes between a quarter of this and 1.25 times it.
const CONTINUATION: usize = 32;
/// Most states the corpus holds; past it, new shapes are still counted but not kept.
const CORPUS_CAP: usize = 200_000;

/// States of new shapes that walks reached, each with the way there: the steps from the corpus
/// entry its walk started from (`parent`), or from the initial state.
struct Corpus<S, A> {
    shapes: std::collections::HashSet<u64>,
    /// Aspect → its index in `holders`.
    aspects: HashMap<u64, usize>,
    /// Per aspect, in the order aspects were first seen, the entries that show it.
    holders: Vec<Vec<usize>>,
    /// (state, parent entry, steps from the parent's state, depth from the initial state).
    entries: Vec<(S, Option<usize>, Vec<A>, usize)>,
}

impl<S: Clone, A: Clone> Corpus<S, A> {
    fn new() -> Self {
        Corpus {
            shapes: std::collections::HashSet::new(),
            aspects: HashMap::new(),
            holders: Vec::new(),
            entries: Vec::new(),
        }
    }

    /// The steps from the initial state to entry `at` (or none for the initial state).
    fn path(&self, at: Option<usize>) -> Vec<A> {
        let mut pieces = Vec::new();
        let mut at = at;
        while let Some(i) = at {
            let (_, parent, steps, _) = &self.entries[i];
            pieces.push(steps);
            at = *parent;
        }
        pieces.into_iter().rev().flatten().cloned().collect()
    }

    /// Takes in a finished walk's new shapes, in walk order, so that the corpus is the same for
    /// any thread count.
    fn absorb(&mut self, walk: &mut Walk<S, A>, aspects_of: Option<&AspectsOf<'_, S>>) {
        let base = self.depth(walk.start);
        let mut aspects = Vec::new();
        for (shape, state, at) in walk.novel.drain(..) {
            if self.shapes.insert(shape) && self.entries.len() < CORPUS_CAP {
                if let Some(f) = aspects_of {
                    aspects.clear();
                    f(&state, &mut aspects);
                    aspects.sort_unstable();
                    aspects.dedup();
                    for &a in &aspects {
                        let next = self.holders.len();
                        let at = *self.aspects.entry(a).or_insert(next);
                        if at == next {
                            self.holders.push(Vec::new());
                        }
                        self.holders[at].push(self.entries.len());
                    }
                }
                let steps = walk.actions[..at].to_vec();
                self.entries.push((state, walk.start, steps, base + at));
            }
        }
    }

    /// How many steps entry `at` is from the initial state.
    fn depth(&self, at: Option<usize>) -> usize {
        at.map_or(0, |i| self.entries[i].3)
    }
}

/// Runs the swarm, counting what its steps exercised when `observer` is given.
pub fn run<M>(
    model: &M,
    kinds: &Kinds<M::Action, M::State>,
    opts: &SwarmOptions,
    progress: &Progress,
    observer: Option<&Observer<M>>,
) -> SwarmResult<M>
where
    M: Model + Sync,
    M::State: Hash + Clone + Send + Sync,
    M::Action: Clone + Send + Sync + PartialEq,
{
    let start = Instant::now();
    let hll = Hll::new();
    let steps = AtomicU64::new(0);
    let deepest = AtomicU64::new(0);
    let out_of_time = || opts.timeout.is_some_and(|t| start.elapsed() >= t);
    let mut found: HashMap<&'static str, (u64, Vec<M::Action>)> = HashMap::new();
    let mut coverage = Coverage::default();
    let properties = model.properties();
    let mut corpus = Corpus::new();
    let run_walk = |w: u64, corpus: &Corpus<M::State, M::Action>, hll: &Hll| {
        walk(
            model,
            (kinds, observer),
            opts,
            w,
            (hll, corpus),
            &out_of_time,
        )
    };
    if let (Some(w), Some(_)) = (opts.walk, kinds.feature) {
        // Walk `w` may start from what the batches before its own, in its epoch, added to the
        // corpus: they run again (not counted) to rebuild it.
        let uncounted = Hll::new();
        let epoch = epoch_start(w / BATCH) * BATCH;
        for first in (epoch..w - w % BATCH).step_by(BATCH as usize) {
            let walks = batch(opts.threads, first..first + BATCH, &|w| {
                run_walk(w, &corpus, &uncounted)
            });
            for (_, mut walk) in walks {
                corpus.absorb(&mut walk, kinds.aspects);
            }
        }
    }
    let mut next = opts.walk.unwrap_or(0);
    let last = opts.walk.map(|w| w + 1).or(opts.walks);
    let stopped = loop {
        if last.is_some_and(|l| next >= l) {
            break Stop::Walks;
        }
        if out_of_time() {
            break Stop::Time;
        }
        if opts
            .max_states
            .is_some_and(|m| steps.load(Ordering::Relaxed) >= m)
        {
            break Stop::States;
        }
        if opts.walk.is_none()
            && next.is_multiple_of(BATCH)
            && epoch_start(next / BATCH) == next / BATCH
        {
            corpus = Corpus::new();
        }
        let end = last.map_or(next + BATCH, |l| l.min(next + BATCH));
        let walks = batch(opts.threads, next..end, &|w| run_walk(w, &corpus, &hll));
        for (w, mut walk) in walks {
            steps.fetch_add(walk.steps, Ordering::Relaxed);
            coverage.add(&walk.coverage);
            let depth = corpus.depth(walk.start) + walk.actions.len();
            deepest.fetch_max(depth as u64, Ordering::Relaxed);
            for &(name, at) in &walk.shown {
                found.entry(name).or_insert_with(|| {
                    let mut path = corpus.path(walk.start);
                    path.extend_from_slice(&walk.actions[..at]);
                    (w, path)
                });
            }
            corpus.absorb(&mut walk, kinds.aspects);
        }
        progress
            .states
            .store(steps.load(Ordering::Relaxed), Ordering::Relaxed);
        progress.unique.store(hll.estimate(), Ordering::Relaxed);
        next = end;
        let violated = properties
            .iter()
            .any(|p| p.expectation == Expectation::Always && found.contains_key(p.name));
        if violated {
            break Stop::Violation;
        }
    };
    progress.done.store(true, Ordering::Relaxed);
    let discoveries = shorten_all(model, found);
    SwarmResult {
        walks: next - opts.walk.unwrap_or(0),
        states: steps.load(Ordering::Relaxed),
        unique: hll.estimate(),
        max_depth: deepest.load(Ordering::Relaxed) as usize,
        stopped,
        discoveries,
        elapsed: start.elapsed(),
        coverage,
        corpus: corpus.entries.len() as u64,
    }
}

/// Batches in the shortest epoch: 131,072 walks, about nine seconds of a 5-server model on two
/// threads, a little more than a lucky corpus needs to reach a bug 26 steps deep.
const EPOCH_UNIT: u64 = 2048;

/// The i-th term (from 1) of Luby, Sinclair and Zuckerman's sequence 1, 1, 2, 1, 1, 2, 4, 1, ...
fn luby(mut i: u64) -> u64 {
    loop {
        let k = 64 - i.leading_zeros() as u64; // 2^(k-1) <= i < 2^k
        if i == (1 << k) - 1 {
            return 1 << (k - 1);
        }
        i -= (1 << (k - 1)) - 1;
    }
}

/// The first batch of the epoch that batch `b` belongs to. The corpus starts empty at each
/// epoch, and epochs last `EPOCH_UNIT` times Luby's sequence: a search whose corpus has
/// wandered off (every kept state past the point where the bug could still happen) starts
/// afresh, and a search that needs longer epochs gets them. Run times of such searches are
/// heavy-tailed (Gomes, Selman and Kautz, 1998: most seeds find a bug quickly, a few take
/// many times longer), and Luby's schedule is within a logarithmic factor of the best fixed
/// restart length for any distribution of them.
fn epoch_start(b: u64) -> u64 {
    let mut start = 0;
    let mut i = 1;
    loop {
        let end = start + EPOCH_UNIT * luby(i);
        if b < end {
            return start;
        }
        start = end;
        i += 1;
    }
}

/// Shortens what each property's walk found: to a state that violates an `always` property, or
/// that is an example of a `sometimes` one.
fn shorten_all<M>(
    model: &M,
    found: HashMap<&'static str, (u64, Vec<M::Action>)>,
) -> HashMap<&'static str, (u64, Vec<M::Action>)>
where
    M: Model,
    M::State: Hash + Clone,
    M::Action: Clone + PartialEq,
{
    let properties = model.properties();
    found
        .into_iter()
        .map(|(name, (w, actions))| {
            let p = properties
                .iter()
                .find(|p| p.name == name)
                .expect("a property");
            let actions = match p.expectation {
                Expectation::Always => shorten(model, &actions, &|s| !(p.condition)(model, s)),
                _ => shorten(model, &actions, &|s| (p.condition)(model, s)),
            };
            (name, (w, actions))
        })
        .collect()
}

/// Runs the walks of one batch on `threads` threads of its own, in walk order. Scoped threads,
/// not a rayon pool: a rayon worker that waits for another pool steals its own pool's work
/// meanwhile, so a suite running entries in parallel would finish a whole other entry before
/// this batch's result is looked at.
fn batch<S: Send, A: Send>(
    threads: usize,
    walks: std::ops::Range<u64>,
    run: &(dyn Fn(u64) -> Walk<S, A> + Sync),
) -> Vec<(u64, Walk<S, A>)> {
    let threads = (threads.max(1) as u64).min(walks.end - walks.start).max(1);
    let mut done: Vec<(u64, Walk<S, A>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let walks = walks.clone();
                s.spawn(move || {
                    walks
                        .filter(|w| w % threads == t)
                        .map(|w| (w, run(w)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a walk does not panic"))
            .collect()
    });
    done.sort_by_key(|(w, _)| *w);
    done
}

/// One walk: from the initial state, a weighted random enabled action at each step (an action
/// that changes nothing or leaves the bounds is not enabled), every property examined on every
/// state, until its depth or a state where nothing can happen.
fn walk<M>(
    model: &M,
    (kinds, observer): Lenses<M>,
    opts: &SwarmOptions,
    w: u64,
    (hll, corpus): (&Hll, &Corpus<M::State, M::Action>),
    out_of_time: &dyn Fn() -> bool,
) -> Walk<M::State, M::Action>
where
    M: Model,
    M::State: Hash + Clone,
    M::Action: Clone,
{
    let mut rng = Rng::new(opts.seed, w);
    let config = Config::draw(&mut rng, kinds.count, opts.max_depth);
    let properties = model.properties();
    let mut shown: Vec<(&'static str, usize)> = Vec::new();
    let examine = |s: &M::State, at: usize, shown: &mut Vec<(&'static str, usize)>| {
        for p in &properties {
            let shows = match p.expectation {
                Expectation::Always => !(p.condition)(model, s),
                Expectation::Sometimes => (p.condition)(model, s),
                Expectation::Eventually => false,
            };
            if shows && !shown.iter().any(|(n, _)| *n == p.name) {
                shown.push((p.name, at));
            }
        }
    };
    // Fifteen walks in sixteen start from a state of the corpus, when it has one: half of them
    // from one that shows an aspect drawn uniformly, the others from any state.
    let start = match corpus.entries.len() {
        0 => None,
        n => (rng.below(16) != 0).then(|| {
            let holders = match corpus.holders.len() {
                0 => None,
                a => (rng.below(2) == 0).then(|| &corpus.holders[rng.below(a as u64) as usize]),
            };
            match holders {
                Some(h) => h[newest_favoured(&mut rng, h.len())],
                None => newest_favoured(&mut rng, n),
            }
        }),
    };
    let initial = match start {
        Some(i) => Some(corpus.entries[i].0.clone()),
        None => model.init_states().into_iter().next(),
    };
    let mut novel = Vec::new();
    let Some(mut state) = initial else {
        return Walk {
            start,
            actions: Vec::new(),
            shown,
            steps: 0,
            coverage: Coverage::default(),
            novel,
        };
    };
    hll.add(fingerprint(&state));
    examine(&state, 0, &mut shown);
    let mut taken = Vec::new();
    let mut enabled = Vec::new();
    let mut coverage = Coverage::default();
    // A walk from the corpus is short: it is there to add a little to what an earlier walk
    // reached, and many short ones add more than a few long ones.
    let own = match start {
        Some(_) => CONTINUATION / 4 + rng.below(CONTINUATION as u64) as usize,
        None => config.depth,
    };
    let room = opts.max_depth.saturating_sub(corpus.depth(start)).min(own);
    let mut local_shapes = Vec::new();
    while taken.len() < room {
        if taken.len() % 1024 == 1023 && out_of_time() {
            break;
        }
        enabled.clear();
        model.actions(&state, &mut enabled);
        let Some((action, next)) = pick(model, &state, &enabled, &config, kinds, &mut rng) else {
            break;
        };
        let tag = tag_of(observer, &state, &action);
        observe(observer, tag, &state, &next, &mut coverage);
        state = next;
        taken.push(action);
        hll.add(fingerprint(&state));
        examine(&state, taken.len(), &mut shown);
        // A walk that has added its share to the corpus no longer computes shapes.
        let shape = kinds
            .feature
            .filter(|_| novel.len() < NOVEL_PER_WALK)
            .map(|f| f(&state));
        if let Some(shape) = shape {
            if !corpus.shapes.contains(&shape) && !local_shapes.contains(&shape) {
                local_shapes.push(shape);
                novel.push((shape, state.clone(), taken.len()));
            }
        }
        if shown.iter().any(|(n, _)| {
            properties
                .iter()
                .any(|p| p.name == *n && p.expectation == Expectation::Always)
        }) {
            break;
        }
    }
    Walk {
        start,
        steps: taken.len() as u64,
        actions: taken,
        shown,
        coverage,
        novel,
    }
}

/// An index below `n`, newer (higher) ones favoured: later generations of the corpus found
/// them. The square of a uniform draw, counted from the newest.
fn newest_favoured(rng: &mut Rng, n: usize) -> usize {
    let x = rng.below(n as u64) as u128;
    n - 1 - (x * x / n as u128) as usize
}

/// Draws actions by weight until one leads to a new state inside the bounds; actions of kinds
/// weighted 0 are taken only when nothing else can happen.
fn pick<M>(
    model: &M,
    state: &M::State,
    enabled: &[M::Action],
    config: &Config,
    kinds: &Kinds<M::Action, M::State>,
    rng: &mut Rng,
) -> Option<(M::Action, M::State)>
where
    M: Model,
    M::Action: Clone,
{
    // This walk's factor for one action: one in eight is held back (taken only when nothing
    // else can happen), the others are favoured 1 or 4 to 1.
    let factor = |a: &M::Action| match Rng::new(config.salt, (kinds.identity)(a)).below(8) {
        0 => 0,
        1..=3 => 1,
        _ => 4,
    };
    let weight = |a: &M::Action| config.weights[(kinds.of)(a)] * factor(a);
    let futile = |a: &M::Action| kinds.futile.is_some_and(|f| f(state, a));
    // (index into `enabled`, weight); the futile are never candidates.
    let weighed: Vec<(usize, u64)> = (enabled.iter().enumerate())
        .filter(|(_, a)| !futile(a))
        .map(|(i, a)| (i, weight(a)))
        .collect();
    for starved in [false, true] {
        let mut candidates: Vec<(usize, u64)> = (weighed.iter())
            .map(|&(i, w)| (i, if starved { 1 } else { w }))
            .filter(|&(_, w)| w > 0)
            .collect();
        while !candidates.is_empty() {
            let total: u64 = candidates.iter().map(|(_, w)| w).sum();
            let mut x = rng.below(total);
            let i = candidates
                .iter()
                .position(|(_, w)| {
                    if x < *w {
                        true
                    } else {
                        x -= w;
                        false
                    }
                })
                .expect("x < total");
            let (index, _) = candidates.swap_remove(i);
            let action = &enabled[index];
            if let Some(next) = model.next_state(state, action.clone()) {
                if model.within_boundary(&next) {
                    return Some((action.clone(), next));
                }
            }
        }
    }
    None
}

/// Replays `actions` from the initial state: the states it visits, or None if some action is
/// not enabled (changes nothing, or leaves the bounds) where it stands.
fn replay<M>(model: &M, actions: &[M::Action]) -> Option<Vec<M::State>>
where
    M: Model,
    M::State: Clone,
    M::Action: Clone + PartialEq,
{
    let mut state = model.init_states().into_iter().next()?;
    let mut states = vec![state.clone()];
    let mut enabled = Vec::new();
    for a in actions {
        enabled.clear();
        model.actions(&state, &mut enabled);
        if !enabled.contains(a) {
            return None;
        }
        state = model.next_state(&state, a.clone())?;
        if !model.within_boundary(&state) {
            return None;
        }
        states.push(state.clone());
    }
    Some(states)
}

/// Replays `actions` from the initial state leniently: an action that is not enabled where it
/// stands (its message was never sent, because a step before it was left out) is skipped. The
/// actions taken, up to the first state that `shows` the property; None if none does.
fn replay_showing<M>(
    model: &M,
    actions: &[M::Action],
    shows: &dyn Fn(&M::State) -> bool,
) -> Option<Vec<M::Action>>
where
    M: Model,
    M::Action: Clone + PartialEq,
{
    let mut state = model.init_states().into_iter().next()?;
    if shows(&state) {
        return Some(Vec::new());
    }
    let mut taken = Vec::new();
    let mut enabled = Vec::new();
    for a in actions {
        enabled.clear();
        model.actions(&state, &mut enabled);
        if !enabled.contains(a) {
            continue;
        }
        let Some(next) = model.next_state(&state, a.clone()) else {
            continue;
        };
        if !model.within_boundary(&next) {
            continue;
        }
        state = next;
        taken.push(a.clone());
        if shows(&state) {
            return Some(taken);
        }
    }
    None
}

/// Shortens a walk that ends in a state that `shows` a property: cuts every cycle (a state
/// visited twice), then leaves single steps, or pairs of steps, out while a lenient replay
/// still shows it, until nothing more can go. The replay skips what leaving a step out
/// disabled (the RequestVotes of a timeout left out, and their votes), so an election that
/// played no part goes as a whole, and it stops at the first state that shows the property.
/// The result is still a real run (every step enabled where it stands), but not necessarily a
/// shortest one.
fn shorten<M>(model: &M, actions: &[M::Action], shows: &dyn Fn(&M::State) -> bool) -> Vec<M::Action>
where
    M: Model,
    M::State: Hash + Clone,
    M::Action: Clone + PartialEq,
{
    let Some(mut path) = replay_showing(model, actions, shows) else {
        return actions.to_vec();
    };
    // Cycles: from each state, jump to its last visit.
    if let Some(states) = replay(model, &path) {
        let fps: Vec<Fingerprint> = states.iter().map(fingerprint).collect();
        let mut cut = Vec::new();
        let mut i = 0;
        while i < path.len() {
            let last = fps.iter().rposition(|f| *f == fps[i]).unwrap_or(i);
            if last > i {
                i = last;
                continue;
            }
            cut.push(path[i].clone());
            i += 1;
        }
        if let Some(shorter) = replay_showing(model, &cut, shows) {
            path = shorter;
        }
    }
    let try_without = |path: &mut Vec<M::Action>, left_out: &[usize]| {
        let kept: Vec<M::Action> = (path.iter().enumerate())
            .filter(|(i, _)| !left_out.contains(i))
            .map(|(_, a)| a.clone())
            .collect();
        match replay_showing(model, &kept, shows) {
            Some(shorter) if shorter.len() < path.len() => {
                *path = shorter;
                true
            }
            _ => false,
        }
    };
    // Single steps, then pairs (a step and one it enabled, when the lenient replay cannot tell),
    // until a pass removes nothing. Pairs are tried on paths of up to 80 steps.
    loop {
        let before = path.len();
        let mut i = path.len();
        while i > 0 {
            i -= 1;
            if i < path.len() {
                try_without(&mut path, &[i]);
            }
        }
        if path.len() == before && path.len() <= 80 {
            'pairs: for i in (0..path.len()).rev() {
                for j in (i + 1..path.len()).rev() {
                    if try_without(&mut path, &[i, j]) {
                        break 'pairs;
                    }
                }
            }
        }
        if path.len() == before {
            return path;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy model: `Up` raises x (and counts, so that no state repeats and no cycle can be
    /// cut), `Down` lowers x (only when x > 0), `Mark` sets y; the property shows when y is set
    /// and x is back at 0.
    struct UpDown;

    #[derive(Clone, Debug, PartialEq)]
    enum Step {
        Up,
        Down,
        Mark,
    }

    impl Model for UpDown {
        type State = (u32, u32, bool);
        type Action = Step;
        fn init_states(&self) -> Vec<Self::State> {
            vec![(0, 0, false)]
        }
        fn actions(&self, &(x, _, _): &Self::State, actions: &mut Vec<Step>) {
            actions.extend([Step::Up, Step::Mark]);
            if x > 0 {
                actions.push(Step::Down);
            }
        }
        fn next_state(&self, &(x, ups, y): &Self::State, step: Step) -> Option<Self::State> {
            Some(match step {
                Step::Up => (x + 1, ups + 1, y),
                Step::Down => (x - 1, ups, y),
                Step::Mark => (x, ups, true),
            })
        }
    }

    /// Forty-one rounds of Up then Down, then Mark: leaving out a Down alone leaves x raised,
    /// leaving out an Up alone disables its Down, and the path is too long for pairs. The
    /// lenient replay skips the disabled Down, so each round goes as a whole, down to the one
    /// step that matters. (Seen failing with a strict replay: 83 steps left.)
    #[test]
    fn shortening_leaves_out_a_step_with_what_it_enabled() {
        let mut path: Vec<Step> = (0..41).flat_map(|_| [Step::Up, Step::Down]).collect();
        path.push(Step::Mark);
        let shows = |&(x, _, y): &(u32, u32, bool)| y && x == 0;
        assert_eq!(shorten(&UpDown, &path, &shows), [Step::Mark]);
    }

    #[test]
    fn the_generator_is_the_same_on_every_machine() {
        let mut r = Rng::new(1, 0);
        let first: Vec<u64> = (0..3).map(|_| r.next()).collect();
        let mut again = Rng::new(1, 0);
        assert_eq!(first, (0..3).map(|_| again.next()).collect::<Vec<_>>());
        assert_ne!(
            first,
            (0..3).map(|_| Rng::new(1, 1).next()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn epochs_follow_lubys_sequence() {
        let terms: Vec<u64> = (1..=15).map(luby).collect();
        assert_eq!(terms, [1, 1, 2, 1, 1, 2, 4, 1, 1, 2, 1, 1, 2, 4, 8]);
        let u = EPOCH_UNIT;
        assert_eq!(epoch_start(0), 0);
        assert_eq!(epoch_start(u - 1), 0);
        assert_eq!(epoch_start(u), u);
        assert_eq!(epoch_start(2 * u), 2 * u);
        assert_eq!(epoch_start(4 * u - 1), 2 * u);
        assert_eq!(epoch_start(4 * u), 4 * u);
    }

    #[test]
    fn the_estimate_is_within_a_few_percent() {
        let hll = Hll::new();
        for i in 0..100_000u64 {
            hll.add(fingerprint(&i));
            hll.add(fingerprint(&i)); // repeats do not count
        }
        let e = hll.estimate() as f64;
        assert!((e - 100_000.0).abs() < 3_000.0, "{e}");
    }
}

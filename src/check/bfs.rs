//! A level-synchronous, parallel breadth-first search over any stateright `Model`.
//!
//! Why not stateright's own BFS: in 0.31 it can overwrite a discovery with a longer path, and it
//! keeps a path vector with every frontier state. Here every level is finished before the next
//! starts, so the first level that shows a property's discovery gives a shortest trace. Ties are
//! broken by fingerprint (the state that shows it, and each parent, is the smallest of its level),
//! so the trace is the same on every run and thread count. Visited states cost one
//! fingerprint → (parent, level) entry; only two levels of full states are held at once.

use crate::check::coverage::{observe, tag_of, Coverage, Observer};
use crate::check::liveness::{Edge, Expansion, Graph, LevelRecord, Recording};
use rayon::prelude::*;
use stateright::{Expectation, Model};
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use crate::model::fingerprint::{fingerprint, hasher, Fingerprint};

/// Fingerprints are already uniformly spread: use them as their own hash (also the DFS's).
#[derive(Default)]
pub(crate) struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 keys are hashed")
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// How a visited state was first reached: from the state with the smallest fingerprint among
/// those of the level before that reach it, so traces do not depend on thread timing.
#[derive(Clone, Copy)]
struct Discovery {
    parent: Fingerprint,
    /// Its BFS level; 0 for an initial state.
    level: u32,
    /// Its index in the recorded graph (dense, in order of discovery).
    index: u32,
}

type Visited = HashMap<Fingerprint, Discovery, BuildHasherDefault<IdentityHasher>>;
const SHARDS: usize = 64;

/// What bounds a search, and how many threads run it; a search cut by a limit is incomplete
/// (`Stop`), so its verdicts are unknown.
#[derive(Clone, Debug, Default)]
pub struct Limits {
    /// Paths of at most this many steps: states at this level are examined but not expanded.
    pub max_depth: Option<usize>,
    /// Stop once this many distinct states have been visited.
    pub max_states: Option<usize>,
    /// Stop once the search has run this long.
    pub timeout: Option<Duration>,
    /// Stop (incomplete) rather than let the search be killed for lack of memory.
    pub max_memory_bytes: Option<u64>,
    /// Worker threads that expand each level (at least 1 is used).
    pub threads: usize,
}

/// Why a search ended before it had visited every reachable state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// `Limits::max_depth` was reached: deeper states were not explored.
    Depth,
    /// `Limits::max_states` was reached.
    States,
    /// `Limits::timeout` was reached.
    Time,
    /// Resident memory reached `Limits::max_memory_bytes`.
    Memory,
    /// An `always` or `eventually` property was violated: the search stopped after that level.
    Violation,
    /// A random search ran the walks it was asked for (`--walks`).
    Walks,
}

impl Stop {
    /// The reason in words, for the report's `incomplete: stopped at ...` line.
    pub fn describe(self) -> &'static str {
        match self {
            Stop::Depth => "the depth limit",
            Stop::States => "the state limit",
            Stop::Time => "the time limit",
            Stop::Memory => "the memory limit",
            Stop::Violation => "the first violation",
            Stop::Walks => "the walk limit",
        }
    }

    fn code(self) -> u8 {
        self as u8 + 1
    }

    fn from_code(code: u8) -> Option<Stop> {
        [
            Stop::Depth,
            Stop::States,
            Stop::Time,
            Stop::Memory,
            Stop::Violation,
            Stop::Walks,
        ]
        .get((code as usize).checked_sub(1)?)
        .copied()
    }
}

/// Resident memory of this process (Linux), from /proc/self/statm.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Maps a state to the fingerprint of the representative of its symmetry class (see
/// `crate::check::symmetry`).
pub type Symmetry<S> = fn(&S) -> Fingerprint;

/// Live counters a progress printer can read while the search runs.
#[derive(Default)]
pub struct Progress {
    /// States generated so far, counting each time one is reached again.
    pub states: AtomicU64,
    /// Distinct states (symmetry classes, with symmetry) visited so far.
    pub unique: AtomicU64,
    /// The level being expanded.
    pub depth: AtomicUsize,
    /// Set when the search ends, so the progress printer stops.
    pub done: AtomicBool,
}

/// What a search found and how far it got; the runner puts stateright's DFS and simulation results
/// in the same shape.
pub struct BfsResult<M: Model> {
    /// States generated, counting each time one is reached again.
    pub states: u64,
    /// Distinct states visited (with symmetry, distinct classes).
    pub unique: u64,
    /// The deepest level reached: steps from an initial state to the farthest state visited.
    pub max_depth: usize,
    /// Wall-clock time the search took.
    pub elapsed: Duration,
    /// True when every reachable state within the model's boundary was visited.
    pub complete: bool,
    /// Why the search ended early, when it did.
    pub stopped: Option<Stop>,
    /// Property name → shortest path (as actions from the initial state).
    pub discoveries: HashMap<&'static str, Vec<M::Action>>,
    /// The explored graph, when it was recorded (`check_recording`).
    pub graph: Option<Graph>,
    /// What the transitions the search took exercised (zero without an observer).
    pub coverage: Coverage,
}

/// One BFS level of states and their fingerprints, in fixed-size chunks: a level grows to
/// hundreds of MB, and chunks are filled in place where one vector would be copied each time
/// it outgrew its allocation, and again when the threads' parts are joined.
struct Level<S> {
    chunks: Vec<Vec<(S, Fingerprint, u32)>>,
}

impl<S> Default for Level<S> {
    fn default() -> Self {
        Level { chunks: Vec::new() }
    }
}

impl<S> Level<S> {
    /// Small chunks measured faster than large ones (1024 states): the allocator recycles
    /// their memory rather than faulting in fresh pages.
    const CHUNK: usize = 64;

    fn push(&mut self, state: S, fp: Fingerprint, index: u32) {
        match self.chunks.last_mut() {
            Some(chunk) if chunk.len() < Self::CHUNK => chunk.push((state, fp, index)),
            _ => {
                let mut chunk = Vec::with_capacity(Self::CHUNK);
                chunk.push((state, fp, index));
                self.chunks.push(chunk);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }
}

/// Runs the search. It stops early, at the end of the level where it happens, once an `always`
/// or `eventually` property is violated (the traces found at that level are all shortest).
pub fn check<M>(
    model: &M,
    limits: &Limits,
    symmetry: Option<Symmetry<M::State>>,
    progress: &Progress,
) -> BfsResult<M>
where
    M: Model + Sync,
    M::State: Hash + Clone + Send + Sync + 'static,
    M::Action: Clone + Send,
{
    check_recording(model, limits, symmetry, progress, None, None)
}

/// `check`, recording the explored graph for the liveness pass (`crate::check::liveness`) when
/// `recording` says how, and counting what its transitions exercised when `observer` is given.
pub fn check_recording<M>(
    model: &M,
    limits: &Limits,
    symmetry: Option<Symmetry<M::State>>,
    progress: &Progress,
    recording: Option<&Recording<M>>,
    observer: Option<&Observer<M>>,
) -> BfsResult<M>
where
    M: Model + Sync,
    M::State: Hash + Clone + Send + Sync + 'static,
    M::Action: Clone + Send,
{
    in_pool(limits.threads, || {
        run(model, limits, symmetry, progress, (recording, observer))
    })
}

/// Runs `f` on a pool of `threads` threads of its own (at least one).
fn in_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .expect("thread pool");
    pool.install(f)
}

fn run<M>(
    model: &M,
    limits: &Limits,
    symmetry: Option<Symmetry<M::State>>,
    progress: &Progress,
    (recording, observer): (Option<&Recording<M>>, Option<&Observer<M>>),
) -> BfsResult<M>
where
    M: Model + Sync,
    M::State: Hash + Clone + Send + Sync + 'static,
    M::Action: Clone + Send,
{
    let mut search = Search::new(model, limits, symmetry, progress, recording);
    search.observer = observer;
    let (mut frontier, initial_found) = search.seed();
    let mut depth = 0;
    let mut stopped = None;
    if search.record(initial_found) {
        stopped = Some(Stop::Violation);
        frontier = Level::default();
    }
    while !frontier.is_empty() {
        progress.depth.store(depth, Ordering::Relaxed);
        if limits.max_depth.is_some_and(|d| depth >= d) {
            stopped = Some(Stop::Depth);
            break;
        }
        if let Some(stop) = search.over_limit() {
            stopped = Some(stop);
            break;
        }
        let (next, level_found, record, coverage) =
            search.expand(std::mem::take(&mut frontier), depth as u32 + 1);
        search.coverage.add(&coverage);
        if let Some(stop) = Stop::from_code(search.cut.load(Ordering::Relaxed)) {
            stopped = Some(stop);
            break;
        }
        if let Some(graph) = &mut search.graph {
            graph.merge(record);
        }
        let failed = search.record(level_found);
        frontier = next;
        if !frontier.is_empty() {
            depth += 1;
        }
        if failed {
            stopped = Some(Stop::Violation);
            break;
        }
    }
    search.finish(frontier, depth, stopped)
}

/// Property name → fingerprint of the state that shows it (the smallest, at the first level).
type Found = HashMap<&'static str, Fingerprint>;

/// Keeps the smaller fingerprint for `name`, so that what a level found does not depend on
/// which thread saw it first.
fn keep_smallest(found: &mut Found, name: &'static str, fp: Fingerprint) {
    let best = found.entry(name).or_insert(fp);
    *best = (*best).min(fp);
}

/// One search in progress: the model, its properties, the visited set, the limits, and what has
/// been found so far. Its methods are the phases of a search: seed the first level, expand a
/// level into the next, record what a level showed, and finish with shortest paths.
struct Search<'a, M: Model> {
    model: &'a M,
    limits: &'a Limits,
    properties: Vec<stateright::Property<M>>,
    symmetry: Option<Symmetry<M::State>>,
    visited: Vec<Mutex<Visited>>,
    progress: &'a Progress,
    start: Instant,
    /// Set (to a `Stop` code) when a limit is hit in the middle of a level.
    cut: AtomicU8,
    found: Found,
    /// How to record the graph, when the liveness pass wants it.
    recording: Option<&'a Recording<'a, M>>,
    /// The graph recorded so far.
    graph: Option<Graph>,
    /// The next state's index in the graph.
    next_index: AtomicU32,
    /// How to count what transitions exercised, when the caller wants it.
    observer: Option<&'a Observer<'a, M>>,
    /// What the levels expanded so far exercised.
    coverage: Coverage,
}

impl<'a, M> Search<'a, M>
where
    M: Model + Sync,
    M::State: Hash + Clone + Send + Sync + 'static,
    M::Action: Clone + Send,
{
    fn new(
        model: &'a M,
        limits: &'a Limits,
        symmetry: Option<Symmetry<M::State>>,
        progress: &'a Progress,
        recording: Option<&'a Recording<'a, M>>,
    ) -> Self {
        Search {
            recording,
            graph: recording.map(|r| Graph::new(r.classes)),
            next_index: AtomicU32::new(0),
            model,
            limits,
            properties: model.properties(),
            symmetry,
            visited: (0..SHARDS).map(|_| Mutex::default()).collect(),
            progress,
            start: Instant::now(),
            cut: AtomicU8::new(0),
            found: HashMap::new(),
            observer: None,
            coverage: Coverage::default(),
        }
    }

    /// States are deduplicated by the fingerprint of their representative; the frontier keeps
    /// whichever renaming it met first, and traces are replayed by fingerprint (`reconstruct`).
    fn key(&self, s: &M::State) -> Fingerprint {
        match self.symmetry {
            Some(canonical_fingerprint) => canonical_fingerprint(s),
            None => fingerprint(s),
        }
    }

    fn shard(&self, fp: Fingerprint) -> &Mutex<Visited> {
        &self.visited[(fp >> 58) as usize % SHARDS]
    }

    /// The limit (time, states, memory) the search has reached, if any.
    fn over_limit(&self) -> Option<Stop> {
        let limits = self.limits;
        let unique = self.progress.unique.load(Ordering::Relaxed) as usize;
        if limits.timeout.is_some_and(|t| self.start.elapsed() >= t) {
            Some(Stop::Time)
        } else if limits.max_states.is_some_and(|m| unique >= m) {
            Some(Stop::States)
        } else if limits
            .max_memory_bytes
            .is_some_and(|m| resident_bytes().is_some_and(|r| r >= m))
        {
            Some(Stop::Memory)
        } else {
            None
        }
    }

    /// The properties nothing has shown yet.
    fn pending(&self) -> Vec<&'static str> {
        self.properties
            .iter()
            .map(|p| p.name)
            .filter(|n| !self.found.contains_key(n))
            .collect()
    }

    /// `always` and `sometimes` are examined once per state, when it is discovered: a level
    /// that shows a violation is the last one generated, and is never expanded.
    fn examine(&self, pending: &[&'static str], state: &M::State, fp: Fingerprint, to: &mut Found) {
        for p in self.properties.iter().filter(|p| pending.contains(&p.name)) {
            let shows = match p.expectation {
                Expectation::Always => !(p.condition)(self.model, state),
                Expectation::Sometimes => (p.condition)(self.model, state),
                Expectation::Eventually => false,
            };
            if shows {
                keep_smallest(to, p.name, fp);
            }
        }
    }

    /// `eventually`: violated at a terminal state where the condition does not hold. Exact for
    /// conditions over monotone ghost history (ours), which hold at the end of a path iff they
    /// held somewhere along it.
    fn examine_terminal(
        &self,
        pending: &[&'static str],
        state: &M::State,
        fp: Fingerprint,
        to: &mut Found,
    ) {
        for p in self.properties.iter().filter(|p| pending.contains(&p.name)) {
            if p.expectation == Expectation::Eventually && !(p.condition)(self.model, state) {
                keep_smallest(to, p.name, fp);
            }
        }
    }

    /// Records what a level showed; true when it violated an `always` or `eventually` property.
    fn record(&mut self, level_found: Found) -> bool {
        let mut failed = false;
        for (name, fp) in level_found {
            let p = self.properties.iter().find(|p| p.name == name).unwrap();
            failed |= p.expectation != Expectation::Sometimes;
            self.found.insert(name, fp);
        }
        failed
    }

    /// The first level: the initial states within the model's boundary.
    fn seed(&mut self) -> (Level<M::State>, Found) {
        let mut frontier = Level::default();
        let mut record = LevelRecord::default();
        let mut initial = Vec::new();
        let mut found = HashMap::new();
        let pending = self.pending();
        for s in self.model.init_states() {
            if !self.model.within_boundary(&s) {
                continue;
            }
            let fp = self.key(&s);
            self.progress.states.fetch_add(1, Ordering::Relaxed);
            let mut v = self.shard(fp).lock().unwrap();
            if let Entry::Vacant(e) = v.entry(fp) {
                let index = self.next_index.fetch_add(1, Ordering::Relaxed);
                e.insert(Discovery {
                    parent: 0,
                    level: 0,
                    index,
                });
                drop(v);
                self.progress.unique.fetch_add(1, Ordering::Relaxed);
                self.examine(&pending, &s, fp, &mut found);
                if let Some(r) = self.recording {
                    record.discovered.push((index, fp, (r.goals)(&s)));
                    initial.push(index);
                }
                frontier.push(s, fp, index);
            }
        }
        if let Some(graph) = &mut self.graph {
            graph.merge(record);
            graph.initial = initial;
        }
        (frontier, found)
    }

    /// Expands every state of `frontier` in parallel into the states of `level` not seen before,
    /// and what they showed (and, when recording, the graph's part of this level). Each state is
    /// dropped as soon as it is expanded, so the memory it frees serves the states generated
    /// next (fewer fresh pages to fault in, lower peak).
    fn expand(
        &self,
        frontier: Level<M::State>,
        level: u32,
    ) -> (Level<M::State>, Found, LevelRecord, Coverage) {
        let pending = self.pending();
        frontier
            .chunks
            .into_par_iter()
            .flat_map_iter(|chunk| chunk.into_iter())
            .fold(
                || {
                    let to = (
                        Level::default(),
                        Found::new(),
                        LevelRecord::default(),
                        Coverage::default(),
                    );
                    (to, Vec::new())
                },
                |(mut to, mut actions), (state, fp, index)| {
                    if self.cut.load(Ordering::Relaxed) != 0 {
                        return (to, actions);
                    }
                    if fp & 0x3ff == 0 {
                        if let Some(stop) = self.over_limit() {
                            self.cut.store(stop.code(), Ordering::Relaxed);
                            return (to, actions);
                        }
                    }
                    let step = Step {
                        pending: &pending,
                        level,
                        next: &mut to.0,
                        found: &mut to.1,
                        record: &mut to.2,
                        coverage: &mut to.3,
                    };
                    self.expand_state(state, (fp, index), &mut actions, step);
                    (to, actions)
                },
            )
            .map(|(to, _)| to)
            .reduce(
                || {
                    let none = (Level::default(), HashMap::new(), LevelRecord::default());
                    (none.0, none.1, none.2, Coverage::default())
                },
                |(mut a, mut fa, mut ra, mut ca), (b, fb, rb, cb)| {
                    a.chunks.extend(b.chunks);
                    for (name, fp) in fb {
                        keep_smallest(&mut fa, name, fp);
                    }
                    ra.join(rb);
                    ca.add(&cb);
                    (a, fa, ra, ca)
                },
            )
    }

    /// Generates the successors of one state: a new one joins the next level (and is examined);
    /// one seen before at the same level may get a smaller parent, so traces do not depend on
    /// thread timing. When recording, every transition becomes an edge and the state's enabled
    /// fairness classes are noted, including those whose successors fall outside the bounds.
    fn expand_state(
        &self,
        state: M::State,
        (fp, index): (Fingerprint, u32),
        actions: &mut Vec<M::Action>,
        to: Step<'_, M::State>,
    ) {
        let model = self.model;
        let mut terminal = true;
        let mut expansion = Expansion::default();
        model.actions(&state, actions);
        for action in actions.drain(..) {
            let fairness = self.recording.map(|r| (r.classify)(&state, &action));
            let tag = tag_of(self.observer, &state, &action);
            let Some(succ) = model.next_state(&state, action) else {
                continue;
            };
            let inside = model.within_boundary(&succ);
            if let Some(f) = fairness {
                expansion.note(f, inside);
            }
            if !inside {
                continue;
            }
            observe(self.observer, tag, &state, &succ, to.coverage);
            terminal = false;
            self.progress.states.fetch_add(1, Ordering::Relaxed);
            let sfp = self.key(&succ);
            let mut v = self.shard(sfp).lock().unwrap();
            let dst = match v.entry(sfp) {
                Entry::Vacant(e) => {
                    let dst = self.next_index.fetch_add(1, Ordering::Relaxed);
                    e.insert(Discovery {
                        parent: fp,
                        level: to.level,
                        index: dst,
                    });
                    drop(v);
                    self.progress.unique.fetch_add(1, Ordering::Relaxed);
                    self.examine(to.pending, &succ, sfp, to.found);
                    if let Some(r) = self.recording {
                        to.record.discovered.push((dst, sfp, (r.goals)(&succ)));
                    }
                    to.next.push(succ, sfp, dst);
                    dst
                }
                Entry::Occupied(mut e) => {
                    let first = e.get_mut();
                    if first.level == to.level && fp < first.parent {
                        first.parent = fp;
                    }
                    first.index
                }
            };
            if let Some(f) = fairness {
                let class = f.code();
                to.record.edges.push(Edge {
                    src: index,
                    dst,
                    class,
                });
            }
        }
        if self.recording.is_some() {
            to.record.expanded.push((index, expansion));
        }
        if terminal {
            self.examine_terminal(to.pending, &state, fp, to.found);
        }
    }

    /// Rebuilds a shortest path for each discovery and hands back the figures.
    fn finish(
        self,
        frontier: Level<M::State>,
        depth: usize,
        stopped: Option<Stop>,
    ) -> BfsResult<M> {
        self.progress.done.store(true, Ordering::Relaxed);
        let key = |s: &M::State| self.key(s);
        let lookup = |fp: Fingerprint| *self.shard(fp).lock().unwrap().get(&fp).unwrap();
        let discoveries = self
            .found
            .iter()
            .map(|(&name, &fp)| (name, reconstruct(self.model, fp, &key, &lookup)))
            .collect();
        let elapsed = self.start.elapsed();
        let progress = self.progress;
        // Freeing the last level of states and the visited set takes a while: a thread of its
        // own does it, so the report, and the process's exit, need not wait.
        let visited = self.visited;
        std::thread::spawn(move || drop((frontier, visited)));
        BfsResult {
            states: progress.states.load(Ordering::Relaxed),
            unique: progress.unique.load(Ordering::Relaxed),
            max_depth: depth,
            elapsed,
            complete: stopped.is_none(),
            stopped,
            discoveries,
            graph: self.graph,
            coverage: self.coverage,
        }
    }
}

/// Where one expanded state's successors go: the level they belong to, the properties still
/// pending, and this thread's part of the next level and of what it showed.
struct Step<'s, S> {
    pending: &'s [&'static str],
    level: u32,
    next: &'s mut Level<S>,
    found: &'s mut Found,
    record: &'s mut LevelRecord,
    coverage: &'s mut Coverage,
}

/// Follows parent links back to an initial state, then replays the path forward (`replay`).
fn reconstruct<M>(
    model: &M,
    target: Fingerprint,
    key: &dyn Fn(&M::State) -> Fingerprint,
    lookup: &dyn Fn(Fingerprint) -> Discovery,
) -> Vec<M::Action>
where
    M: Model,
    M::State: Hash + Clone,
    M::Action: Clone,
{
    let mut chain = vec![target];
    loop {
        let found = lookup(*chain.last().unwrap());
        if found.level == 0 {
            break;
        }
        chain.push(found.parent);
    }
    chain.reverse();
    replay(model, key, &chain)
}

/// The actions of a path given by the fingerprints of its states (the first an initial
/// state's): at each step, the first action that leads to the next fingerprint. (With symmetry,
/// the state replayed may be another renaming than the one the search held, so the action is
/// found again by fingerprint.)
pub fn replay<M>(
    model: &M,
    key: &dyn Fn(&M::State) -> Fingerprint,
    chain: &[Fingerprint],
) -> Vec<M::Action>
where
    M: Model,
    M::State: Hash + Clone,
    M::Action: Clone,
{
    replay_preferring(model, key, chain, &|_, _| true)
}

/// `replay`, taking at each step an action that `prefer`s when several lead to the same state
/// (a delivery that changes nothing leads where a loss of the same message does: a liveness
/// cycle must show the delivery, a fair step, not the loss, a fault).
pub fn replay_preferring<M>(
    model: &M,
    key: &dyn Fn(&M::State) -> Fingerprint,
    chain: &[Fingerprint],
    prefer: &dyn Fn(&M::State, &M::Action) -> bool,
) -> Vec<M::Action>
where
    M: Model,
    M::State: Hash + Clone,
    M::Action: Clone,
{
    let mut state = model
        .init_states()
        .into_iter()
        .find(|s| key(s) == chain[0])
        .expect("the path starts at an initial state");
    let mut path = Vec::new();
    let mut actions = Vec::new();
    for &fp in &chain[1..] {
        actions.clear();
        model.actions(&state, &mut actions);
        let mut leading = actions.drain(..).filter_map(|a| {
            let next = model.next_state(&state, a.clone())?;
            (model.within_boundary(&next) && key(&next) == fp).then_some((a, next))
        });
        let first = leading.next().expect("a recorded step replays");
        let (action, next) = match prefer(&state, &first.0) {
            true => first,
            false => leading.find(|(a, _)| prefer(&state, a)).unwrap_or(first),
        };
        state = next;
        path.push(action);
    }
    path
}

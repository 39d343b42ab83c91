//! A depth-first search over any stateright `Model`: this crate's own, single-threaded (the
//! `--threads` option does not apply to it).
//!
//! Why not stateright's DFS: in 0.31 it honours no memory limit, overshoots its timeout, and keeps
//! a path vector with every pending state. Here the stack is explicit (no recursion), and holds
//! per frame only a state and its actions (an index marks those not yet taken): the current stack
//! *is* the path to the state on top, so a discovery's trace is read off it when the property is
//! first shown, and no path is kept for any other state. Visited states cost one fingerprint (and,
//! under a depth limit, the depth they were reached at). Its traces need not be shortest: use BFS
//! for those.
//!
//! It honours every field of [`Limits`] but `threads`: the depth limit (a state at the limit is
//! examined but not expanded; a state first reached deep and later reached shallower is expanded
//! again, so every path of up to `max_depth` steps is checked), the number of unique states, the
//! time (looked at every 16 steps), and the resident memory (every 1024 steps, or 5 ms). `always` and `sometimes`
//! properties are examined on every newly visited state as the BFS does, and `eventually` at
//! terminal states; the search stops at the first `always` or `eventually` violation.

use crate::check::bfs::{
    fingerprint, resident_bytes, BfsResult, Fingerprint, IdentityHasher, Limits, Progress, Stop,
    Symmetry,
};
use crate::check::coverage::{observe, tag_of, Coverage, Observer};
use stateright::{Expectation, Model};
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hash};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Steps between two looks at the clock: cheap, and a step can be slow (a model without a bound
/// on messages in flight makes states, and so steps, grow with the depth).
const CLOCK_EVERY: u64 = 16;
/// Steps between two looks at the resident memory (a read of /proc) ...
const MEMORY_EVERY: u64 = 1024;
/// ... or less, when this much time has passed since the last: large states can fill much memory
/// in 1024 steps.
const MEMORY_INTERVAL: Duration = Duration::from_millis(5);

type Hasher = BuildHasherDefault<IdentityHasher>;

/// The states visited so far. Under a depth limit each keeps the least depth it was reached at,
/// so that a state first reached near the limit is expanded again when reached by a shorter path
/// (stateright 0.31's DFS misses states that way); without one a set of fingerprints suffices.
enum Visited {
    Set(HashSet<Fingerprint, Hasher>),
    Depths(HashMap<Fingerprint, u32, Hasher>),
}

/// What a search makes of a state it reaches.
#[derive(PartialEq, Eq)]
enum Visit {
    /// Never seen before: examine it, count it, expand it.
    New,
    /// Seen before, but deeper: expand it again from here (depth-limited searches only).
    Shallower,
    /// Seen before at this depth or less: nothing to do.
    Seen,
}

impl Visited {
    fn new(depth_limited: bool) -> Self {
        match depth_limited {
            true => Visited::Depths(HashMap::default()),
            false => Visited::Set(HashSet::default()),
        }
    }

    fn contains(&self, fp: Fingerprint) -> bool {
        match self {
            Visited::Set(set) => set.contains(&fp),
            Visited::Depths(map) => map.contains_key(&fp),
        }
    }

    /// What reaching `fp` at `depth` means, without recording it.
    fn status(&self, fp: Fingerprint, depth: u32) -> Visit {
        match self {
            Visited::Set(set) if set.contains(&fp) => Visit::Seen,
            Visited::Depths(map) => match map.get(&fp) {
                Some(&d) if d <= depth => Visit::Seen,
                Some(_) => Visit::Shallower,
                None => Visit::New,
            },
            Visited::Set(_) => Visit::New,
        }
    }

    fn record(&mut self, fp: Fingerprint, depth: u32) {
        match self {
            Visited::Set(set) => {
                set.insert(fp);
            }
            Visited::Depths(map) => match map.entry(fp) {
                Entry::Occupied(mut e) => *e.get_mut() = (*e.get()).min(depth),
                Entry::Vacant(e) => {
                    e.insert(depth);
                }
            },
        }
    }
}

/// One state on the stack: the state, its actions, and how many of them have been taken. The
/// last one taken (`actions[next - 1]`) is the step to the frame above it.
struct Frame<S, A> {
    state: S,
    actions: Vec<A>,
    next: usize,
    /// Whether some action led to a successor within the model's boundary (else it is terminal).
    successors: bool,
}

/// Runs the search from each initial state in turn, and returns what it found in the BFS's shape
/// (`graph` is always `None`: liveness is not checked on a DFS).
pub fn check<M>(
    model: &M,
    limits: &Limits,
    symmetry: Option<Symmetry<M::State>>,
    progress: &Progress,
) -> BfsResult<M>
where
    M: Model,
    M::State: Hash + Send + 'static,
    M::Action: Clone + Send + 'static,
{
    check_observing(model, limits, symmetry, progress, None)
}

/// `check`, counting what the transitions it explores exercised when `observer` is given.
pub fn check_observing<M>(
    model: &M,
    limits: &Limits,
    symmetry: Option<Symmetry<M::State>>,
    progress: &Progress,
    observer: Option<&Observer<M>>,
) -> BfsResult<M>
where
    M: Model,
    M::State: Hash + Send + 'static,
    M::Action: Clone + Send + 'static,
{
    let mut search = Dfs {
        observer,
        coverage: Coverage::default(),
        model,
        limits,
        properties: model.properties(),
        symmetry,
        progress,
        start: Instant::now(),
        visited: Visited::new(limits.max_depth.is_some()),
        stack: Vec::new(),
        found: HashMap::new(),
        max_depth: 0,
        cut: false,
        steps: 0,
        memory_read: (0, Duration::ZERO),
    };
    let mut stopped = None;
    for init in model.init_states() {
        if !model.within_boundary(&init) {
            continue;
        }
        progress.states.fetch_add(1, Ordering::Relaxed);
        stopped = search.reach(init).err().or_else(|| search.run().err());
        if stopped.is_some() {
            break;
        }
    }
    if stopped.is_none() && search.cut {
        stopped = Some(Stop::Depth);
    }
    search.finish(stopped)
}

/// One search in progress: the stack (the path to the state being expanded), the visited set,
/// what has been found so far, and the limits.
struct Dfs<'a, M: Model> {
    model: &'a M,
    limits: &'a Limits,
    properties: Vec<stateright::Property<M>>,
    symmetry: Option<Symmetry<M::State>>,
    progress: &'a Progress,
    start: Instant,
    visited: Visited,
    stack: Vec<Frame<M::State, M::Action>>,
    /// Property name → the path (actions from an initial state) that first showed it.
    found: HashMap<&'static str, Vec<M::Action>>,
    /// The deepest state visited, in steps from an initial state.
    max_depth: usize,
    /// Whether a state at the depth limit had a successor not visited when it was reached.
    cut: bool,
    /// Steps taken (actions tried), to look at the clock and memory every so many.
    steps: u64,
    /// When the resident memory was last read: after how many steps, and how long into the run.
    memory_read: (u64, Duration),
    /// How to count what transitions exercised, when the caller wants it.
    observer: Option<&'a Observer<'a, M>>,
    /// What the transitions explored so far exercised.
    coverage: Coverage,
}

impl<M> Dfs<'_, M>
where
    M: Model,
    M::State: Hash + Send + 'static,
    M::Action: Clone + Send + 'static,
{
    /// States are deduplicated by the fingerprint of their representative (with symmetry); the
    /// stack holds whichever renaming was reached, so the path on it replays as it is.
    fn key(&self, s: &M::State) -> Fingerprint {
        match self.symmetry {
            Some(canonical_fingerprint) => canonical_fingerprint(s),
            None => fingerprint(s),
        }
    }

    /// The actions from an initial state to the state the last action taken leads to (the top
    /// frame's last action is included: it leads to the state being visited).
    fn path(&self) -> Vec<M::Action> {
        self.stack
            .iter()
            .map(|f| f.actions[f.next - 1].clone())
            .collect()
    }

    /// Expands the state on top of the stack, one action at a time, until the stack is empty or
    /// a limit or a violation stops the search.
    fn run(&mut self) -> Result<(), Stop> {
        let model = self.model;
        while !self.stack.is_empty() {
            self.steps += 1;
            if self.steps.is_multiple_of(CLOCK_EVERY) {
                self.progress
                    .depth
                    .store(self.stack.len() - 1, Ordering::Relaxed);
                self.over_limit()?;
            }
            let top = self.stack.last_mut().expect("a frame");
            if top.next == top.actions.len() {
                let frame = self.stack.pop().expect("a frame");
                if !frame.successors {
                    self.examine_eventually(&frame.state)?;
                }
                continue;
            }
            let action = top.actions[top.next].clone();
            top.next += 1;
            let tag = tag_of(self.observer, &top.state, &action);
            let Some(succ) = model.next_state(&top.state, action) else {
                continue;
            };
            if !model.within_boundary(&succ) {
                continue;
            }
            top.successors = true;
            observe(self.observer, tag, &top.state, &succ, &mut self.coverage);
            self.progress.states.fetch_add(1, Ordering::Relaxed);
            self.reach(succ)?;
        }
        Ok(())
    }

    /// Visits a state reached by the last action taken on the stack, or an initial state (the
    /// stack is then empty): a new state is counted and examined, and pushed to be expanded
    /// unless it lies at the depth limit.
    fn reach(&mut self, state: M::State) -> Result<(), Stop> {
        let depth = self.stack.len();
        let fp = self.key(&state);
        match self.visited.status(fp, depth as u32) {
            Visit::Seen => return Ok(()),
            Visit::Shallower => {}
            Visit::New => {
                let unique = self.progress.unique.load(Ordering::Relaxed) as usize;
                if self.limits.max_states.is_some_and(|m| unique >= m) {
                    return Err(Stop::States);
                }
                self.progress.unique.fetch_add(1, Ordering::Relaxed);
                self.max_depth = self.max_depth.max(depth);
                self.examine(&state)?;
            }
        }
        self.visited.record(fp, depth as u32);
        let mut actions = Vec::new();
        self.model.actions(&state, &mut actions);
        if self.limits.max_depth.is_some_and(|d| depth >= d) {
            return self.at_limit(&state, actions);
        }
        self.stack.push(Frame {
            state,
            actions,
            next: 0,
            successors: false,
        });
        Ok(())
    }

    /// A state at the depth limit is not expanded: the search is cut there (incomplete) if it
    /// has a successor not visited yet; one without successors is terminal.
    fn at_limit(&mut self, state: &M::State, actions: Vec<M::Action>) -> Result<(), Stop> {
        let eventually = |p: &stateright::Property<M>| p.expectation == Expectation::Eventually;
        if self.cut && !self.properties.iter().any(eventually) {
            return Ok(()); // Nothing more to learn from its successors.
        }
        let mut terminal = true;
        for action in actions {
            let Some(succ) = self.model.next_state(state, action) else {
                continue;
            };
            if !self.model.within_boundary(&succ) {
                continue;
            }
            terminal = false;
            if !self.visited.contains(self.key(&succ)) {
                self.cut = true;
                return Ok(());
            }
        }
        match terminal {
            true => self.examine_eventually(state),
            false => Ok(()),
        }
    }

    /// The limit (time, memory) the search has reached, if any; the state limit is checked
    /// exactly, where a new state would exceed it.
    fn over_limit(&mut self) -> Result<(), Stop> {
        let limits = self.limits;
        let elapsed = self.start.elapsed();
        if limits.timeout.is_some_and(|t| elapsed >= t) {
            return Err(Stop::Time);
        }
        let Some(max) = limits.max_memory_bytes else {
            return Ok(());
        };
        let due = self.steps - self.memory_read.0 >= MEMORY_EVERY
            || elapsed - self.memory_read.1 >= MEMORY_INTERVAL;
        if !due {
            return Ok(());
        }
        self.memory_read = (self.steps, elapsed);
        match resident_bytes().is_some_and(|r| r >= max) {
            true => Err(Stop::Memory),
            false => Ok(()),
        }
    }

    /// `always` and `sometimes` on a newly visited state, as the BFS examines them, with the path
    /// that shows it (the stack) when it first does; a violated `always` stops the search.
    fn examine(&mut self, state: &M::State) -> Result<(), Stop> {
        let mut failed = false;
        for p in &self.properties {
            if self.found.contains_key(p.name) {
                continue;
            }
            let shows = match p.expectation {
                Expectation::Always => !(p.condition)(self.model, state),
                Expectation::Sometimes => (p.condition)(self.model, state),
                Expectation::Eventually => false,
            };
            if shows {
                failed |= p.expectation == Expectation::Always;
                let path = self.path();
                self.found.insert(p.name, path);
            }
        }
        match failed {
            true => Err(Stop::Violation),
            false => Ok(()),
        }
    }

    /// `eventually`: violated at a terminal state where the condition does not hold (exact for
    /// conditions over monotone ghost history, as in the BFS). The state is the one the stack's
    /// last step leads to: a frame just popped, or a state at the depth limit, never pushed.
    fn examine_eventually(&mut self, state: &M::State) -> Result<(), Stop> {
        let mut failed = false;
        for p in &self.properties {
            if p.expectation == Expectation::Eventually
                && !self.found.contains_key(p.name)
                && !(p.condition)(self.model, state)
            {
                failed = true;
                let path = self.path();
                self.found.insert(p.name, path);
            }
        }
        match failed {
            true => Err(Stop::Violation),
            false => Ok(()),
        }
    }

    /// Hands back the figures and discoveries.
    fn finish(self, stopped: Option<Stop>) -> BfsResult<M> {
        let progress = self.progress;
        progress.done.store(true, Ordering::Relaxed);
        let elapsed = self.start.elapsed();
        // Freeing the stack and the visited set takes a while after a long search: a thread of
        // its own does it, so the report, and the process's exit, need not wait.
        let (stack, visited) = (self.stack, self.visited);
        std::thread::spawn(move || drop((stack, visited)));
        BfsResult {
            states: progress.states.load(Ordering::Relaxed),
            unique: progress.unique.load(Ordering::Relaxed),
            max_depth: self.max_depth,
            elapsed,
            complete: stopped.is_none(),
            stopped,
            discoveries: self.found,
            graph: None,
            coverage: self.coverage,
        }
    }
}

//! Liveness on the explored state graph, under declared fairness.
//!
//! The BFS records the graph it explores: every state gets a dense index, every transition an
//! edge labelled with its fairness class, and every state the set of weakly fair classes enabled
//! there. After a complete search this module looks, for each liveness property, for a fair run
//! on which the property's goal `Q` never holds (again):
//!
//! - a **deadlock**: a state where `Q` does not hold and no action but a fault can be taken;
//! - a **fair lasso**: a strongly connected component of `¬Q` states (Tarjan, iterative) that
//!   contains a cycle taking every weakly fair class enabled throughout it (Emerson–Lei, as TLC
//!   does for weak fairness: checking maximal SCCs is enough).
//!
//! Faults (message loss, crashes, premature timeouts) happen only finitely often, so their
//! edges lead into a component but never close a cycle, and a state left with only faults is a
//! deadlock. What a bound cut is told apart: a `¬Q` state whose only non-fault successors fall
//! outside the model's bounds, or a component that is unfair only because a class enabled
//! throughout it leads outside the bounds, is a run the bounds cut short — counted, never
//! reported as a counterexample.
//!
//! Cost: one edge (12 bytes) per transition and two class sets per state, then a pass linear in
//! states + edges per property.

use crate::check::bfs::Fingerprint;

/// A set of fairness classes, as a slice of 64-bit words (the graph's stride).
type Words = [u64];

/// How a transition counts for fairness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fairness {
    /// A weakly fair class: if enabled continuously from some point on, eventually taken.
    Fair(u16),
    /// Taken freely, never owed (a workload proposal: the environment's choice).
    Unfair,
    /// A fault (loss, crash, a premature timeout): happens only finitely often.
    Fault,
}

/// The class stored on an edge that is no weakly fair class.
const UNFAIR: u16 = u16::MAX - 1;
/// The class stored on a fault edge.
const FAULT: u16 = u16::MAX;

impl Fairness {
    /// How the class is stored on an edge.
    pub fn code(self) -> u16 {
        match self {
            Fairness::Fair(c) => c,
            Fairness::Unfair => UNFAIR,
            Fairness::Fault => FAULT,
        }
    }
}

/// One transition of the explored graph.
#[derive(Clone, Copy, Debug)]
pub struct Edge {
    /// Index of the state it leaves.
    pub src: u32,
    /// Index of the state it enters.
    pub dst: u32,
    /// Its fairness class (`Fairness::code`).
    pub class: u16,
}

/// The most fairness classes a model may declare.
pub const MAX_CLASSES: usize = 256;

/// What the BFS learned about one state when it expanded it, for the liveness pass.
#[derive(Clone, Debug, Default)]
pub struct Expansion {
    /// Weakly fair classes with a successor inside the bounds.
    pub inside: [u64; MAX_CLASSES / 64],
    /// Weakly fair classes with a successor outside the bounds.
    pub outside: [u64; MAX_CLASSES / 64],
    /// Whether some non-fault action leads to a successor inside the bounds.
    pub moves_inside: bool,
    /// Whether some non-fault action leads outside the bounds.
    pub moves_outside: bool,
}

impl Expansion {
    /// Notes one enabled action of class `fairness`, leading inside the bounds or not.
    pub fn note(&mut self, fairness: Fairness, inside: bool) {
        if fairness != Fairness::Fault {
            if inside {
                self.moves_inside = true;
            } else {
                self.moves_outside = true;
            }
        }
        if let Fairness::Fair(c) = fairness {
            let set = if inside {
                &mut self.inside
            } else {
                &mut self.outside
            };
            set[c as usize / 64] |= 1 << (c % 64);
        }
    }
}

/// The explored state graph: what the liveness pass needs of it, indexed by state.
#[derive(Default)]
pub struct Graph {
    /// Words per class set.
    words: usize,
    /// Each state's fingerprint, to replay paths.
    pub fingerprints: Vec<Fingerprint>,
    /// Per state, one bit per liveness property: its goal holds there.
    pub goals: Vec<u8>,
    /// Per state: classes enabled inside the bounds (`words` words), then outside.
    enabled: Vec<u64>,
    /// Per state: bit 0, a non-fault move inside the bounds; bit 1, outside; bit 2, expanded.
    moves: Vec<u8>,
    /// Every transition between states inside the bounds.
    pub edges: Vec<Edge>,
    /// The initial states.
    pub initial: Vec<u32>,
}

impl Graph {
    /// An empty graph for `classes` fairness classes (at most `MAX_CLASSES`).
    pub fn new(classes: usize) -> Self {
        assert!(classes <= MAX_CLASSES, "{classes} fairness classes");
        Graph {
            words: classes.div_ceil(64).max(1),
            ..Graph::default()
        }
    }

    /// Makes room for states up to index `n - 1`.
    fn grow(&mut self, n: usize) {
        if self.fingerprints.len() < n {
            self.fingerprints.resize(n, 0);
            self.goals.resize(n, 0);
            self.moves.resize(n, 0);
            self.enabled.resize(n * 2 * self.words, 0);
        }
    }

    /// Records a state when it is discovered.
    pub fn discovered(&mut self, index: u32, fp: Fingerprint, goals: u8) {
        let i = index as usize;
        self.grow(i + 1);
        self.fingerprints[i] = fp;
        self.goals[i] = goals;
    }

    /// Records what expanding a state showed.
    pub fn expanded(&mut self, index: u32, e: &Expansion) {
        let i = index as usize;
        self.grow(i + 1);
        let w = self.words;
        self.enabled[i * 2 * w..i * 2 * w + w].copy_from_slice(&e.inside[..w]);
        self.enabled[i * 2 * w + w..(i + 1) * 2 * w].copy_from_slice(&e.outside[..w]);
        self.moves[i] = u8::from(e.moves_inside) | u8::from(e.moves_outside) << 1 | 4;
    }

    /// The number of states.
    pub fn len(&self) -> usize {
        self.fingerprints.len()
    }

    /// Whether the graph has no state.
    pub fn is_empty(&self) -> bool {
        self.fingerprints.is_empty()
    }

    fn inside(&self, i: u32) -> &Words {
        let w = self.words;
        &self.enabled[i as usize * 2 * w..i as usize * 2 * w + w]
    }

    fn outside(&self, i: u32) -> &Words {
        let w = self.words;
        &self.enabled[i as usize * 2 * w + w..(i as usize + 1) * 2 * w]
    }

    /// States whose only non-fault successors lie outside the bounds: runs the bounds cut.
    pub fn bound_stops(&self) -> usize {
        self.moves.iter().filter(|&&m| m & 3 == 2).count()
    }
}

/// What the BFS needs to record the graph for a model: how many fairness classes it has, how
/// each action counts, and which liveness goals hold in a state (one bit per property).
pub struct Recording<'a, M: stateright::Model> {
    /// The number of fairness classes (`Fairness::Fair` values are below it).
    pub classes: usize,
    /// How an action taken at a state counts for fairness.
    pub classify: &'a (dyn Fn(&M::State, &M::Action) -> Fairness + Sync),
    /// Which goals hold at a state: bit k for the k-th liveness property.
    pub goals: &'a (dyn Fn(&M::State) -> u8 + Sync),
}

/// What one BFS thread recorded in one level, merged into the graph after the level.
#[derive(Default)]
pub struct LevelRecord {
    /// Newly discovered states: index, fingerprint, goals.
    pub discovered: Vec<(u32, Fingerprint, u8)>,
    /// Expanded states.
    pub expanded: Vec<(u32, Expansion)>,
    /// Transitions.
    pub edges: Vec<Edge>,
}

impl LevelRecord {
    /// Adds another thread's record.
    pub fn join(&mut self, other: LevelRecord) {
        self.discovered.extend(other.discovered);
        self.expanded.extend(other.expanded);
        self.edges.extend(other.edges);
    }
}

impl Graph {
    /// Merges what a level recorded.
    pub fn merge(&mut self, record: LevelRecord) {
        for (index, fp, goals) in record.discovered {
            self.discovered(index, fp, goals);
        }
        for (index, e) in &record.expanded {
            self.expanded(*index, e);
        }
        self.edges.extend(record.edges);
    }
}

/// Which runs a liveness property speaks of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `eventually Q`: every fair run from an initial state reaches a state where Q holds.
    Eventually,
    /// `always eventually Q` (`¬Q leads to Q`): from every reachable state, every fair run
    /// reaches Q again.
    AlwaysEventually,
}

/// How a property fails: a path from an initial state, then (for a lasso) a cycle back to the
/// path's last state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counterexample {
    /// State indices from an initial state to where the run stays forever.
    pub stem: Vec<u32>,
    /// State indices of the cycle after the stem's last state, ending back at it; empty for a
    /// deadlock.
    pub cycle: Vec<u32>,
}

/// What the liveness pass found for one property.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// A shortest-stem counterexample, if any fair run breaks the property.
    pub counterexample: Option<Counterexample>,
    /// States and components where a run breaking the property is only cut short by a bound.
    pub bound_cut: usize,
}

/// The graph's edges grouped by source (compressed sparse rows).
pub struct Adjacency {
    offsets: Vec<u32>,
    edges: Vec<Edge>,
}

impl Adjacency {
    /// Sorts the edges by source; the graph keeps none of its own after this.
    pub fn new(graph: &mut Graph) -> Self {
        let n = graph.len();
        let mut edges = std::mem::take(&mut graph.edges);
        edges.sort_unstable_by_key(|e| (e.src, e.dst, e.class));
        edges.dedup_by_key(|e| (e.src, e.dst, e.class));
        let mut offsets = vec![0u32; n + 1];
        for e in &edges {
            offsets[e.src as usize + 1] += 1;
        }
        for i in 0..n {
            offsets[i + 1] += offsets[i];
        }
        Adjacency { offsets, edges }
    }

    fn out(&self, i: u32) -> &[Edge] {
        &self.edges[self.offsets[i as usize] as usize..self.offsets[i as usize + 1] as usize]
    }
}

/// Breadth-first parents from `sources` over edges that satisfy `follow` (a source is its own
/// parent; `u32::MAX`: unreached).
fn bfs_from(
    adj: &Adjacency,
    n: usize,
    sources: &[u32],
    follow: impl Fn(&Edge) -> bool,
) -> Vec<u32> {
    bfs_with_depth(adj, n, sources, follow).0
}

/// `bfs_from`, with each reached state's distance from the sources.
fn bfs_with_depth(
    adj: &Adjacency,
    n: usize,
    sources: &[u32],
    follow: impl Fn(&Edge) -> bool,
) -> (Vec<u32>, Vec<u32>) {
    let mut parent = vec![u32::MAX; n];
    let mut depth = vec![u32::MAX; n];
    let mut queue = std::collections::VecDeque::new();
    for &s in sources {
        if parent[s as usize] == u32::MAX {
            parent[s as usize] = s;
            depth[s as usize] = 0;
            queue.push_back(s);
        }
    }
    while let Some(u) = queue.pop_front() {
        for e in adj.out(u) {
            if follow(e) && parent[e.dst as usize] == u32::MAX {
                parent[e.dst as usize] = u;
                depth[e.dst as usize] = depth[u as usize] + 1;
                queue.push_back(e.dst);
            }
        }
    }
    (parent, depth)
}

/// The path from a BFS source to `to`, following `parent` links.
fn path_to(parent: &[u32], to: u32) -> Vec<u32> {
    let mut path = vec![to];
    let mut at = to;
    while parent[at as usize] != at {
        at = parent[at as usize];
        path.push(at);
    }
    path.reverse();
    path
}

/// Strongly connected components of the states in `region`, over non-fault edges between them
/// (Tarjan's algorithm with an explicit stack: no recursion over millions of states). Calls
/// `component` with each component of more than one state.
fn components(adj: &Adjacency, region: &[bool], mut component: impl FnMut(&[u32])) {
    let n = region.len();
    let mut index = vec![u32::MAX; n];
    let mut low = vec![0u32; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<u32> = Vec::new();
    let mut calls: Vec<(u32, usize)> = Vec::new();
    let mut next = 0u32;
    let inner = |e: &Edge| e.class != FAULT && region[e.dst as usize];
    for root in 0..n as u32 {
        if !region[root as usize] || index[root as usize] != u32::MAX {
            continue;
        }
        calls.push((root, 0));
        index[root as usize] = next;
        low[root as usize] = next;
        next += 1;
        stack.push(root);
        on_stack[root as usize] = true;
        while let Some(&(v, at)) = calls.last() {
            let out = adj.out(v);
            if let Some(e) = out.get(at) {
                calls.last_mut().expect("not empty").1 += 1;
                if !inner(e) {
                    continue;
                }
                let w = e.dst as usize;
                if index[w] == u32::MAX {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(e.dst);
                    on_stack[w] = true;
                    calls.push((e.dst, 0));
                } else if on_stack[w] {
                    low[v as usize] = low[v as usize].min(index[w]);
                }
                continue;
            }
            calls.pop();
            if let Some(&(parent, _)) = calls.last() {
                low[parent as usize] = low[parent as usize].min(low[v as usize]);
            }
            if low[v as usize] == index[v as usize] {
                let mut members = Vec::new();
                loop {
                    let w = stack.pop().expect("v is on the stack");
                    on_stack[w as usize] = false;
                    members.push(w);
                    if w == v {
                        break;
                    }
                }
                if members.len() > 1 {
                    component(&members);
                }
            }
        }
    }
}

/// Whether a component is fair, cut by a bound, or unfair (a fair run leaves it).
#[derive(Debug, PartialEq, Eq)]
enum Judgement {
    Fair,
    BoundCut,
    Unfair,
}

/// Judges a component (its members sorted): fair when every class enabled in all its states is taken on one of its
/// edges. Otherwise some such class is never taken inside; when no state of it has a successor
/// of that class inside the bounds, only the bounds keep the run from taking it.
fn judge(graph: &Graph, adj: &Adjacency, members: &[u32]) -> Judgement {
    let w = graph.words;
    let mut always = vec![u64::MAX; w];
    let mut taken = vec![0u64; w];
    let mut some_inside = vec![0u64; w];
    for &s in members {
        for k in 0..w {
            always[k] &= graph.inside(s)[k] | graph.outside(s)[k];
            some_inside[k] |= graph.inside(s)[k];
        }
        for e in adj.out(s) {
            if e.class < UNFAIR && members.binary_search(&e.dst).is_ok() {
                taken[e.class as usize / 64] |= 1 << (e.class % 64);
            }
        }
    }
    let missing: Vec<u64> = (0..w).map(|k| always[k] & !taken[k]).collect();
    if missing.iter().all(|&m| m == 0) {
        Judgement::Fair
    } else if (0..w).all(|k| missing[k] & some_inside[k] == 0) {
        Judgement::BoundCut
    } else {
        Judgement::Unfair
    }
}

/// A cycle inside a fair component from `entry` back to it that takes every class enabled in
/// all of its own states: first one edge of each class the component takes, then home.
fn fair_cycle(graph: &Graph, adj: &Adjacency, members: &[u32], entry: u32) -> Vec<u32> {
    let n = graph.len();
    let mut inside = vec![false; n];
    for &s in members {
        inside[s as usize] = true;
    }
    let inner = |e: &Edge| e.class != FAULT && inside[e.dst as usize];
    let mut wanted: Vec<u16> = Vec::new();
    for &s in members {
        for e in adj.out(s) {
            if inner(e) && e.class < UNFAIR && !wanted.contains(&e.class) {
                wanted.push(e.class);
            }
        }
    }
    let mut cycle = Vec::new();
    let mut at = entry;
    for class in wanted {
        if cycle_takes(adj, entry, &cycle, class) {
            continue;
        }
        // The nearest edge of this class, and the way to it.
        let parent = bfs_from(adj, n, &[at], inner);
        let Some(edge) = members
            .iter()
            .filter(|&&s| parent[s as usize] != u32::MAX)
            .flat_map(|&s| adj.out(s).iter())
            .filter(|e| e.class == class && inner(e))
            .min_by_key(|e| path_to(&parent, e.src).len())
        else {
            continue;
        };
        cycle.extend(path_to(&parent, edge.src).into_iter().skip(1));
        cycle.push(edge.dst);
        at = edge.dst;
    }
    if at != entry || cycle.is_empty() {
        let parent = bfs_from(adj, n, &[at], inner);
        // Back home; from the entry itself, one step out first so that the cycle is not empty.
        let home = if at == entry {
            let first = adj
                .out(entry)
                .iter()
                .find(|e| inner(e))
                .expect("a component has a cycle");
            cycle.push(first.dst);
            bfs_from(adj, n, &[first.dst], inner)
        } else {
            parent
        };
        cycle.extend(path_to(&home, entry).into_iter().skip(1));
    }
    cycle
}

/// Whether the cycle so far (from `entry`) already takes an edge of `class`.
fn cycle_takes(adj: &Adjacency, entry: u32, cycle: &[u32], class: u16) -> bool {
    let mut from = entry;
    for &to in cycle {
        if adj
            .out(from)
            .iter()
            .any(|e| e.dst == to && e.class == class)
        {
            return true;
        }
        from = to;
    }
    false
}

/// The goal-missing state nearest an initial state where nothing but a fault can happen (a
/// deadlock), and how many such states only a bound stops (their next step would leave it).
fn stuck_states(
    graph: &Graph,
    region: &[bool],
    within: &[bool],
    depth: &[u32],
) -> (Option<u32>, usize) {
    let mut bound_cut = 0;
    let mut deadlock: Option<u32> = None;
    for s in 0..graph.len() as u32 {
        if !region[s as usize] || !within[s as usize] {
            continue;
        }
        match graph.moves[s as usize] & 3 {
            0 if deadlock.is_none_or(|d| depth[s as usize] < depth[d as usize]) => {
                deadlock = Some(s)
            }
            2 => bound_cut += 1,
            _ => {}
        }
    }
    (deadlock, bound_cut)
}

/// Looks for a fair run on which goal `bit` never holds (again), per `kind`; returns the one
/// with the shortest stem, and how many runs only a bound cut short.
pub fn check(graph: &Graph, adj: &Adjacency, bit: u8, kind: Kind) -> Verdict {
    let n = graph.len();
    let misses = |s: u32| graph.goals[s as usize] & (1 << bit) == 0;
    let within: Vec<bool> = (0..n as u32)
        .map(|s| graph.moves[s as usize] & 4 != 0)
        .collect();
    // The states a counterexample may stay in, and how a run reaches them: for `eventually`,
    // through states that miss the goal; for `always eventually`, any way at all.
    let (stem_parent, depth) = match kind {
        Kind::Eventually => {
            let starts: Vec<u32> = graph
                .initial
                .iter()
                .copied()
                .filter(|&s| misses(s))
                .collect();
            bfs_with_depth(adj, n, &starts, |e| misses(e.dst))
        }
        Kind::AlwaysEventually => bfs_with_depth(adj, n, &graph.initial, |_| true),
    };
    let region: Vec<bool> = (0..n as u32)
        .map(|s| depth[s as usize] != u32::MAX && misses(s))
        .collect();
    let (deadlock, mut bound_cut) = stuck_states(graph, &region, &within, &depth);
    // The fair component nearest an initial state, by the state where a run enters it.
    let mut lasso: Option<(u32, Vec<u32>)> = None;
    components(adj, &region, |members| {
        if members.iter().any(|&s| !within[s as usize]) {
            return;
        }
        let mut sorted = members.to_vec();
        sorted.sort_unstable();
        match judge(graph, adj, &sorted) {
            Judgement::Fair => {
                let entry = *members
                    .iter()
                    .min_by_key(|&&s| (depth[s as usize], s))
                    .expect("not empty");
                if lasso
                    .as_ref()
                    .is_none_or(|(e, _)| depth[entry as usize] < depth[*e as usize])
                {
                    lasso = Some((entry, members.to_vec()));
                }
            }
            Judgement::BoundCut => bound_cut += 1,
            Judgement::Unfair => {}
        }
    });
    let lasso = lasso.map(|(entry, members)| Counterexample {
        stem: path_to(&stem_parent, entry),
        cycle: fair_cycle(graph, adj, &members, entry),
    });
    let deadlock = deadlock.map(|s| Counterexample {
        stem: path_to(&stem_parent, s),
        cycle: Vec::new(),
    });
    let length = |c: &Counterexample| c.stem.len() + c.cycle.len();
    let counterexample = match (lasso, deadlock) {
        (Some(l), Some(d)) => Some(if length(&d) <= length(&l) { d } else { l }),
        (l, d) => l.or(d),
    };
    Verdict {
        counterexample,
        bound_cut,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A graph from edges `(src, dst, fairness)` over `n` states with `classes` classes; goal
    /// bit 0 holds in `goal` states; every state is expanded and its enabled classes are the
    /// classes of its edges, plus `outside` ones.
    fn graph(
        n: u32,
        edges: &[(u32, u32, Fairness)],
        goal: &[u32],
        outside: &[(u32, Fairness)],
    ) -> (Graph, Adjacency) {
        let mut g = Graph::new(4);
        g.initial = vec![0];
        for s in 0..n {
            g.discovered(s, s as u64, u8::from(goal.contains(&s)));
            let mut e = Expansion::default();
            for &(src, _, f) in edges.iter().filter(|e| e.0 == s) {
                let _ = src;
                e.note(f, true);
            }
            for &(_, f) in outside.iter().filter(|o| o.0 == s) {
                e.note(f, false);
            }
            g.expanded(s, &e);
        }
        g.edges = edges
            .iter()
            .map(|&(src, dst, f)| Edge {
                src,
                dst,
                class: f.code(),
            })
            .collect();
        let adj = Adjacency::new(&mut g);
        (g, adj)
    }

    use Fairness::{Fair, Fault, Unfair};

    #[test]
    fn a_fair_cycle_that_never_reaches_the_goal_is_a_lasso() {
        // 0 → 1 → 2 → 1 (class 0 then 1), goal only in 3, which 2 may reach unfairly.
        let (g, adj) = graph(
            4,
            &[
                (0, 1, Fair(0)),
                (1, 2, Fair(1)),
                (2, 1, Fair(0)),
                (2, 3, Unfair),
            ],
            &[3],
            &[],
        );
        let v = check(&g, &adj, 0, Kind::Eventually);
        let c = v.counterexample.expect("a lasso");
        assert_eq!(c.stem, vec![0, 1]);
        assert_eq!(c.cycle, vec![2, 1]);
    }

    #[test]
    fn a_cycle_that_ignores_an_enabled_fair_class_is_no_counterexample() {
        // 1 ⇄ 2 on class 0, while class 1 (to the goal) is enabled in both and never taken.
        let (g, adj) = graph(
            4,
            &[
                (0, 1, Fair(0)),
                (1, 2, Fair(0)),
                (2, 1, Fair(0)),
                (1, 3, Fair(1)),
                (2, 3, Fair(1)),
            ],
            &[3],
            &[],
        );
        assert_eq!(check(&g, &adj, 0, Kind::Eventually).counterexample, None);
    }

    #[test]
    fn faults_do_not_close_cycles_but_may_end_a_run() {
        // 1 ⇄ 2 only through a fault: no fair cycle. State 4 has only a fault move: deadlock.
        let (g, adj) = graph(
            5,
            &[
                (0, 1, Fair(0)),
                (1, 2, Fair(0)),
                (2, 1, Fault),
                (2, 3, Fair(1)),
                (0, 4, Fault),
                (4, 3, Fault),
            ],
            &[3],
            &[],
        );
        let c = check(&g, &adj, 0, Kind::Eventually)
            .counterexample
            .expect("deadlock");
        assert_eq!((c.stem, c.cycle), (vec![0, 4], vec![]));
    }

    #[test]
    fn runs_that_only_a_bound_ends_are_counted_not_reported() {
        // State 1's only move leaves the bounds; 2 ⇄ 3 would take class 1 but it leads outside.
        let (g, adj) = graph(
            4,
            &[
                (0, 1, Fair(0)),
                (0, 2, Fair(0)),
                (2, 3, Fair(0)),
                (3, 2, Fair(0)),
            ],
            &[],
            &[(1, Fair(0)), (2, Fair(1)), (3, Fair(1))],
        );
        let v = check(&g, &adj, 0, Kind::Eventually);
        assert_eq!(v.counterexample, None);
        assert_eq!(v.bound_cut, 2);
    }

    #[test]
    fn always_eventually_looks_from_every_reachable_state() {
        // The goal holds at 0 and 1; from 2 on it never does again: 2 ⇄ 3.
        let (g, adj) = graph(
            4,
            &[
                (0, 1, Fair(0)),
                (1, 2, Fair(0)),
                (2, 3, Fair(0)),
                (3, 2, Fair(0)),
            ],
            &[0, 1],
            &[],
        );
        assert_eq!(check(&g, &adj, 0, Kind::Eventually).counterexample, None);
        let c = check(&g, &adj, 0, Kind::AlwaysEventually)
            .counterexample
            .expect("lasso");
        assert_eq!((c.stem, c.cycle), (vec![0, 1, 2], vec![3, 2]));
    }
}

//! Sequence diagrams of runs, as hand-written SVG: one lane per server and client, time going
//! down, each message an arrow from the step that sent it to the step that delivered or lost
//! it. A table of steps hides how long a message waited; here a delayed or reordered message
//! is a long or crossing arrow. Each lane shows its state at every step, changed cells
//! highlighted; given steps are greyed, and a liveness lasso's cycle is bracketed. `check
//! --svg/--html` and the explorer (`check --explore`) draw with it.

use super::spec::Semantics;
use super::{Action, Envelope, RaftModel, SystemState};
use crate::protocol::types::Timer;
use crate::protocol::view::ServerView;
use std::fmt::Write;

/// Height of one step's row, in pixels.
const ROW: f64 = 30.0;
/// Width of one character of the 11 px monospace font the cells use (an estimate: SVG text
/// is not measured, so columns are sized from character counts).
const CHAR: f64 = 6.8;
/// Room above row 0 for the lane names.
const TOP: f64 = 50.0;
/// Room left of the first lane for step numbers.
const LEFT: f64 = 44.0;
/// Gap between a lane's line and its state text, so that markers on the line stay clear.
const CELL_GAP: f64 = 11.0;

/// What to say around a run: its title, the lines after its last step (the violated property
/// and what it concerns), and where a lasso's cycle starts.
#[derive(Clone, Debug, Default)]
pub struct Ending {
    /// Written above the diagram and again at its end (e.g. `Election Safety violated`).
    pub title: Option<String>,
    /// Lines written after the last step: which servers and entries break the property.
    pub lines: Vec<String>,
    /// For a liveness lasso: the step the last step returns to, forever.
    pub loop_from: Option<usize>,
    /// A prefix for the SVG's ids, so that several diagrams can share one HTML page.
    pub id: String,
}

/// How a message's arrow ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Its receiver handled it at the arrow's end step.
    Delivered,
    /// The network lost it at the end step.
    Dropped,
    /// The model took it out as moot (its server would ignore it) at the end step.
    Discarded,
    /// Still in flight after the last step: drawn as a stub.
    InFlight,
}

impl Fate {
    /// The word in the SVG's class names and `data-fate`, which tests read.
    pub fn name(self) -> &'static str {
        match self {
            Fate::Delivered => "delivered",
            Fate::Dropped => "dropped",
            Fate::Discarded => "discarded",
            Fate::InFlight => "in-flight",
        }
    }
}

/// One message's arrow: from its sender's lane at the step that sent it to its receiver's
/// lane at the step where it ended (for `InFlight`, the last step).
#[derive(Clone, Debug)]
pub struct Arrow {
    /// The message as it travelled.
    pub envelope: Envelope,
    /// The step whose handler put it in the network (0: the fresh cluster's start).
    pub sent: usize,
    /// The step that delivered, lost or discarded it, or the last step if it is in flight.
    pub ended: usize,
    /// How it ended.
    pub fate: Fate,
}

/// A message in the network, with the step that sent it, while it may still be delivered.
struct Sent {
    envelope: Envelope,
    step: usize,
    open: bool,
}

/// `a` without one copy of each element of `b` (multiset difference, order kept).
fn minus(a: &[Envelope], b: &[Envelope]) -> Vec<Envelope> {
    let mut left: Vec<Option<&Envelope>> = b.iter().map(Some).collect();
    let mut out = Vec::new();
    for e in a {
        match left.iter_mut().find(|l| l.is_some_and(|l| l == e)) {
            Some(slot) => *slot = None,
            None => out.push(e.clone()),
        }
    }
    out
}

/// Escapes text for SVG and HTML: the five XML entities.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

impl RaftModel {
    /// The states of a run: the fresh cluster, then one after each action (an action that
    /// changes nothing leaves the state as it was).
    pub fn replay(&self, actions: &[Action]) -> Vec<SystemState> {
        let mut states = vec![self.fresh_state()];
        for action in actions {
            let last = states.last().expect("the fresh state");
            let next = stateright::Model::next_state(self, last, action.clone());
            states.push(next.unwrap_or_else(|| last.clone()));
        }
        states
    }

    /// Every message's arrow in a run from the fresh cluster (`states` from `replay`). A
    /// step's sends are the messages it added to the network; a delivery or loss is matched
    /// to the earliest send of the same envelope still in the network.
    pub fn arrows(&self, states: &[SystemState], actions: &[Action]) -> Vec<Arrow> {
        let consumed = self.semantics() != Semantics::UnorderedDuplicating;
        let mut sent: Vec<Sent> = Vec::new();
        let mut arrows = Vec::new();
        let open = |sent: &mut Vec<Sent>, env: &Envelope| {
            sent.iter().position(|s| s.open && s.envelope == *env)
        };
        let add = |sent: &mut Vec<Sent>, envs: Vec<Envelope>, step| {
            sent.extend(envs.into_iter().map(|envelope| Sent {
                envelope,
                step,
                open: true,
            }))
        };
        add(&mut sent, states[0].network.clone(), 0);
        for (k, action) in actions.iter().enumerate() {
            let (prev, next, step) = (&states[k], &states[k + 1], k + 1);
            let mut before = prev.network.clone();
            let taken = match action {
                Action::Deliver(env) => Some((env, Fate::Delivered, consumed)),
                Action::Drop(env) => Some((env, Fate::Dropped, true)),
                _ => None,
            };
            if let Some((env, fate, leaves)) = taken {
                let from = open(&mut sent, env);
                arrows.push(arrow(env, from.map_or(0, |f| sent[f].step), step, fate));
                if let (Some(f), true) = (from, leaves) {
                    sent[f].open = false;
                    before = minus(&before, std::slice::from_ref(env));
                }
            }
            for env in minus(&before, &next.network) {
                if let Some(f) = open(&mut sent, &env) {
                    sent[f].open = false;
                    arrows.push(arrow(&env, sent[f].step, step, Fate::Discarded));
                }
            }
            add(&mut sent, minus(&next.network, &before), step);
        }
        let last = actions.len();
        let stubs = sent.iter().filter(|s| s.open);
        arrows.extend(stubs.map(|s| arrow(&s.envelope, s.step, last, Fate::InFlight)));
        arrows
    }

    /// The run of `actions` from the fresh cluster (the model's given steps, when it has them,
    /// are its first `given` actions) as a sequence diagram.
    pub fn sequence_diagram(&self, actions: &[Action], given: usize, ending: &Ending) -> Drawing {
        let states = self.replay(actions);
        let arrows = self.arrows(&states, actions);
        let lanes = self.n() + self.clients.len();
        let cells: Vec<Vec<String>> = states
            .iter()
            .map(|s| (0..lanes).map(|l| self.lane_cell(s, l)).collect())
            .collect();
        let mut events = vec!["initial state".to_string()];
        events.extend(actions.iter().map(|a| self.describe(a)));
        let mut marks = vec![Vec::new()];
        marks.extend(actions.iter().map(|a| Mark::of(a).into_iter().collect()));
        let lines = arrows
            .iter()
            .map(|a| Line {
                src: a.envelope.src as usize,
                dst: a.envelope.dst as usize,
                sent: a.sent,
                ended: a.ended,
                fate: a.fate,
                label: self.describe(&Action::Deliver(a.envelope.clone())),
            })
            .collect();
        let picture = Picture {
            names: (0..lanes).map(|l| self.actor_name(l as u8)).collect(),
            cells,
            events,
            down: states.iter().map(|s| s.down.clone()).collect(),
            marks,
            lines,
            given,
        };
        picture.draw(ending)
    }

    /// A lane's state at one step, as the trace table writes a server (`L t2 v0 [1:x=1] c1`:
    /// role, term, vote, log, commit), or a client's progress.
    fn lane_cell(&self, state: &SystemState, lane: usize) -> String {
        let n = self.n();
        if lane >= n {
            let summary = self.client_summary(state, lane - n);
            return summary
                .split_once(": ")
                .map_or(summary.clone(), |(_, rest)| rest.to_string());
        }
        let s = &state.servers[lane];
        if state.down[lane] {
            return format!("DOWN t{} {}", s.term(), s.log().summary());
        }
        let role = match s.role_name() {
            "leader" => "L",
            "candidate" => "C",
            _ => "F",
        };
        let vote = s.voted_for().map_or("-".into(), |v| v.to_string());
        let (log, commit) = (s.log().summary(), s.commit_index());
        format!("{role} t{} v{vote} {log} c{commit}", s.term())
    }
}

/// A finished diagram: its size and its SVG elements, which stand alone (`svg`) or stacked
/// with others in one file (`stack`).
#[derive(Clone, Debug)]
pub struct Drawing {
    /// Width in pixels.
    pub width: f64,
    /// Height in pixels.
    pub height: f64,
    body: String,
}

impl Drawing {
    /// The diagram as an `<svg>` element placed at `y` (0 for a document of its own).
    fn element(&self, y: f64) -> String {
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" y=\"{y}\" width=\"{w}\" height=\"{h}\" \
             viewBox=\"0 0 {w} {h}\">\n{body}</svg>\n",
            w = self.width,
            h = self.height,
            body = self.body
        )
    }

    /// The diagram as an SVG element: a file of its own, or inline in HTML.
    pub fn svg(&self) -> String {
        self.element(0.0)
    }

    /// Several diagrams, one below the other, as one SVG document.
    pub fn stack(drawings: &[Drawing]) -> String {
        let width = drawings.iter().map(|d| d.width).fold(0.0, f64::max);
        let mut out = String::new();
        let mut y = 0.0;
        for d in drawings {
            out.push_str(&d.element(y));
            y += d.height + 20.0;
        }
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" \
             width=\"{width}\" height=\"{y}\" viewBox=\"0 0 {width} {y}\">\n{out}</svg>\n"
        )
    }
}

/// An arrow for a message that ended at `ended`.
fn arrow(env: &Envelope, sent: usize, ended: usize, fate: Fate) -> Arrow {
    Arrow {
        envelope: env.clone(),
        sent,
        ended,
        fate,
    }
}

/// What happens on a lane at a step, drawn on its line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// A timer fired at the lane: `E` election, `H` heartbeat, `R` client retry.
    Timer(usize, char),
    /// The lane's server crashed.
    Crash(usize),
    /// The lane's server restarted from its storage.
    Restart(usize),
    /// The lane's server accepted a proposal.
    Propose(usize),
}

impl Mark {
    /// The mark a model action leaves (deliveries and losses are arrows, not marks).
    fn of(action: &Action) -> Option<Mark> {
        Some(match action {
            Action::Timeout(i, t) => Mark::Timer(
                *i as usize,
                match t {
                    Timer::Election => 'E',
                    Timer::Heartbeat => 'H',
                    Timer::ClientRetry => 'R',
                },
            ),
            Action::Restart(i) => Mark::Restart(*i as usize),
            Action::Crash(i) | Action::Damage(i, _) => Mark::Crash(*i as usize),
            Action::Propose(i, _) | Action::Request(i, _) => Mark::Propose(*i as usize),
            Action::Deliver(_) | Action::Drop(_) => return None,
        })
    }
}

/// One message's arrow, in lanes and steps: what a [`Picture`] draws, whoever recorded the
/// run (the model's actions, or the simulator's datagrams).
#[derive(Clone, Debug)]
pub struct Line {
    /// The sender's lane.
    pub src: usize,
    /// The receiver's lane.
    pub dst: usize,
    /// The step that sent it (0: before the first step shown).
    pub sent: usize,
    /// The step that delivered, lost or discarded it, or the last step if it is in flight.
    pub ended: usize,
    /// How it ended.
    pub fate: Fate,
    /// The message as traces print it.
    pub label: String,
}

/// Everything a diagram shows, per step and per lane, before it is laid out. The model fills
/// it from a run's actions ([`RaftModel::sequence_diagram`]); the simulator from the
/// datagrams and rounds of the real node loop.
#[derive(Clone, Debug, Default)]
pub struct Picture {
    /// Each lane's name (`S0`, `C0`).
    pub names: Vec<String>,
    /// `cells[step][lane]`: the lane's state at that step.
    pub cells: Vec<Vec<String>>,
    /// `events[step]`: what happened at it (step 0: where the picture starts).
    pub events: Vec<String>,
    /// `down[step][lane]` (lanes past its end are up).
    pub down: Vec<Vec<bool>>,
    /// `marks[step]`: what happened on lanes at that step, besides arrows.
    pub marks: Vec<Vec<Mark>>,
    /// Every message's arrow.
    pub lines: Vec<Line>,
    /// Steps 1..=given were given, not searched: drawn grey.
    pub given: usize,
}

impl Picture {
    /// The picture as a diagram, with `ending`'s title, closing lines and cycle.
    pub fn draw(&self, ending: &Ending) -> Drawing {
        Run {
            picture: self,
            ending,
        }
        .draw()
    }
}

/// A picture being drawn with its ending.
struct Run<'a> {
    picture: &'a Picture,
    ending: &'a Ending,
}

impl std::ops::Deref for Run<'_> {
    type Target = Picture;
    fn deref(&self) -> &Picture {
        self.picture
    }
}

/// Where things go: each lane's line, the event column, and the rows.
struct Layout {
    lane_x: Vec<f64>,
    event_x: f64,
    width: f64,
    top: f64,
    steps: usize,
}

impl Layout {
    /// The middle of a step's row.
    fn y(&self, step: usize) -> f64 {
        self.top + ROW * step as f64
    }

    /// Below the last row: where lanes end and in-flight stubs point.
    fn bottom(&self) -> f64 {
        self.y(self.steps) + ROW * 0.7
    }
}

/// The stylesheet of a diagram: class names start with `sd-` so that pages embedding it keep
/// their own styles.
const STYLE: &str = "<style>\
 .sd text{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:11px;fill:#222}\
 .sd .sd-name{font-size:13px;font-weight:bold}\
 .sd .sd-title{font-size:14px;font-weight:bold}\
 .sd .sd-cell{paint-order:stroke;stroke:#fff;stroke-width:3px}\
 .sd .sd-changed{font-weight:bold}\
 .sd text.sd-same{fill:#666}\
 .sd .sd-hl{fill:#fff1a8}\
 .sd .sd-given-row{fill:#eeeeee}\
 .sd .sd-cycle-row{fill:#e8f1fb}\
 .sd .sd-given text,.sd text.sd-given{fill:#888}\
 .sd .sd-lane{stroke:#444;stroke-width:1.5}\
 .sd .sd-lane-down{stroke:#bbb;stroke-width:1.5;stroke-dasharray:3 4}\
 .sd .sd-msg{stroke-width:1.4;fill:none}\
 .sd .sd-delivered{stroke:#1f5fbf}\
 .sd .sd-dropped{stroke:#c0392b;stroke-dasharray:5 3}\
 .sd .sd-discarded{stroke:#999;stroke-dasharray:1 3}\
 .sd .sd-in-flight{stroke:#d35400;stroke-dasharray:4 3}\
 .sd .sd-given-msg{stroke:#aaa}\
 .sd .sd-x{stroke:#c0392b;stroke-width:2}\
 .sd .sd-timer{fill:#fff;stroke:#7d3c98;stroke-width:1.5}\
 .sd .sd-restart{fill:#e9f7ef;stroke:#1e8449;stroke-width:1.5}\
 .sd .sd-propose{fill:#7d3c98}\
 .sd .sd-bad{fill:#c0392b;font-weight:bold}\
 .sd .sd-cycle{stroke:#1f5fbf;stroke-width:2;fill:none}\
 </style>\n";

impl Run<'_> {
    /// Columns sized from the longest text each will hold.
    fn layout(&self) -> Layout {
        let mut x = LEFT;
        let mut lane_x = Vec::new();
        for lane in 0..self.names.len() {
            let widest = self.cells.iter().map(|c| c[lane].chars().count()).max();
            lane_x.push(x + 8.0);
            x += (widest.unwrap_or(0) as f64 * CHAR + CELL_GAP + 24.0)
                .max(110.0)
                .round();
        }
        let widest_event = self.events.iter().map(|e| e.chars().count()).max();
        let event_x = x + 4.0;
        let text_end = (event_x + widest_event.unwrap_or(0) as f64 * CHAR).round();
        let title = self.ending.title.as_ref().map_or(0, |t| t.chars().count());
        let legend = LEGEND.iter().map(|s| s.chars().count()).max().unwrap_or(0);
        let width = (text_end + 130.0)
            .max(LEFT + title as f64 * 8.0 + 20.0)
            .max(LEFT + legend as f64 * CHAR + 10.0);
        let top = TOP
            + if self.ending.title.is_some() {
                22.0
            } else {
                0.0
            };
        let steps = self.events.len() - 1;
        Layout {
            lane_x,
            event_x,
            width: width.ceil(),
            top,
            steps,
        }
    }

    /// The whole diagram: backgrounds, lanes, arrows, cells, markers, events, the cycle and
    /// the ending, in that order so that text is drawn over lines.
    fn draw(&self) -> Drawing {
        let l = self.layout();
        let mut body = format!("<g class=\"sd\">\n{STYLE}");
        body.push_str(&self.defs());
        self.head(&l, &mut body);
        self.rows(&l, &mut body);
        self.lanes(&l, &mut body);
        for line in &self.lines {
            self.draw_arrow(&l, line, &mut body);
        }
        self.cells(&l, &mut body);
        self.markers(&l, &mut body);
        self.cycle(&l, &mut body);
        let height = self.end(&l, &mut body);
        body.push_str("</g>\n");
        Drawing {
            width: l.width,
            height: height.ceil(),
            body,
        }
    }

    /// Arrowheads, one per colour (markers take no colour from the line that uses them).
    fn defs(&self) -> String {
        let id = &self.ending.id;
        let mut out = String::from("<defs>");
        for (name, colour) in [
            ("delivered", "#1f5fbf"),
            ("given", "#aaa"),
            ("in-flight", "#d35400"),
            ("cycle", "#1f5fbf"),
        ] {
            let _ = write!(
                out,
                "<marker id=\"{id}sd-head-{name}\" markerWidth=\"10\" markerHeight=\"8\" \
                 refX=\"9\" refY=\"4\" orient=\"auto\" markerUnits=\"userSpaceOnUse\">\
                 <polygon points=\"0 0, 10 4, 0 8\" fill=\"{colour}\"/></marker>"
            );
        }
        out.push_str("</defs>\n");
        out
    }

    /// The title and each lane's name.
    fn head(&self, l: &Layout, out: &mut String) {
        if let Some(title) = &self.ending.title {
            let _ = writeln!(
                out,
                "<text class=\"sd-title\" x=\"{LEFT}\" y=\"20\">{}</text>",
                escape(title)
            );
        }
        let y = l.top - 24.0;
        for (x, name) in l.lane_x.iter().zip(&self.names) {
            let _ = writeln!(
                out,
                "<text class=\"sd-name\" x=\"{x}\" y=\"{y}\" text-anchor=\"middle\">{}</text>",
                escape(name)
            );
        }
        let _ = writeln!(
            out,
            "<text class=\"sd-name\" x=\"{}\" y=\"{y}\">event</text>",
            l.event_x
        );
    }

    /// Row backgrounds: given steps grey, a lasso's cycle blue; a line where the search starts.
    fn rows(&self, l: &Layout, out: &mut String) {
        let cycle = self.ending.loop_from;
        for step in 1..=l.steps {
            let class = if step <= self.given {
                "sd-given-row"
            } else if cycle.is_some_and(|k| step > k) {
                "sd-cycle-row"
            } else {
                continue;
            };
            let _ = writeln!(
                out,
                "<rect class=\"{class}\" x=\"0\" y=\"{}\" width=\"{}\" height=\"{ROW}\"/>",
                l.y(step) - ROW / 2.0,
                l.width
            );
        }
        if self.given > 0 && self.given < l.steps {
            let y = l.y(self.given) + ROW / 2.0;
            let _ = writeln!(
                out,
                "<line x1=\"0\" y1=\"{y}\" x2=\"{w}\" y2=\"{y}\" stroke=\"#888\" \
                 stroke-dasharray=\"6 4\"/><text class=\"sd-given\" x=\"{x}\" y=\"{t}\">\
                 given steps above · the search starts here</text>",
                w = l.width,
                x = l.width - 330.0,
                t = y + 11.0
            );
        }
    }

    /// Each lane's line, step by step: dashed and grey while its server is down.
    fn lanes(&self, l: &Layout, out: &mut String) {
        for (lane, x) in l.lane_x.iter().enumerate() {
            for step in 0..=l.steps {
                let down = self.down[step].get(lane).copied().unwrap_or(false);
                let class = if down { "sd-lane-down" } else { "sd-lane" };
                let y2 = if step == l.steps {
                    l.bottom()
                } else {
                    l.y(step + 1)
                };
                let _ = writeln!(
                    out,
                    "<line class=\"{class}\" x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{y2}\"/>",
                    l.y(step)
                );
            }
        }
    }
}

impl Run<'_> {
    /// One message: a line from send to end with a head when delivered, a cross where it was
    /// lost, a dot where it was discarded as moot, a short stub when still in flight. Its
    /// `data-` attributes say which message it is and where it starts and ends.
    fn draw_arrow(&self, l: &Layout, a: &Line, out: &mut String) {
        let (src, dst) = (a.src, a.dst);
        let (xs, xd) = (l.lane_x[src], l.lane_x[dst]);
        let y1 = l.y(a.sent);
        let given = a.ended <= self.given && a.fate != Fate::InFlight;
        let (x2, y2) = match a.fate {
            Fate::Delivered => (xd, l.y(a.ended)),
            Fate::Dropped | Fate::Discarded => (((xs + xd) / 2.0).round(), l.y(a.ended)),
            Fate::InFlight => ((xs + (xd - xs) * 0.3).round(), y1 + ROW * 0.6),
        };
        let head = match (a.fate, given) {
            (Fate::Delivered, true) => "given",
            (Fate::Delivered, false) => "delivered",
            (Fate::InFlight, _) => "in-flight",
            _ => "",
        };
        let marker = match head {
            "" => String::new(),
            h => format!(" marker-end=\"url(#{}sd-head-{h})\"", self.ending.id),
        };
        let grey = if given { " sd-given-msg" } else { "" };
        let (fate, label) = (a.fate.name(), escape(&a.label));
        let _ = writeln!(
            out,
            "<line class=\"sd-msg sd-{fate}{grey}\" x1=\"{xs}\" y1=\"{y1}\" x2=\"{x2}\" \
             y2=\"{y2}\"{marker} data-src=\"{}\" data-dst=\"{}\" data-sent=\"{}\" \
             data-ended=\"{}\" data-fate=\"{fate}\"><title>{label} ({fate}, sent at step {}, \
             {} at step {})</title></line>",
            escape(&self.names[src]),
            escape(&self.names[dst]),
            a.sent,
            a.ended,
            a.sent,
            if a.fate == Fate::InFlight {
                "still in flight"
            } else {
                fate
            },
            a.ended,
        );
        match a.fate {
            Fate::Dropped => cross(out, x2, y2, 5.0),
            Fate::Discarded => {
                let _ = writeln!(
                    out,
                    "<circle cx=\"{x2}\" cy=\"{y2}\" r=\"2.5\" fill=\"#999\"/>"
                );
            }
            _ => {}
        }
    }

    /// Each lane's state at each step; a cell that changed at that step is bold on yellow.
    fn cells(&self, l: &Layout, out: &mut String) {
        for (step, row) in self.cells.iter().enumerate() {
            for (lane, text) in row.iter().enumerate() {
                let changed = step > 0 && self.cells[step - 1][lane] != *text;
                let (x, y) = (l.lane_x[lane] + CELL_GAP, l.y(step));
                if changed {
                    let _ = writeln!(
                        out,
                        "<rect class=\"sd-hl\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"16\" rx=\"3\"/>",
                        x - 3.0,
                        y - 8.0,
                        (text.chars().count() as f64 * CHAR + 6.0).round()
                    );
                }
                let class = match (changed, step <= self.given && step > 0) {
                    (true, _) => "sd-cell sd-changed",
                    (false, true) => "sd-cell sd-given",
                    (false, false) => "sd-cell sd-same",
                };
                let _ = writeln!(
                    out,
                    "<text class=\"{class}\" x=\"{x}\" y=\"{}\">{}</text>",
                    y + 4.0,
                    escape(text)
                );
            }
        }
    }

    /// Step numbers, events, and the marks on a lane: a timer (E, H or R in a circle), a
    /// crash (a red cross), a restart (↺), a proposal (a square).
    fn markers(&self, l: &Layout, out: &mut String) {
        for (step, event) in self.events.iter().enumerate() {
            let (y, given) = (l.y(step), step > 0 && step <= self.given);
            let class = if given { " class=\"sd-given\"" } else { "" };
            let _ = writeln!(
                out,
                "<text{class} x=\"{}\" y=\"{}\" text-anchor=\"end\">{step}</text>\
                 <text{class} x=\"{}\" y=\"{}\">{}</text>",
                LEFT - 6.0,
                y + 4.0,
                l.event_x,
                y + 4.0,
                escape(event)
            );
            let title = format!("<title>{}</title>", escape(event));
            let at = |i: usize| l.lane_x[i];
            for mark in self.marks.get(step).into_iter().flatten() {
                match *mark {
                    Mark::Timer(i, letter) => {
                        glyph(out, at(i), y, "sd-timer", &letter.to_string(), &title)
                    }
                    Mark::Restart(i) => glyph(out, at(i), y, "sd-restart", "↺", &title),
                    Mark::Crash(i) => cross(out, at(i), y, 7.0),
                    Mark::Propose(i) => {
                        let _ = writeln!(
                            out,
                            "<rect class=\"sd-propose\" x=\"{}\" y=\"{}\" width=\"9\" height=\"9\">{title}</rect>",
                            at(i) - 4.5,
                            y - 4.5
                        );
                    }
                }
            }
        }
    }

    /// A lasso's cycle: a bracket right of the events from the step it returns to down to the
    /// last step, its head pointing back up, labelled with the step.
    fn cycle(&self, l: &Layout, out: &mut String) {
        let Some(k) = self.ending.loop_from else {
            return;
        };
        let x = l.width - 100.0;
        let (top, bottom) = (l.y(k), l.y(l.steps));
        let _ = writeln!(
            out,
            "<path class=\"sd-cycle\" d=\"M {a} {bottom} H {x} V {top} H {a}\" \
             marker-end=\"url(#{id}sd-head-cycle)\"><title>steps {from}-{to} repeat forever</title>\
             </path><text x=\"{t}\" y=\"{m}\" fill=\"#1f5fbf\">↻ back to</text>\
             <text x=\"{t}\" y=\"{m2}\" fill=\"#1f5fbf\">step {k}</text>",
            a = x - 14.0,
            id = self.ending.id,
            from = k + 1,
            to = l.steps,
            t = x + 6.0,
            m = (top + bottom) / 2.0,
            m2 = (top + bottom) / 2.0 + 14.0,
        );
    }

    /// The lines after the last step (the violated property and what it concerns, how a
    /// lasso goes on), and the legend. Returns the diagram's height.
    fn end(&self, l: &Layout, out: &mut String) -> f64 {
        let mut y = l.bottom() + 22.0;
        let mut lines: Vec<(String, &str)> = Vec::new();
        if let Some(title) = &self.ending.title {
            lines.push((format!("✗ {title}"), "sd-bad"));
        }
        lines.extend(self.ending.lines.iter().map(|s| (s.clone(), "")));
        if let Some(k) = self.ending.loop_from {
            let text = format!(
                "↻ back to step {k}: steps {}-{} repeat forever",
                k + 1,
                l.steps
            );
            lines.push((text, ""));
        }
        lines.extend(LEGEND.iter().map(|s| (s.to_string(), "sd-given")));
        for (text, class) in lines {
            let _ = writeln!(
                out,
                "<text class=\"{class}\" x=\"{LEFT}\" y=\"{y}\">{}</text>",
                escape(&text)
            );
            y += 17.0;
        }
        y
    }
}

/// What the marks mean, written under every diagram (two lines, to stay within its width).
const LEGEND: [&str; 2] = [
    "arrows: blue delivered · red dashed with ×: lost · grey dotted: discarded as moot · orange stub: in flight",
    "on a lane: E/H/R timer (election, heartbeat, retry) · red ×: crash · ↺: restart · ■: proposal · yellow: changed",
];

/// A cross centred at (x, y): a lost message, or a crash on a lane.
fn cross(out: &mut String, x: f64, y: f64, r: f64) {
    let _ = writeln!(
        out,
        "<path class=\"sd-x\" d=\"M {} {} L {} {} M {} {} L {} {}\"/>",
        x - r,
        y - r,
        x + r,
        y + r,
        x - r,
        y + r,
        x + r,
        y - r
    );
}

/// A circle on a lane with one character in it: a timer or a restart.
fn glyph(out: &mut String, x: f64, y: f64, class: &str, text: &str, title: &str) {
    let _ = writeln!(
        out,
        "<g><circle class=\"{class}\" cx=\"{x}\" cy=\"{y}\" r=\"7\"/><text x=\"{x}\" y=\"{}\" \
         text-anchor=\"middle\" style=\"font-size:9px\">{text}</text>{title}</g>",
        y + 3.0
    );
}

/// One message arrow of a drawing, read back from its `<line>` element: for tests and tools
/// that check what a diagram shows.
#[derive(Clone, Debug, PartialEq)]
pub struct DrawnArrow {
    /// The sender's lane name (`data-src`).
    pub src: String,
    /// The receiver's lane name (`data-dst`).
    pub dst: String,
    /// The step that sent it (`data-sent`).
    pub sent: usize,
    /// The step where it ended (`data-ended`).
    pub ended: usize,
    /// How it ended (`data-fate`): `delivered`, `dropped`, `discarded` or `in-flight`.
    pub fate: String,
    /// Its line's ends, x1, y1, x2, y2.
    pub ends: [f64; 4],
    /// Its tooltip: the message and where it went.
    pub label: String,
}

/// Every message arrow of an SVG drawn here (by `check --svg`/`--html`, the explorer or `sim
/// --svg`), in drawing order; an element it cannot read is left out.
pub fn drawn_arrows(svg: &str) -> Vec<DrawnArrow> {
    let attr = |el: &str, name: &str| -> Option<String> {
        let from = el.find(&format!(" {name}=\""))? + name.len() + 3;
        Some(el[from..from + el[from..].find('"')?].to_string())
    };
    svg.split("<line class=\"sd-msg ")
        .skip(1)
        .filter_map(|el| {
            let el = &el[..el.find("</line>")?];
            let num = |n: &str| attr(el, n)?.parse::<f64>().ok();
            Some(DrawnArrow {
                src: attr(el, "data-src")?,
                dst: attr(el, "data-dst")?,
                sent: attr(el, "data-sent")?.parse().ok()?,
                ended: attr(el, "data-ended")?.parse().ok()?,
                fate: attr(el, "data-fate")?,
                ends: [num("x1")?, num("y1")?, num("x2")?, num("y2")?],
                label: el[el.find("<title>")? + 7..].to_string(),
            })
        })
        .collect()
}

/// Tags open and close in order, attributes are quoted, `&` starts an entity: enough of
/// XML's well-formedness to catch a broken drawing. The unit tests here and the CLI tests of
/// `check --svg`/`--html` check every drawing with it.
pub fn well_formed(xml: &str) -> Result<(), String> {
    let mut open: Vec<&str> = Vec::new();
    let mut rest = xml;
    while let Some(at) = rest.find('<') {
        let text = &rest[..at];
        if let Some(amp) = text.find('&') {
            let entity = &text[amp..];
            let ok = ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"]
                .iter()
                .any(|e| entity.starts_with(e));
            if !ok {
                return Err(format!("bare & in {text}"));
            }
        }
        if text.contains('>') {
            return Err(format!("bare > in {text}"));
        }
        let end = rest[at..].find('>').ok_or("unclosed tag")? + at;
        let tag = &rest[at + 1..end];
        rest = &rest[end + 1..];
        if tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        if !tag.matches('"').count().is_multiple_of(2) {
            return Err(format!("unbalanced quotes in <{tag}>"));
        }
        if let Some(name) = tag.strip_prefix('/') {
            match open.pop() {
                Some(o) if o == name => {}
                o => return Err(format!("</{name}> closes {o:?}")),
            }
        } else if !tag.ends_with('/') {
            open.push(tag.split_whitespace().next().unwrap_or(""));
        }
    }
    match open.last() {
        None => Ok(()),
        Some(o) => Err(format!("<{o}> is never closed")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::spec;
    use stateright::Model;
    use std::path::Path;

    fn model(text: &str) -> RaftModel {
        RaftModel::new(spec::parse("t", Path::new("t.toml"), text).unwrap())
    }

    /// The actions a run takes, each named as traces print it, from the fresh cluster; drops
    /// are taken whether the network is lossy or not, as given steps are.
    fn run(m: &RaftModel, steps: &[&str]) -> Vec<Action> {
        let mut state = m.fresh_state();
        let mut actions = Vec::new();
        for step in steps {
            let mut enabled = Vec::new();
            m.actions(&state, &mut enabled);
            enabled.extend(state.network.iter().map(|e| Action::Drop(e.clone())));
            let action = enabled
                .into_iter()
                .find(|a| m.describe(a) == *step)
                .unwrap_or_else(|| panic!("{step} is not enabled"));
            state = m.next_state(&state, action.clone()).expect("it changes");
            actions.push(action);
        }
        actions
    }

    #[test]
    fn escape_writes_the_five_entities() {
        assert_eq!(escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
        assert!(well_formed("<a x=\"1\"><b/>&amp;</a>").is_ok());
        assert!(well_formed("<a><b></a>").is_err());
        assert!(well_formed("<a>x & y</a>").is_err());
    }

    const NO_STEP_DOWN: [&str; 6] = [
        "S0: election timeout",
        "S0 → S2: RequestVote(t1, last=0@t0)",
        "S2: election timeout",
        "S2 → S0: Vote(t1, yes)",
        "S2 → S0: RequestVote(t2, last=0@t0)",
        "S0 → S2: Vote(t2, yes)",
    ];

    /// The zoo's no_step_down trace: every delivery starts at the step that sent it, and the one
    /// message whose sender moved to a new term while it was in flight is S2's Vote(t1).
    #[test]
    fn each_delivery_starts_where_its_message_was_sent() {
        let m = model(include_str!("../../models/bugs/no_step_down.toml"));
        let actions = run(&m, &NO_STEP_DOWN);
        let states = m.replay(&actions);
        let arrows = m.arrows(&states, &actions);
        let delivered: Vec<(usize, usize)> = arrows
            .iter()
            .filter(|a| a.fate == Fate::Delivered)
            .map(|a| (a.sent, a.ended))
            .collect();
        assert_eq!(delivered, [(1, 2), (2, 4), (3, 5), (5, 6)]);
        let stale: Vec<String> = arrows
            .iter()
            .filter(|a| a.fate == Fate::Delivered && a.ended > a.sent + 1)
            .filter(|a| {
                let src = a.envelope.src as usize;
                states[a.sent].servers[src].term() != states[a.ended - 1].servers[src].term()
            })
            .map(|a| m.describe(&Action::Deliver(a.envelope.clone())))
            .collect();
        assert_eq!(stale, ["S2 → S0: Vote(t1, yes)"]);
        // The stubs are exactly what is still in flight.
        let mut stubs: Vec<Envelope> = arrows
            .iter()
            .filter(|a| a.fate == Fate::InFlight)
            .map(|a| a.envelope.clone())
            .collect();
        stubs.sort();
        let mut network = states[6].network.clone();
        network.sort();
        assert!(stubs == network && !stubs.is_empty());
    }

    /// A lost message ends where it was lost; in a duplicating network a delivered message
    /// stays in flight, so its send also ends as a stub.
    #[test]
    fn losses_and_duplicates_end_their_arrows_where_they_happen() {
        let m = model("[network]\nlossy = true\n[bounds]\nmax_term = 2\nmax_log_len = 0\n");
        let actions = run(
            &m,
            &[
                "S0: election timeout",
                "network drops S0 → S1: RequestVote(t1, last=0@t0)",
                "S0 → S2: RequestVote(t1, last=0@t0)",
            ],
        );
        let arrows = m.arrows(&m.replay(&actions), &actions);
        let ends: Vec<(u8, usize, usize, Fate)> = arrows
            .iter()
            .map(|a| (a.envelope.dst, a.sent, a.ended, a.fate))
            .collect();
        assert!(ends.contains(&(1, 1, 2, Fate::Dropped)));
        assert!(ends.contains(&(2, 1, 3, Fate::Delivered)));
        assert!(ends.contains(&(2, 1, 3, Fate::InFlight)));
        assert!(ends.contains(&(0, 3, 3, Fate::InFlight)));
    }

    /// The drawing: well-formed, one lane per actor, text escaped, given rows grey, a lasso's
    /// cycle bracketed and tinted.
    #[test]
    fn the_drawing_is_well_formed_and_marks_given_steps_and_cycles() {
        let text = "[[client]]\nops = [\"put x 1\"]\n[given]\nsteps = [\"S0: election timeout\"]\n\
                    [bounds]\nmax_term = 2\nmax_log_len = 1\n";
        let m = model(text);
        let actions = run(&m, &NO_STEP_DOWN[..3]);
        let ending = Ending {
            title: Some("applied <= commit".into()),
            lines: vec!["S0 & S1".into()],
            loop_from: Some(2),
            id: "x-".into(),
        };
        let svg = m.sequence_diagram(&actions, 1, &ending).svg();
        well_formed(&svg).unwrap();
        assert!(svg.contains("applied &lt;= commit") && svg.contains("S0 &amp; S1"));
        let names: Vec<&str> = svg
            .split("class=\"sd-name\"")
            .skip(1)
            .map(|t| t.split('>').nth(1).unwrap().split('<').next().unwrap())
            .collect();
        assert_eq!(names, ["S0", "S1", "S2", "C0", "event"]);
        assert_eq!(svg.matches("class=\"sd-given-row\"").count(), 1);
        assert_eq!(svg.matches("class=\"sd-cycle-row\"").count(), 1);
        assert!(svg.contains("url(#x-sd-head-cycle)") && svg.contains("step 2</text>"));
        let stacked = Drawing::stack(&[m.sequence_diagram(&actions, 1, &ending)]);
        well_formed(&stacked).unwrap();
    }

    /// The explorer's path starts after the given steps: its drawing shows them first, greyed.
    #[test]
    fn the_explorer_draws_its_path_after_the_given_steps() {
        let m = model(
            "[given]\nsteps = [\"S0: election timeout\"]\n[bounds]\nmax_term = 2\nmax_log_len = 0\n",
        );
        let start = m.init_states().remove(0);
        let mut enabled = Vec::new();
        m.actions(&start, &mut enabled);
        let to_s2 = "S0 → S2: RequestVote(t1, last=0@t0)";
        let deliver = enabled.into_iter().find(|a| m.describe(a) == to_s2);
        let path = stateright::Path::from_actions(&m, start, deliver.iter()).unwrap();
        let svg = m.as_svg(path).expect("a drawing");
        well_formed(&svg).unwrap();
        assert_eq!(svg.matches("class=\"sd-given-row\"").count(), 1);
        let arrow = svg.split("sd-msg sd-delivered").nth(1).expect("a delivery");
        assert!(
            arrow.contains("data-sent=\"1\" data-ended=\"2\""),
            "{arrow}"
        );
    }
}

//! Sequence diagrams of simulated runs (`sim --svg`): the same drawing as the checker's traces
//! ([`crate::model::diagram`]), filled from what the real node loop did. A step is one round of
//! a server or a client that took in, sent or changed something, or one fault; each datagram is
//! an arrow from the round that sent it to the round that read it (or a cross where the network
//! lost it, or where it reached a server that was down). A run has thousands of steps, so only
//! the last ones are kept and drawn: a failure is at the end, and what led to it just before.

use crate::model::diagram::{Drawing, Ending, Fate, Line, Mark, Picture};
use std::collections::{BTreeMap, VecDeque};

/// One step as recorded: its absolute number is its place in the run.
#[derive(Clone, Debug)]
struct Step {
    event: String,
    cells: Vec<String>,
    down: Vec<bool>,
    marks: Vec<Mark>,
}

/// A datagram still in the network or in a mailbox.
#[derive(Clone, Debug)]
struct Open {
    src: usize,
    dst: usize,
    sent: usize,
    label: String,
}

/// What a run's datagrams and rounds look like, as far back as `keep` steps.
#[derive(Clone, Debug)]
pub struct Recorder {
    names: Vec<String>,
    keep: usize,
    /// The steps kept; `steps[0]` is step `first`.
    steps: VecDeque<Step>,
    first: usize,
    /// The step before `first` (or the start), which the drawing opens with.
    before: Option<Step>,
    next_id: u64,
    open: BTreeMap<u64, Open>,
    /// Arrows that ended, in absolute steps; those that ended before `first` are let go.
    ended: Vec<Line>,
}

impl Recorder {
    /// A recorder for lanes named `names` (servers first; clients are added as they start),
    /// drawing the last `keep` steps. Step 0 is the start: `cells` and `down` as they are then.
    pub fn new(names: Vec<String>, cells: Vec<String>, down: Vec<bool>, keep: usize) -> Recorder {
        let start = Step {
            event: "start".into(),
            cells,
            down,
            marks: Vec::new(),
        };
        Recorder {
            names,
            keep: keep.max(1),
            steps: VecDeque::from([start]),
            first: 0,
            before: None,
            next_id: 1,
            open: BTreeMap::new(),
            ended: Vec::new(),
        }
    }

    /// A new lane (a client started).
    pub fn add_lane(&mut self, name: String) {
        self.names.push(name);
    }

    /// The number the next step will get: sends and deliveries of the round being recorded
    /// belong to it.
    fn next_step(&self) -> usize {
        self.first + self.steps.len()
    }

    /// A datagram from lane `src` to lane `dst` enters the network in the round being recorded;
    /// returns its id, which its arrival names.
    pub fn sent(&mut self, src: usize, dst: usize, label: String) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let sent = self.next_step();
        self.open.insert(
            id,
            Open {
                src,
                dst,
                sent,
                label,
            },
        );
        id
    }

    /// A datagram the network lost as it was sent (loss, or a cut link).
    pub fn lost_at_send(&mut self, src: usize, dst: usize, label: String) {
        let id = self.sent(src, dst, label);
        self.end(id, Fate::Dropped);
    }

    /// Datagram `id` reached its receiver in the round being recorded.
    pub fn delivered(&mut self, id: u64) {
        self.end(id, Fate::Delivered);
    }

    /// Datagram `id` was lost: it arrived at a server that was down or cut off, or its
    /// receiver crashed with it unread. Drawn as lost at the step being recorded.
    pub fn lost(&mut self, id: u64) {
        self.end(id, Fate::Dropped);
    }

    fn end(&mut self, id: u64, fate: Fate) {
        if let Some(o) = self.open.remove(&id) {
            self.ended.push(Line {
                src: o.src,
                dst: o.dst,
                sent: o.sent,
                ended: self.next_step(),
                fate,
                label: o.label,
            });
        }
    }

    /// Records a step: what happened, each lane's state after it, and its marks.
    pub fn step(&mut self, event: String, cells: Vec<String>, down: Vec<bool>, marks: Vec<Mark>) {
        self.steps.push_back(Step {
            event,
            cells,
            down,
            marks,
        });
        if self.steps.len() > self.keep {
            self.before = self.steps.pop_front();
            self.first += 1;
            let first = self.first;
            self.ended.retain(|l| l.ended >= first);
        }
    }

    /// The last cells recorded (to tell whether a round changed anything).
    pub fn last_cells(&self) -> &[String] {
        &self.steps.back().expect("the start is always kept").cells
    }

    /// The steps kept as a picture: row 0 is where it starts (the run's start, or "earlier
    /// steps not shown" with the lanes as they were then), and arrows sent earlier start there.
    pub fn picture(&self) -> Picture {
        let lanes = self.names.len();
        let widen = |cells: &[String]| {
            let mut c = cells.to_vec();
            c.resize(lanes, String::new());
            c
        };
        let (offset, rows): (usize, Vec<&Step>) = match &self.before {
            None => (self.first, self.steps.iter().collect()),
            Some(b) => (
                self.first - 1,
                std::iter::once(b).chain(&self.steps).collect(),
            ),
        };
        let mut events: Vec<String> = rows.iter().map(|s| s.event.clone()).collect();
        if self.before.is_some() {
            events[0] = format!("… {offset} earlier steps not shown");
        }
        let last = offset + rows.len() - 1;
        let relative = |step: usize| step.saturating_sub(offset);
        let mut lines: Vec<Line> = self
            .ended
            .iter()
            .filter(|l| l.ended > offset)
            .map(|l| Line {
                sent: relative(l.sent),
                ended: relative(l.ended),
                ..l.clone()
            })
            .collect();
        lines.extend(self.open.values().map(|o| Line {
            src: o.src,
            dst: o.dst,
            sent: relative(o.sent),
            ended: last - offset,
            fate: Fate::InFlight,
            label: o.label.clone(),
        }));
        Picture {
            names: self.names.clone(),
            cells: rows.iter().map(|s| widen(&s.cells)).collect(),
            events,
            down: rows.iter().map(|s| s.down.clone()).collect(),
            marks: rows.iter().map(|s| s.marks.clone()).collect(),
            lines,
            given: 0,
        }
    }

    /// The picture drawn with `ending`.
    pub fn draw(&self, ending: &Ending) -> Drawing {
        self.picture().draw(ending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(a: &str, b: &str) -> Vec<String> {
        vec![a.to_string(), b.to_string()]
    }

    /// An arrow runs from the step that sent it to the step that read it; one still unread is a
    /// stub at the end; one lost where it was sent ends where it started.
    #[test]
    fn arrows_run_from_the_sending_step_to_the_reading_step() {
        let names = vec!["S0".to_string(), "S1".to_string()];
        let mut r = Recorder::new(names, cells("F", "F"), vec![false; 2], 10);
        let a = r.sent(0, 1, "A".into());
        r.lost_at_send(0, 1, "B".into());
        r.step("S0 round".into(), cells("C", "F"), vec![false; 2], vec![]);
        r.step("S0 timer".into(), cells("C", "F"), vec![false; 2], vec![]);
        r.delivered(a);
        let c = r.sent(1, 0, "C".into());
        r.step("S1 round".into(), cells("C", "F"), vec![false; 2], vec![]);
        let p = r.picture();
        let ends: Vec<(&str, usize, usize, Fate)> = p
            .lines
            .iter()
            .map(|l| (l.label.as_str(), l.sent, l.ended, l.fate))
            .collect();
        assert_eq!(
            ends,
            [
                ("B", 1, 1, Fate::Dropped),
                ("A", 1, 3, Fate::Delivered),
                ("C", 3, 3, Fate::InFlight)
            ]
        );
        assert_eq!(p.events.len(), 4);
        let _ = c;
    }

    /// Only the last `keep` steps are drawn: arrows sent earlier start at row 0, which says how
    /// many steps it stands for; arrows that ended earlier are gone.
    #[test]
    fn only_the_last_steps_are_kept() {
        let names = vec!["S0".to_string(), "S1".to_string()];
        let mut r = Recorder::new(names, cells("F", "F"), vec![false; 2], 3);
        let early = r.sent(0, 1, "early".into());
        let gone = r.sent(0, 1, "gone".into());
        r.step("1".into(), cells("a", "F"), vec![false; 2], vec![]);
        r.delivered(gone);
        for k in 2..=6 {
            r.step(k.to_string(), cells("a", "F"), vec![false; 2], vec![]);
        }
        r.delivered(early);
        r.step("7".into(), cells("a", "b"), vec![false; 2], vec![]);
        let p = r.picture();
        assert_eq!(p.events, ["… 4 earlier steps not shown", "5", "6", "7"]);
        let ends: Vec<(&str, usize, usize)> = p
            .lines
            .iter()
            .map(|l| (l.label.as_str(), l.sent, l.ended))
            .collect();
        assert_eq!(ends, [("early", 0, 3)]);
        let svg = r.draw(&Ending::default()).svg();
        crate::model::diagram::well_formed(&svg).unwrap();
    }
}

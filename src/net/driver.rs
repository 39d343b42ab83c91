//! Drives an unchanged stateright [`Actor`] in real time: keeps its state, turns its `SetTimer`
//! commands into deadlines (a random duration in the requested range), and hands back what it
//! wants sent and saved. The I/O (sockets, files) belongs to the caller, which must make a
//! `save` durable before sending any of the messages gathered with it.

use crate::protocol::server::Storage;
use crate::protocol::types::Msg;
use stateright::actor::{Actor, Command, Id, Out};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A tiny xorshift64* generator: timer jitter and session ids need no more.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from the clock, the process id and `salt`, so that processes and
    /// sessions started at the same moment still draw differently.
    pub fn seeded(salt: u64) -> Rng {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mut s = t ^ salt.wrapping_mul(0x9e3779b97f4a7c15) ^ ((std::process::id() as u64) << 32);
        if s == 0 {
            s = 0x2545f4914f6cdd1d;
        }
        let mut rng = Rng(s);
        for _ in 0..4 {
            rng.next_u64();
        }
        rng
    }

    /// A generator that depends on `seed` alone (never on the clock): what a deterministic
    /// simulation draws from, so that one seed gives one run.
    pub fn from_seed(seed: u64) -> Rng {
        // splitmix64 of the seed: close seeds give unrelated streams, and the state is never 0.
        let mut z = seed.wrapping_add(0x9e3779b97f4a7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^= z >> 31;
        Rng(if z == 0 { 0x2545f4914f6cdd1d } else { z })
    }

    /// The next 64 pseudo-random bits (session ids, message ids, timer jitter).
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545f4914f6cdd1d)
    }

    /// A duration in `range` (its start when the range is empty).
    pub fn duration_in(&mut self, range: &Range<Duration>) -> Duration {
        let lo = range.start.as_nanos() as u64;
        let hi = range.end.as_nanos() as u64;
        if hi <= lo {
            return range.start;
        }
        Duration::from_nanos(lo + self.next_u64() % (hi - lo))
    }
}

/// What a batch of handler invocations asks of the outside world.
#[derive(Debug, Default)]
pub struct Effects {
    /// Messages to send, in order; only once `save` (if any) is durable.
    pub sends: Vec<(Id, Msg)>,
    /// The last state saved: it contains everything saved before it in the batch.
    pub save: Option<Storage>,
}

/// Runs one actor in real time: its state, its armed timers as deadlines, and the randomness
/// that picks them; the loop around it (node or client session) owns the socket and files.
pub struct Driver<A: Actor> {
    actor: A,
    id: Id,
    /// `None` only while a handler runs: the handler gets the state as an owned `Cow`, so its
    /// first write (`Cow::to_mut`) does not copy the whole state (log and store) as a borrowed
    /// one would. The model checker needs that copy; a single real server does not.
    state: Option<A::State>,
    /// A `BTreeMap` so that timers due at the same instant fire in one order on every run.
    timers: BTreeMap<A::Timer, Instant>,
    rng: Rng,
}

impl<A> Driver<A>
where
    A: Actor<Msg = Msg, Storage = Storage>,
    A::Timer: Copy + Ord,
{
    /// Starts the actor (from `storage` when restarting) and collects its first commands in `fx`,
    /// on the real clock with a generator seeded from it.
    pub fn start(actor: A, id: Id, storage: Option<Storage>, fx: &mut Effects) -> Self {
        let rng = Rng::seeded(usize::from(id) as u64);
        Driver::start_at(actor, id, storage, Instant::now(), rng, fx)
    }

    /// Starts the actor as [`start`](Self::start) does, at time `now` and drawing timer jitter
    /// from `rng`: what a simulated world passes to make the run depend on its seed alone.
    pub fn start_at(
        actor: A,
        id: Id,
        storage: Option<Storage>,
        now: Instant,
        rng: Rng,
        fx: &mut Effects,
    ) -> Self {
        let mut out = Out::new();
        let state = actor.on_start(id, &storage, &mut out);
        let mut d = Driver {
            actor,
            id,
            state: Some(state),
            timers: BTreeMap::new(),
            rng,
        };
        d.absorb(out, now, fx);
        d
    }

    /// The actor's current state, for status reports and progress checks.
    pub fn state(&self) -> &A::State {
        self.state
            .as_ref()
            .expect("the state is back once a handler returns")
    }

    /// Hands `msg` from `src` to the actor at time `now` and collects what it asks for in `fx`.
    pub fn deliver(&mut self, src: Id, msg: Msg, now: Instant, fx: &mut Effects) {
        let mut out = Out::new();
        let mut cow = Cow::Owned(self.state.take().expect("not inside a handler"));
        self.actor.on_msg(self.id, &mut cow, src, msg, &mut out);
        self.state = Some(cow.into_owned());
        self.absorb(out, now, fx);
    }

    /// Moves `timer`, if armed, to `at` when that is later: the runtime's way to say "the
    /// leader is still talking" while a message too large for a datagram is on its way in
    /// acknowledged fragments (Figure 13's chunks each reset the election timer). Only delays a
    /// timer, which no safety property depends on.
    pub fn postpone(&mut self, timer: A::Timer, at: Instant) {
        if let Some(due) = self.timers.get_mut(&timer) {
            *due = (*due).max(at);
        }
    }

    /// The earliest armed timer's deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.values().min().copied()
    }

    /// Fires every timer due by `now`, earliest first (timers are one-shot); the timers fired,
    /// in order (for `node --trace`).
    pub fn fire_due(&mut self, now: Instant, fx: &mut Effects) -> Vec<A::Timer> {
        let mut fired = Vec::new();
        loop {
            let due = self
                .timers
                .iter()
                .filter(|(_, &at)| at <= now)
                .min_by_key(|(_, &at)| at)
                .map(|(&t, _)| t);
            let Some(timer) = due else { break };
            self.timers.remove(&timer);
            fired.push(timer);
            let mut out = Out::new();
            let mut cow = Cow::Owned(self.state.take().expect("not inside a handler"));
            self.actor.on_timeout(self.id, &mut cow, &timer, &mut out);
            self.state = Some(cow.into_owned());
            self.absorb(out, now, fx);
        }
        fired
    }

    fn absorb(&mut self, out: Out<A>, now: Instant, fx: &mut Effects) {
        for cmd in out {
            match cmd {
                Command::Send(id, msg) => fx.sends.push((id, msg)),
                Command::SetTimer(timer, range) => {
                    let at = now + self.rng.duration_in(&range);
                    self.timers.insert(timer, at);
                }
                Command::CancelTimer(timer) => {
                    self.timers.remove(&timer);
                }
                Command::Save(storage) => fx.save = Some(storage),
                // Neither the server nor the client actor asks for random choices.
                Command::ChooseRandom(..) => {}
            }
        }
    }
}

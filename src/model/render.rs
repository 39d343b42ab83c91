//! States and steps as people read them: one line per event (`S0 → S1: RequestVote(t1, ...)`),
//! one line per server, and the whole system in a few lines. Given steps are written in the
//! same words, so this is also the language of model files.

use super::{Action, RaftModel, SystemState};
use crate::protocol::types::{AppendOutcome, ClientReply, Command, Msg, Op, Timer};
use crate::protocol::view::ServerView;
use std::fmt;

/// How the description of a dropped message starts (trace tables group given drops by it).
pub const DROP_EVENT: &str = "network drops ";

impl RaftModel {
    /// One line saying what happened: who sent what to whom, which timer fired, who crashed.
    pub fn describe(&self, action: &Action) -> String {
        match action {
            Action::Deliver(env) => format!(
                "{} → {}: {}",
                self.actor_name(env.src),
                self.actor_name(env.dst),
                self.describe_msg(&env.msg)
            ),
            Action::Drop(env) => format!(
                "{DROP_EVENT}{} → {}: {}",
                self.actor_name(env.src),
                self.actor_name(env.dst),
                self.describe_msg(&env.msg)
            ),
            Action::Timeout(i, Timer::Election) => {
                format!("{}: election timeout", self.actor_name(*i))
            }
            Action::Timeout(i, Timer::Heartbeat) => {
                format!("{}: heartbeat timer", self.actor_name(*i))
            }
            Action::Timeout(i, Timer::ClientRetry) => {
                format!("{}: retry timer", self.actor_name(*i))
            }
            Action::Crash(i) => format!("{} crashes", self.actor_name(*i)),
            Action::Restart(i) => format!("{} restarts from storage", self.actor_name(*i)),
            Action::Damage(i, kind) => {
                format!(
                    "{}'s storage is damaged: {}",
                    self.actor_name(*i),
                    kind.word()
                )
            }
            Action::Propose(i, k) => format!(
                "{} accepts proposal #{} ({})",
                self.actor_name(*i),
                k + 1,
                self.cfg.proposals[*k as usize]
            ),
            Action::Request(i, c) => format!(
                "session {} → {}: {}",
                c.client,
                self.actor_name(*i),
                request_words(c)
            ),
        }
    }

    /// A message as traces print it (`RequestVote(t1, last=0@t0)`, `Vote(t1, yes)`): also the words
    /// given steps are written in.
    pub fn describe_msg(&self, msg: &Msg) -> String {
        message(msg)
    }

    /// A server's one-line summary: `S0 leader t2 vote=S0 log=[1:x=1] commit=1 applied=1`.
    pub fn server_summary(&self, state: &SystemState, i: usize) -> String {
        let s = &state.servers[i];
        if state.down[i] {
            format!("down (t{} log={})", s.term(), s.log().summary())
        } else {
            format!("{s:?}")
        }
    }

    /// The whole system, one line per actor (stateright's `format_step`, and debugging).
    pub fn render_state(&self, state: &SystemState) -> String {
        let mut lines = Vec::new();
        for i in 0..self.n() {
            lines.push(format!("S{i}: {}", self.server_summary(state, i)));
        }
        for c in 0..state.clients.len() {
            lines.push(self.client_summary(state, c));
        }
        lines.push(format!("in flight: {} messages", state.network.len()));
        for env in &state.network {
            lines.push(format!(
                "  {} → {}: {}",
                self.actor_name(env.src),
                self.actor_name(env.dst),
                self.describe_msg(&env.msg)
            ));
        }
        lines.join("\n")
    }

    /// A client's one-line summary: `C0: 1/2 ops, #2 get x → S0`.
    pub fn client_summary(&self, state: &SystemState, c: usize) -> String {
        let cs = &state.clients[c];
        let ops = &self.clients[c].cfg.ops;
        let doing = ops.get(cs.next_op()).map_or("done".to_string(), |op| {
            format!("#{} {op} → S{}", cs.request_id(), cs.target)
        });
        format!("C{c}: {}/{} ops, {doing}", cs.next_op(), ops.len())
    }
}

impl fmt::Debug for SystemState {
    /// Raft-readable state: one line per server and client.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.servers.iter().enumerate() {
            let down = if self.down[i] { " (down)" } else { "" };
            writeln!(f, "S{i}{down}: {s:?}")?;
        }
        for (c, cs) in self.clients.iter().enumerate() {
            writeln!(f, "C{c}: op #{} → S{}", cs.request_id(), cs.target)?;
        }
        write!(
            f,
            "network: {} messages, crashes: {}",
            self.network.len(),
            self.crashes
        )
    }
}

impl fmt::Debug for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Deliver(e) => write!(f, "Deliver {}→{} {:?}", e.src, e.dst, e.msg),
            Action::Drop(e) => write!(f, "Drop {}→{} {:?}", e.src, e.dst, e.msg),
            Action::Timeout(i, t) => write!(f, "Timeout {i} {t:?}"),
            Action::Crash(i) => write!(f, "Crash {i}"),
            Action::Restart(i) => write!(f, "Restart {i}"),
            Action::Damage(i, kind) => write!(f, "Damage {i} {}", kind.word()),
            Action::Propose(i, k) => write!(f, "Propose {i} #{k}"),
            Action::Request(i, c) => write!(f, "Request {i} {c:?}"),
        }
    }
}

/// A message as traces and diagrams print it (`RequestVote(t1, last=0@t0)`, `Vote(t1, yes)`),
/// whoever sent it: the model's actors or the simulator's nodes. Also the words given steps
/// are written in.
pub fn message(msg: &Msg) -> String {
    match msg {
        Msg::RequestVote {
            term,
            last_log_index,
            last_log_term,
        } => format!("RequestVote(t{term}, last={last_log_index}@t{last_log_term})"),
        Msg::RequestVoteReply { term, granted } => {
            format!("Vote(t{term}, {})", if *granted { "yes" } else { "no" })
        }
        Msg::AppendEntries {
            term,
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
        } => {
            let list: Vec<String> = entries.iter().map(|e| e.to_string()).collect();
            format!(
                    "AppendEntries(t{term}, prev={prev_log_index}@t{prev_log_term}, [{}], commit={leader_commit})",
                    list.join(" ")
                )
        }
        Msg::AppendEntriesReply { term, outcome } => match outcome {
            AppendOutcome::Matched { match_index } => {
                format!("AppendOk(t{term}, match={match_index})")
            }
            AppendOutcome::Conflict {
                term: ct,
                first_index,
            } => match ct {
                Some(ct) => format!("AppendFail(t{term}, conflict t{ct} from {first_index})"),
                None => format!("AppendFail(t{term}, log ends at {})", first_index - 1),
            },
        },
        Msg::InstallSnapshot { term, snapshot } => format!(
            "InstallSnapshot(t{term}, through {}@t{})",
            snapshot.last_index, snapshot.last_term
        ),
        Msg::InstallSnapshotReply { term, last_index } => {
            format!("SnapshotOk(t{term}, through {last_index})")
        }
        Msg::RecoveryQuery => "RecoveryQuery".to_string(),
        Msg::RecoveryReply {
            term,
            recovering,
            leader_last,
            holds_entries,
            ..
        } => {
            let who = match (recovering, leader_last) {
                (true, _) => " recovering".to_string(),
                (false, Some(last)) => format!(" leader, last={last}"),
                (false, None) => String::new(),
            };
            let holds = if *holds_entries { "" } else { ", empty" };
            format!("RecoveryReply(t{term}{who}{holds})")
        }
        Msg::ClientRequest(c) => format!("Request#{}({})", c.request_id, c.op),
        Msg::ClientResponse { request_id, reply } => match reply {
            ClientReply::Done(r) => format!("Response#{request_id}({r})"),
            ClientReply::NotLeader { leader } => match leader {
                Some(l) => format!("Response#{request_id}(not leader, try S{l})"),
                None => format!("Response#{request_id}(not leader)"),
            },
        },
    }
}

/// A request from a session outside the model, as given steps write it: `Request#3(put x=1)`,
/// the way traces print the message. `parse_request_words` reads it back.
pub fn request_words(c: &Command) -> String {
    format!("Request#{}({})", c.request_id, c.op)
}

/// Reads `session S → Si: Request#R(OP)` (as `describe` prints `Action::Request`) back: the
/// server and the command, or None when `step` is not of that form. `OP` is an operation as
/// `Op` prints it: `put k=v`, `append k+=v`, `get k`, `delete k` (the value may hold spaces).
pub fn parse_request_step(step: &str) -> Option<(u8, Command)> {
    let rest = step.strip_prefix("session ")?;
    let (client, rest) = rest.split_once(" → S")?;
    let (server, rest) = rest.split_once(": Request#")?;
    let (request_id, rest) = rest.split_once('(')?;
    let op = rest.strip_suffix(')')?;
    let (verb, args) = op.split_once(' ')?;
    let op = match verb {
        "put" => args.split_once('=').map(|(k, v)| Op::Put {
            key: k.into(),
            value: v.into(),
        })?,
        "append" => args.split_once("+=").map(|(k, v)| Op::Append {
            key: k.into(),
            value: v.into(),
        })?,
        "get" => Op::Get { key: args.into() },
        "delete" => Op::Delete { key: args.into() },
        _ => return None,
    };
    Some((
        server.parse().ok()?,
        Command {
            client: client.parse().ok()?,
            request_id: request_id.parse().ok()?,
            op,
        },
    ))
}

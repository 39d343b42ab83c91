//! The state-space explorer behind `check MODEL --explore [ADDR]`: a small HTTP server and one
//! self-contained page that agree with `check`. It opens at the model's name and description,
//! the initial state (after the model's given steps) and the shortest counterexample of every
//! violated property, found by the crate's own BFS (the search `check` runs, started in the
//! background so that the page answers at once). Each state shows the servers as the trace
//! table does, the clients, the messages in flight, the step that led there with the servers it
//! changed, the sequence diagram of the path so far, and every property's verdict computed on
//! that state (never on the path that led there).
//!
//! A state is named by its path from the search's start: the indices of the actions taken, each
//! into `Model::actions` of the state it was taken in (which lists actions in a fixed order), so
//! `/api/state?path=0,3,1` is the same state on every run. Routes:
//!
//! - `GET /`: the page (inline CSS and script, nothing fetched from elsewhere); `/#path=0,3,1`
//!   opens it at that state.
//! - `GET /api/model`: name, description, the search's figures and verdicts, and each violated
//!   property's counterexample as a path (`counterexamples`), each `sometimes` example too
//!   (`examples`).
//! - `GET /api/state?path=I,J,K`: that state (400 with a message for a path that is not one).

use crate::check::explain::concerns;
use crate::check::properties;
use crate::check::report::{self, searched_steps, PropertyReport, Report, Status};
use crate::check::runner::{self, RunOptions};
use crate::model::diagram::Ending;
use crate::model::spec::ModelConfig;
use crate::model::{Action, RaftModel, SystemState};
use serde_json::{json, Value};
use stateright::{Expectation, Model};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Connections served at once; more are answered 503, so a flood cannot exhaust threads.
const MAX_CONNECTIONS: usize = 64;
/// The longest request head read (request line and headers); longer ones are refused.
const MAX_REQUEST: usize = 16 * 1024;

/// What the page says about the verdicts it shows per state, so that nobody reads a state's
/// verdict as the model's.
pub const ON_STATE_NOTE: &str = "Verdicts on this state are computed on this state alone (its \
servers, network and the ghost history it carries): an always property holds or is violated \
here; a sometimes property is shown here or not; a liveness property is about whole runs and is \
not decided on a single state (its goal is shown). The search column is check's verdict on the \
whole model.";

/// Where the background search stands.
enum Search {
    /// Started at the instant given; the page polls until it ends.
    Running(Instant),
    /// Finished: its report (the same `check MODEL` prints).
    Done(Box<Report>),
    /// The search panicked: the message, shown instead of counterexamples.
    Failed(String),
}

/// The explorer of one model: the model to replay paths on, and the background search that
/// finds its counterexamples.
pub struct Explorer {
    model: RaftModel,
    name: String,
    description: String,
    search: Mutex<Search>,
}

/// An HTTP answer: status code, content type, body.
pub struct Response {
    /// 200, 400, 404, 405, 500 (a bug: the panic is on stderr) or 503.
    pub status: u16,
    /// `text/html` (the page) or `application/json` (everything else), with charset.
    pub content_type: &'static str,
    /// The body, sent with its length and `Connection: close`.
    pub body: String,
}

impl Response {
    fn json(status: u16, value: &Value) -> Response {
        Response {
            status,
            content_type: "application/json; charset=utf-8",
            body: value.to_string(),
        }
    }

    fn error(status: u16, message: &str) -> Response {
        Response::json(status, &json!({ "error": message }))
    }
}

/// A state reached by a path: the actions from the fresh cluster (given steps first) and the
/// state after each of them.
struct Walk {
    actions: Vec<Action>,
    states: Vec<SystemState>,
}

impl Explorer {
    /// The explorer of `cfg`, its search (`check`'s, with `opts`) started on a thread of its
    /// own: the page answers while it runs (the default model takes about 25 s) and shows the
    /// counterexamples when it ends.
    pub fn start(cfg: &ModelConfig, opts: RunOptions) -> Arc<Explorer> {
        let explorer = Arc::new(Explorer {
            model: crate::check::model_with_properties(cfg.clone()),
            name: cfg.name.clone(),
            description: cfg.file.description.clone(),
            search: Mutex::new(Search::Running(Instant::now())),
        });
        let (me, cfg) = (Arc::clone(&explorer), cfg.clone());
        std::thread::spawn(move || {
            let run = std::panic::AssertUnwindSafe(|| runner::run(&cfg, &opts));
            let done = match std::panic::catch_unwind(run) {
                Ok(report) => Search::Done(Box::new(report)),
                Err(e) => Search::Failed(
                    e.downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "the search failed".into()),
                ),
            };
            *me.lock() = done;
        });
        explorer
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Search> {
        self.search.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Answers one request: `method` and `target` as in the request line.
    pub fn respond(&self, method: &str, target: &str) -> Response {
        if method != "GET" {
            return Response::error(405, "only GET is served");
        }
        let (route, query) = target.split_once('?').unwrap_or((target, ""));
        match route {
            "/" | "/index.html" => Response {
                status: 200,
                content_type: "text/html; charset=utf-8",
                body: PAGE.to_string(),
            },
            "/api/model" => Response::json(200, &self.model_json()),
            "/api/state" => match parse_path(query).and_then(|p| self.state_json(&p)) {
                Ok(v) => Response::json(200, &v),
                Err(msg) => Response::error(400, &msg),
            },
            _ => Response::error(404, &format!("no such page: {route}")),
        }
    }

    /// `/api/model`: who the model is, where the search stands and what it found.
    fn model_json(&self) -> Value {
        let search = match &*self.lock() {
            Search::Running(since) => json!({
                "state": "running",
                "summary": format!("check's search is running ({:.0} s so far)", since.elapsed().as_secs_f64()),
            }),
            Search::Failed(msg) => json!({ "state": "failed", "summary": msg }),
            Search::Done(report) => self.search_json(report),
        };
        json!({
            "name": self.name,
            "description": self.description,
            "servers": self.model.n(),
            "clients": self.model.clients.len(),
            "given_steps": self.model.given.len(),
            "on_state_note": ON_STATE_NOTE,
            "search": search,
        })
    }

    /// The finished search: figures, a verdict per property, and the paths of its traces.
    fn search_json(&self, report: &Report) -> Value {
        let verdicts: Vec<Value> = report
            .properties
            .iter()
            .map(|p| json!({ "name": p.name, "kind": p.kind, "status": p.status.name() }))
            .collect();
        let traces = |status: Status| -> Vec<Value> {
            let with = report.properties.iter().filter(|p| p.status == status);
            with.filter_map(|p| self.trace_json(p)).collect()
        };
        let stop = match report.stopped_by {
            None => "complete".to_string(),
            Some(stop) => format!("incomplete: stopped at {}", stop.describe()),
        };
        let symmetry = if report.symmetry { ", symmetry" } else { "" };
        json!({
            "state": "done",
            "summary": format!(
                "check's search ({}{symmetry}): {} unique states, depth {}, {:.2} s, {stop}",
                report.checker, report.unique_states, report.max_depth, report.elapsed_s
            ),
            "verdicts": verdicts,
            "counterexamples": traces(Status::Violated),
            "examples": traces(Status::ExampleFound),
        })
    }

    /// A property's trace as a path the explorer opens: the index of each searched step among
    /// the actions of the state it was taken in. The runner validated the trace, so it always
    /// replays; if it did not, `path` is null and `error` says where, rather than the
    /// counterexample going missing.
    fn trace_json(&self, p: &PropertyReport) -> Option<Value> {
        let trace = p.trace.as_ref()?;
        let found = trace.iter().filter(|s| !s.given);
        let actions: Vec<Action> = found.filter_map(|s| s.action.clone()).collect();
        let (path, error) = match self.path_of(&actions) {
            Ok(path) => (Some(path), None),
            Err(e) => (None, Some(e)),
        };
        Some(json!({
            "property": p.name,
            "kind": p.kind,
            "status": p.status.name(),
            "steps": searched_steps(trace),
            "path": path,
            "error": error,
            "loop_from": p.loop_from,
            "explanation": p.explanation,
        }))
    }

    /// The path (action indices) of `actions` taken from the search's start.
    fn path_of(&self, actions: &[Action]) -> Result<Vec<usize>, String> {
        let mut state = self.model.init_states().remove(0);
        let mut path = Vec::new();
        for (step, action) in actions.iter().enumerate() {
            let what = || format!("step {}: {}", step + 1, self.model.describe(action));
            let index = enabled(&self.model, &state)
                .iter()
                .position(|a| a == action)
                .ok_or_else(|| format!("{} is not enabled", what()))?;
            state = self
                .model
                .next_state(&state, action.clone())
                .ok_or_else(|| format!("{} changes nothing", what()))?;
            path.push(index);
        }
        Ok(path)
    }

    /// Follows `path` from the search's start, refusing an index that names no action, an
    /// action that changes nothing (the search never takes one), or a state the search would
    /// not visit (outside the model's bounds, or past its `max_depth`).
    fn walk(&self, path: &[usize]) -> Result<Walk, String> {
        let m = &self.model;
        let mut actions = m.given.clone();
        let mut states = m.replay(&actions);
        let max_depth = m.cfg.file.bounds.max_depth;
        for (step, &k) in path.iter().enumerate() {
            if max_depth.is_some_and(|d| step >= d) {
                return Err(format!("step {}: past the model's max_depth", step + 1));
            }
            let last = states.last().expect("the fresh state");
            let options = enabled(m, last);
            let Some(action) = options.get(k) else {
                return Err(format!(
                    "step {}: no action {k} (the state has {})",
                    step + 1,
                    options.len()
                ));
            };
            let what = m.describe(action);
            let Some(next) = m.next_state(last, action.clone()) else {
                return Err(format!("step {}: {what} changes nothing", step + 1));
            };
            if !m.within_boundary(&next) {
                return Err(format!(
                    "step {}: {what} leaves the model's bounds",
                    step + 1
                ));
            }
            actions.push(action.clone());
            states.push(next);
        }
        Ok(Walk { actions, states })
    }

    /// `/api/state`: the state at the end of `path`, as the page shows it.
    fn state_json(&self, path: &[usize]) -> Result<Value, String> {
        let walk = self.walk(path)?;
        let m = &self.model;
        // `trace` takes the given steps itself, from the model.
        let steps = report::trace(m, &walk.actions[m.given.len()..]);
        let last = steps.last().expect("a trace has a step");
        // Changes are marked for a searched step only: the start state's are the given steps'.
        let before = (!path.is_empty()).then(|| &steps[steps.len() - 2]);
        let changed: Vec<usize> = (0..last.servers.len())
            .filter(|&i| {
                before.is_some_and(|b| {
                    serde_json::to_value(&b.servers[i]).ok()
                        != serde_json::to_value(&last.servers[i]).ok()
                })
            })
            .collect();
        let clients_changed = before.is_some_and(|b| b.clients != last.clients);
        let event = match path.is_empty() {
            true if m.given.is_empty() => "initial state".to_string(),
            true => format!("the search's start, after {} given steps", m.given.len()),
            false => last.event.clone(),
        };
        Ok(json!({
            "path": path,
            "step": path.len(),
            "event": event,
            "changed": changed,
            "clients_changed": clients_changed,
            "servers": last.servers,
            "clients": last.clients,
            "in_flight": last.in_flight,
            "properties": self.verdicts(&walk.states),
            "next": self.next_json(walk.states.last().expect("a state")),
            "svg": self.diagram(&walk),
        }))
    }

    /// Every property's verdict on the last of `states`, computed on that state: `always`
    /// holds or is violated there (with what it concerns), `sometimes` is shown there or not,
    /// liveness is not decided on one state (its goal is reported). The search's verdict on the
    /// model is given beside it, when the search has ended.
    fn verdicts(&self, states: &[SystemState]) -> Vec<Value> {
        let state = states.last().expect("a state");
        // The search's verdict: null while it runs, `not_checked` for a property it left out
        // (`--property`, `--no-liveness`, or a liveness property the model makes no claim on).
        let searched = self.searched_verdicts();
        let search = |name: &str| {
            let found = searched.as_ref()?.iter().find(|(n, _)| n == name);
            Some(found.map_or("not_checked", |(_, s)| *s))
        };
        let mut out: Vec<Value> = self
            .model
            .properties()
            .iter()
            .map(|p| {
                let here = (p.condition)(&self.model, state);
                let (verdict, why) = match (&p.expectation, here) {
                    (Expectation::Always, true) => ("holds", Vec::new()),
                    (Expectation::Always, false) => {
                        ("violated", concerns(&self.model, p.name, states))
                    }
                    (Expectation::Sometimes, true) => ("shown", Vec::new()),
                    (Expectation::Sometimes, false) => ("not_shown", Vec::new()),
                    (Expectation::Eventually, _) => ("undecided", Vec::new()),
                };
                json!({
                    "name": p.name,
                    "kind": properties::kind(&p.expectation),
                    "on_state": verdict,
                    "explanation": why,
                    "search": search(p.name),
                })
            })
            .collect();
        out.extend(properties::liveness().into_iter().map(|p| {
            json!({
                "name": p.name,
                "kind": properties::liveness_kind(p.kind),
                "on_state": "undecided",
                "goal_here": (p.goal)(&self.model, state),
                "explanation": [],
                "search": search(p.name),
            })
        }));
        out
    }

    /// The finished search's verdicts by property name (None while it runs, or if it failed).
    fn searched_verdicts(&self) -> Option<Vec<(String, &'static str)>> {
        match &*self.lock() {
            Search::Done(report) => Some(
                report
                    .properties
                    .iter()
                    .map(|p| (p.name.clone(), p.status.name()))
                    .collect(),
            ),
            _ => None,
        }
    }

    /// The actions the search would take from `state`: each with its index (the next path
    /// element), its event, whether its state is within the model's bounds (the search does
    /// not go outside them), and the always properties it breaks (they hold here and are
    /// violated in the state it leads to), so that a person sees which step does the harm.
    fn next_json(&self, state: &SystemState) -> Vec<Value> {
        let m = &self.model;
        let mut out = Vec::new();
        for (index, action) in enabled(m, state).into_iter().enumerate() {
            let event = m.describe(&action);
            let Some(next) = m.next_state(state, action) else {
                continue;
            };
            let breaks: Vec<&str> = m
                .properties()
                .iter()
                .filter(|p| p.expectation == Expectation::Always)
                .filter(|p| (p.condition)(m, state) && !(p.condition)(m, &next))
                .map(|p| p.name)
                .collect();
            out.push(json!({
                "index": index,
                "event": event,
                "within_bounds": m.within_boundary(&next),
                "breaks": breaks,
            }));
        }
        out
    }

    /// The path so far as a sequence diagram (given steps greyed), ending with what the last
    /// state violates, if anything.
    fn diagram(&self, walk: &Walk) -> String {
        let m = &self.model;
        let state = walk.states.last().expect("a state");
        let violated: Vec<&str> = m
            .properties()
            .iter()
            .filter(|p| p.expectation == Expectation::Always && !(p.condition)(m, state))
            .map(|p| p.name)
            .collect();
        let lines = violated
            .iter()
            .flat_map(|name| concerns(m, name, &walk.states))
            .collect();
        let ending = Ending {
            title: (!violated.is_empty()).then(|| format!("{} violated", violated.join(", "))),
            lines,
            loop_from: None,
            id: "x-".into(),
        };
        m.sequence_diagram(&walk.actions, m.given.len(), &ending)
            .svg()
    }
}

/// The actions `Model::actions` lists in `state`, in its order: what path indices index.
fn enabled(model: &RaftModel, state: &SystemState) -> Vec<Action> {
    let mut actions = Vec::new();
    model.actions(state, &mut actions);
    actions
}

/// The `path` parameter of a query string: comma-separated action indices, empty for the
/// search's start.
fn parse_path(query: &str) -> Result<Vec<usize>, String> {
    let raw = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("path="))
        .unwrap_or("");
    let raw = percent_decode(raw)?;
    if raw.trim().is_empty() {
        return Ok(Vec::new());
    }
    raw.split(',')
        .map(|k| {
            k.trim()
                .parse::<usize>()
                .map_err(|_| format!("path: {k:?} is not an action index"))
        })
        .collect()
}

/// `%2C` and friends, as browsers may encode a query.
fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = text.get(i + 1..i + 3).unwrap_or("");
                let byte = u8::from_str_radix(hex, 16)
                    .map_err(|_| format!("bad percent-encoding in {text:?}"))?;
                out.push(byte);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| format!("{text:?} is not UTF-8"))
}

/// Serves `explorer` on `listener` until the process ends: one thread per connection, at most
/// `MAX_CONNECTIONS` at once. Returns only if the listener fails.
pub fn serve(explorer: Arc<Explorer>, listener: TcpListener) -> std::io::Error {
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if is_transient(&e) => continue,
            Err(e) => return e,
        };
        if open.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            let busy = Response::error(503, "too many connections; try again");
            write_response(&stream, &busy).ok();
            open.fetch_sub(1, Ordering::SeqCst);
            continue;
        }
        let (explorer, open) = (Arc::clone(&explorer), Arc::clone(&open));
        std::thread::spawn(move || {
            handle(&explorer, &stream).ok();
            open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// Accept errors that concern one connection only (it was reset before it was taken, or the
/// process is briefly out of descriptors): the server goes on.
fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock | TimedOut
    ) || e.raw_os_error() == Some(24)
}

/// Reads one request head from `stream` and answers it; the connection is then closed.
fn handle(explorer: &Explorer, stream: &TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let response = match read_request_line(stream)? {
        None => Response::error(400, "incomplete request head, or longer than 16 KiB"),
        Some(request) => {
            let mut words = request.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some(method), Some(target), Some(v)) if v.starts_with("HTTP/") => {
                    // A bug must cost one answer, not the connection without a word.
                    let respond = std::panic::AssertUnwindSafe(|| explorer.respond(method, target));
                    std::panic::catch_unwind(respond).unwrap_or_else(|_| {
                        Response::error(500, "the explorer failed on this request (see its stderr)")
                    })
                }
                _ => Response::error(400, "not an HTTP request"),
            }
        }
    };
    write_response(stream, &response)
}

/// The request line of a request head, once the head has ended (a blank line) within
/// `MAX_REQUEST` bytes; None otherwise. Headers are read and ignored.
fn read_request_line(stream: &TcpStream) -> std::io::Result<Option<String>> {
    let mut reader = BufReader::new(Read::take(stream, MAX_REQUEST as u64));
    let mut request = None;
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(None);
        }
        if line == b"\r\n" || line == b"\n" {
            return Ok(request);
        }
        request.get_or_insert_with(|| String::from_utf8_lossy(&line).trim_end().to_string());
    }
}

fn write_response(mut stream: &TcpStream, r: &Response) -> std::io::Result<()> {
    let reason = match r.status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        _ => "Service Unavailable",
    };
    write!(
        stream,
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n{}",
        r.status,
        r.content_type,
        r.body.len(),
        r.body
    )?;
    stream.flush()
}

/// The page: inline style and script, no external URL. It fetches `/api/model` (again every
/// second while the search runs) and `/api/state` for the path in its `#path=` fragment, and
/// builds every element with `textContent`, so that no state text is read as markup (the
/// diagram is SVG the server drew, its text escaped there).
const PAGE: &str = r##"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>explorer</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
h1{margin:0 0 .2em}h2{margin:1.2em 0 .4em;font-size:1.2em}
.note{color:#555;font-size:.9em;max-width:60em}
table{border-collapse:collapse;margin:.4em 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:13px;vertical-align:top}
td.mono,th.mono{font-family:monospace}
th.changed,td.changed{background:#fff3b0}
td.violated{background:#f9d6d5;font-weight:bold}td.holds{background:#dff3e4}
td.shown{background:#dff3e4}td.not_shown,td.undecided{background:#f3f3f3}
ul{margin:.3em 0}li{margin:.15em 0}
.off{color:#999}.bad{color:#b00020}
.figure{overflow-x:auto;border:1px solid #ddd;padding:6px;margin:.5em 0}
</style>
</head>
<body>
<h1 id="model-name">explorer</h1>
<p id="model-description" class="note"></p>
<p id="search-summary" class="note"></p>
<h2>Start here</h2>
<ul id="starts"></ul>
<div id="state"></div>
<script>
"use strict";
var model = null;
var searching = false;
function el(tag, text, cls) {
  var e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function link(text, path) {
  var a = el("a", text);
  a.href = "#path=" + path.join(",");
  return a;
}
function currentPath() {
  var m = /path=([0-9,]*)/.exec(location.hash);
  return m && m[1] ? m[1].split(",").filter(function (x) { return x !== ""; }).map(Number) : [];
}
function getJSON(url) {
  return fetch(url).then(function (r) {
    return r.json().then(function (v) {
      if (!r.ok) throw new Error(v.error || r.statusText);
      return v;
    });
  });
}
function trace(item, word) {
  var li = el("li");
  li.setAttribute("data-property", item.property);
  if (item.path) li.appendChild(link(item.property, item.path));
  else li.appendChild(el("span", item.property + " (cannot be opened: " + item.error + ")", "bad"));
  var how = " " + word + " in " + item.steps + " steps";
  if (item.loop_from !== null && item.loop_from !== undefined) how += " (a lasso: back to step " + item.loop_from + ")";
  li.appendChild(document.createTextNode(how));
  (item.explanation || []).forEach(function (line) { li.appendChild(el("div", "why: " + line, "note")); });
  return li;
}
function showModel(m) {
  var ended = searching && m.search.state !== "running";
  searching = m.search.state === "running";
  model = m;
  if (ended) loadState();
  document.title = "explorer: " + m.name;
  document.getElementById("model-name").textContent = "model " + m.name;
  document.getElementById("model-description").textContent = m.description;
  document.getElementById("search-summary").textContent = m.search.summary;
  var ul = document.getElementById("starts");
  ul.textContent = "";
  var start = el("li");
  start.appendChild(link(m.given_steps ? "the search's start (after " + m.given_steps + " given steps)" : "the initial state", []));
  ul.appendChild(start);
  if (m.search.state !== "done") {
    ul.appendChild(el("li", "counterexamples: " + m.search.summary, "note"));
    if (m.search.state === "running") setTimeout(loadModel, 1000);
    return;
  }
  if (!m.search.counterexamples.length) ul.appendChild(el("li", "no property is violated: no counterexample", "note"));
  m.search.counterexamples.forEach(function (c) { ul.appendChild(trace(c, "violated")); });
  m.search.examples.forEach(function (c) { ul.appendChild(trace(c, "example found")); });
}
function loadModel() {
  return getJSON("/api/model").then(showModel).catch(function (e) {
    document.getElementById("search-summary").textContent = "cannot load the model: " + e.message;
  });
}
function serversTable(s) {
  var t = el("table");
  t.id = "servers";
  var head = el("tr");
  head.appendChild(el("th", ""));
  s.servers.forEach(function (v) {
    var changed = s.changed.indexOf(v.id) >= 0;
    var th = el("th", "S" + v.id + (changed ? " ★ changed" : ""), changed ? "changed" : "");
    th.setAttribute("data-server", v.id);
    th.setAttribute("data-changed", changed);
    head.appendChild(th);
  });
  t.appendChild(head);
  ["role", "term", "vote", "log", "commit", "applied"].forEach(function (f) {
    var tr = el("tr");
    tr.appendChild(el("th", f));
    s.servers.forEach(function (v) {
      var val = f === "vote" ? (v.vote === null ? "-" : "S" + v.vote) : v[f];
      tr.appendChild(el("td", val, "mono" + (s.changed.indexOf(v.id) >= 0 ? " changed" : "")));
    });
    t.appendChild(tr);
  });
  return t;
}
function propertiesTable(s) {
  var t = el("table");
  t.id = "properties";
  var head = el("tr");
  ["property", "kind", "on this state", "check's search"].forEach(function (h) { head.appendChild(el("th", h)); });
  t.appendChild(head);
  s.properties.forEach(function (p) {
    var tr = el("tr");
    tr.setAttribute("data-property", p.name);
    tr.setAttribute("data-verdict", p.on_state);
    tr.appendChild(el("td", p.name));
    tr.appendChild(el("td", p.kind));
    var here = p.on_state.replace("_", " ");
    if (p.on_state === "undecided") here = "not decided on a single state (goal " + (p.goal_here ? "met" : "not met") + " here)";
    var td = el("td", here, p.on_state);
    p.explanation.forEach(function (line) { td.appendChild(el("div", line)); });
    tr.appendChild(td);
    var searched = p.search ? p.search.replace("_", " ") : (model && model.search.state === "failed" ? "(search failed)" : "(search running)");
    tr.appendChild(el("td", searched));
    t.appendChild(tr);
  });
  return t;
}
function list(title, items, id) {
  var d = el("div");
  d.appendChild(el("h2", title));
  var ul = el("ul");
  ul.id = id;
  if (!items.length) ul.appendChild(el("li", "nothing", "note"));
  items.forEach(function (i) { ul.appendChild(typeof i === "string" ? el("li", i) : i); });
  d.appendChild(ul);
  return d;
}
function nextItems(s) {
  return s.next.map(function (n) {
    var li = el("li");
    if (n.within_bounds) li.appendChild(link(n.event, s.path.concat([n.index])));
    else li.appendChild(el("span", n.event + " (outside the model's bounds: the search does not go there)", "off"));
    if (n.breaks.length) li.appendChild(el("span", " → breaks " + n.breaks.join(", "), "bad"));
    return li;
  });
}
function showState(s) {
  var d = document.getElementById("state");
  d.textContent = "";
  var h = el("h2", "Step " + s.step + ": " + s.event);
  h.id = "step";
  d.appendChild(h);
  if (s.path.length) {
    var p = el("p");
    p.appendChild(link("← back one step", s.path.slice(0, -1)));
    d.appendChild(p);
  }
  var changed = s.changed.map(function (i) { return "S" + i; });
  if (s.clients_changed) changed.push("clients");
  var c = el("p", s.step ? "changed: " + (changed.join(", ") || "nothing visible in the table (timers or network only)") : "");
  c.id = "changed";
  d.appendChild(c);
  d.appendChild(serversTable(s));
  if (s.clients.length) d.appendChild(list("Clients", s.clients, "clients"));
  d.appendChild(list("Messages in flight (" + s.in_flight.length + ")", s.in_flight, "in-flight"));
  d.appendChild(el("h2", "Properties"));
  d.appendChild(el("p", model ? model.on_state_note : "", "note"));
  d.appendChild(propertiesTable(s));
  d.appendChild(list("Next steps", nextItems(s), "next"));
  d.appendChild(el("h2", "The path so far"));
  var fig = el("div", null, "figure");
  fig.id = "diagram";
  fig.innerHTML = s.svg;
  d.appendChild(fig);
}
function loadState() {
  var d = document.getElementById("state");
  return getJSON("/api/state?path=" + currentPath().join(",")).then(showState).catch(function (e) {
    d.textContent = "";
    d.appendChild(el("p", "cannot show this path: " + e.message, "bad"));
  });
}
window.addEventListener("hashchange", loadState);
loadModel().then(loadState);
</script>
</body>
</html>
"##;

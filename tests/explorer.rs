//! The explorer (`check MODEL --explore ADDR`) as a person meets it: over HTTP, its JSON agrees
//! with `check` (the model's name, the shortest counterexample, verdicts computed on each
//! state); and, with `RAFT_BROWSER_TEST=1` (set by `.ci/run`), in headless Chromium: the page
//! loads, its counterexample link is followed, and the page shows the violation.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const ELECTION_SAFETY: &str = "Election Safety";

/// A running explorer, killed when dropped.
struct Served {
    child: Child,
    addr: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// Starts `check MODEL --explore 127.0.0.1:0` and reads the address it printed.
fn serve(model: &str) -> Served {
    serve_with(model, &[])
}

/// `serve`, with more flags of `check`.
fn serve_with(model: &str, flags: &[&str]) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_check"))
        .args([model, "--explore", "127.0.0.1:0"])
        .args(flags)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run check --explore");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout");
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let at = line
        .find("http://")
        .unwrap_or_else(|| panic!("no URL in {line:?}"));
    let addr = line[at + 7..].split('/').next().unwrap().to_string();
    Served { child, addr }
}

/// One GET over a plain TcpStream: the status code and the body.
fn get(addr: &str, target: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the explorer");
    write!(s, "GET {target} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a response head");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

fn get_json(addr: &str, target: &str) -> Value {
    let (status, body) = get(addr, target);
    assert_eq!(status, 200, "{target}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// `/api/model` once the background search has ended.
fn model_when_searched(addr: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let model = get_json(addr, "/api/model");
        if model["search"]["state"] != "running" {
            return model;
        }
        assert!(Instant::now() < deadline, "the search did not end: {model}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn state(addr: &str, path: &[u64]) -> Value {
    let path: Vec<String> = path.iter().map(|k| k.to_string()).collect();
    get_json(addr, &format!("/api/state?path={}", path.join(",")))
}

/// A property's entry in a state's verdicts.
fn verdict<'a>(state: &'a Value, name: &str) -> &'a Value {
    state["properties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {state}"))
}

/// The Election Safety counterexample's path, from `/api/model`.
fn election_safety_path(model: &Value) -> Vec<u64> {
    let found = model["search"]["counterexamples"].as_array().unwrap();
    let c = found
        .iter()
        .find(|c| c["property"] == ELECTION_SAFETY)
        .unwrap_or_else(|| panic!("no counterexample for {ELECTION_SAFETY}: {model}"));
    assert_eq!(c["steps"], 6, "check's shortest is 6 steps: {c}");
    let path: Vec<u64> = c["path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_u64().unwrap())
        .collect();
    assert_eq!(path.len(), 6);
    path
}

#[test]
fn the_explorer_opens_at_checks_counterexample_and_judges_each_state_on_itself() {
    let served = serve("bugs/no_step_down");
    let addr = &served.addr;
    let model = model_when_searched(addr);
    assert_eq!(model["name"], "bugs/no_step_down");
    assert!(model["description"]
        .as_str()
        .unwrap()
        .contains("two leaders"));
    let path = election_safety_path(&model);

    let start = state(addr, &[]);
    assert_eq!(verdict(&start, ELECTION_SAFETY)["on_state"], "holds");
    assert_eq!(start["changed"], serde_json::json!([]));
    // One step short of the counterexample the property still holds on the state: a verdict
    // taken from the path (which leads to a violation) would say otherwise.
    let before = state(addr, &path[..5]);
    assert_eq!(verdict(&before, ELECTION_SAFETY)["on_state"], "holds");
    let last_step = before["next"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["index"] == path[5])
        .expect("the counterexample's last step is offered");
    assert_eq!(last_step["breaks"], serde_json::json!([ELECTION_SAFETY]));

    let end = state(addr, &path);
    let es = verdict(&end, ELECTION_SAFETY);
    assert_eq!(es["on_state"], "violated", "{es}");
    assert_eq!(es["search"], "violated");
    let why = es["explanation"].to_string();
    assert!(why.contains("two leaders in term 2"), "{why}");
    assert_eq!(end["step"], 6);
    // The changed servers are exactly those whose row differs from the state before.
    let changed: Vec<usize> = end["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_u64().unwrap() as usize)
        .collect();
    assert!(!changed.is_empty(), "{end}");
    for i in 0..3 {
        let differs = end["servers"][i] != before["servers"][i];
        assert_eq!(differs, changed.contains(&i), "S{i}: {end}");
    }
    let leaders = end["servers"].as_array().unwrap().iter();
    assert_eq!(leaders.filter(|s| s["role"] == "leader").count(), 2);
    let svg = end["svg"].as_str().unwrap();
    assert!(svg.starts_with("<svg"), "{svg}");
    assert!(svg.contains("Election Safety violated"), "{svg}");
    // Liveness is not decided on a state.
    let live = verdict(&end, "a leader is eventually elected");
    assert_eq!(live["on_state"], "undecided");
    assert_eq!(live["goal_here"], true);
}

/// A model with given steps opens where its search starts, after them, and its counterexample
/// (found from there) opens too; the diagram draws the given steps before the path.
#[test]
fn a_model_with_given_steps_opens_where_its_search_starts() {
    const ELECTABLE: &str = "electable logs hold every committed entry";
    let served = serve("bugs/accept_stale_replies");
    let addr = &served.addr;
    let model = model_when_searched(addr);
    assert_eq!(model["given_steps"], 36);
    let start = state(addr, &[]);
    assert_eq!(start["event"], "the search's start, after 36 given steps");
    assert_eq!(verdict(&start, ELECTABLE)["on_state"], "holds");
    let found = model["search"]["counterexamples"].as_array().unwrap();
    let c = found.iter().find(|c| c["property"] == ELECTABLE).unwrap();
    assert_eq!(c["steps"], 9, "{c}");
    let path: Vec<u64> = c["path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_u64().unwrap())
        .collect();
    let end = state(addr, &path);
    assert_eq!(end["step"], 9);
    assert_eq!(verdict(&end, ELECTABLE)["on_state"], "violated", "{end}");
    assert!(end["svg"]
        .as_str()
        .unwrap()
        .contains("the search starts here"));
}

#[test]
fn the_explorer_refuses_bad_requests_with_a_message() {
    let served = serve("bugs/no_step_down");
    let addr = &served.addr;
    for (target, status, says) in [
        ("/api/state?path=999", 400, "no action 999"),
        ("/api/state?path=0,x", 400, "not an action index"),
        ("/api/state?path=%zz", 400, "percent-encoding"),
        ("/.states/0", 404, "no such page"),
    ] {
        let (code, body) = get(addr, target);
        assert_eq!(code, status, "{target}: {body}");
        assert!(body.contains(says), "{target}: {body}");
    }
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "POST /api/model HTTP/1.1\r\n\r\n").unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 405"), "{response}");
    // The server is still there, and an encoded comma reads as one.
    let first = state(addr, &[0]);
    let encoded = get_json(addr, "/api/state?path=0%2C0");
    assert_eq!(encoded["step"], 2, "{encoded}");
    assert_eq!(first["step"], 1);
}

/// The flags that steer a search steer the explorer's: without liveness, a liveness bug has
/// no counterexample, and the page says the property was not checked.
#[test]
fn options_of_the_search_are_honoured() {
    const APPLIED: &str =
        "every entry a live leader committed is eventually applied by every live server";
    let names = |model: &Value| -> Vec<String> {
        let found = model["search"]["counterexamples"].as_array().unwrap();
        found.iter().map(|c| c["property"].to_string()).collect()
    };
    let served = serve("liveness/no_append_retry");
    let model = model_when_searched(&served.addr);
    assert!(names(&model).iter().any(|n| n.contains(APPLIED)), "{model}");
    drop(served);
    let served = serve_with("liveness/no_append_retry", &["--no-liveness"]);
    let model = model_when_searched(&served.addr);
    assert!(names(&model).is_empty(), "{model}");
    let start = state(&served.addr, &[]);
    assert_eq!(verdict(&start, APPLIED)["search"], "not_checked");
    assert_eq!(
        verdict(&start, "a leader is elected")["search"],
        "example_found"
    );
}

#[test]
fn options_the_explorer_cannot_honour_are_refused() {
    for extra in [
        &["--depth", "3"][..],
        &["--symmetry"],
        &["--checker", "dfs"],
        &["--checker", "simulation"],
        &["--json"],
        &["--seed", "1"],
        &["--svg", "x.svg"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_check"))
            .args(["bugs/no_step_down", "--explore", "127.0.0.1:0"])
            .args(extra)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains(extra[0]), "{extra:?}: {err}");
    }
}

/// Runs headless Chromium on `url` and returns the DOM after the page's scripts ran.
fn dump_dom(url: &str) -> String {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let profile = std::env::temp_dir().join(format!(
        "raft-explorer-chromium-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::SeqCst)
    ));
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=5000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("RAFT_BROWSER_TEST=1 needs chromium on PATH (apt-get install chromium)");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut dom = String::new();
        stdout.read_to_string(&mut dom).ok();
        dom
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("chromium did not finish on {url}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let dom = reader.join().unwrap();
    std::fs::remove_dir_all(&profile).ok();
    dom
}

/// The `href` of the page's link to a property's counterexample.
fn counterexample_href(dom: &str, property: &str) -> String {
    let item = format!("data-property=\"{property}\"><a href=\"");
    let at = dom
        .find(&item)
        .unwrap_or_else(|| panic!("no link for {property} in {dom}"));
    let rest = &dom[at + item.len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

#[test]
fn in_a_browser_the_counterexample_link_opens_the_violation() {
    if std::env::var("RAFT_BROWSER_TEST").as_deref() != Ok("1") {
        eprintln!("browser test off: set RAFT_BROWSER_TEST=1 (as .ci/run does) to run it");
        return;
    }
    let served = serve("bugs/no_step_down");
    let addr = &served.addr;
    let path = election_safety_path(&model_when_searched(addr));
    let home = dump_dom(&format!("http://{addr}/"));
    assert!(home.contains("model bugs/no_step_down"), "{home}");
    assert!(home.contains("violated in 6 steps"), "{home}");
    let href = counterexample_href(&home, ELECTION_SAFETY);
    let joined: Vec<String> = path.iter().map(|k| k.to_string()).collect();
    assert_eq!(href, format!("#path={}", joined.join(",")));

    let page = dump_dom(&format!("http://{addr}/{href}"));
    assert!(page.contains("model bugs/no_step_down"), "{page}");
    assert!(page.contains("Step 6: "), "{page}");
    let row = format!("data-property=\"{ELECTION_SAFETY}\" data-verdict=\"violated\"");
    assert!(page.contains(&row), "{page}");
    assert!(page.contains("two leaders in term 2"), "{page}");
    assert!(page.contains("data-changed=\"true\""), "{page}");
    assert!(page.contains("<svg"), "{page}");
}

//! The `check` binary as users and CI drive it: verdicts, JSON shape, exit codes, suites,
//! shortest traces, pinned state counts, and the explorer.

use raft_checked::check::bfs::{self, Limits, Progress};
use raft_checked::check::load;
use raft_checked::check::properties::ELECTION_SAFETY;
use raft_checked::check::runner::{self, RunOptions, Status};
use raft_checked::model::diagram::{drawn_arrows, DrawnArrow};
use raft_checked::model::spec;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn check(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_check"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run check");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn run(model: &str) -> runner::Report {
    let cfg = load::load(model).unwrap();
    runner::run(&cfg, &RunOptions::default())
}

#[test]
fn ci_suite_passes() {
    let (code, out, err) = check(&["--suite", "checks/ci.toml"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(" 0 failed"), "{out}");
}

#[test]
fn bug_zoo_suite_catches_every_bug_with_its_shortest_trace() {
    let (code, out, err) = check(&["--suite", "checks/bugs.toml"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("MISMATCH"), "{out}");
}

#[test]
fn json_has_the_documented_shape() {
    let (code, out, _) = check(&["five", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    for key in [
        "model",
        "checker",
        "states",
        "unique_states",
        "max_depth",
        "elapsed_s",
        "complete",
        "properties",
    ] {
        assert!(v.get(key).is_some(), "missing {key}: {out}");
    }
    assert_eq!(v["model"], "five");
    assert_eq!(v["checker"], "bfs");
    assert_eq!(v["complete"], true);
    let props = v["properties"].as_array().unwrap();
    assert_eq!(props.len(), 17);
    for p in props {
        let kinds = ["always", "sometimes", "eventually", "leads_to"];
        assert!(kinds.contains(&p["kind"].as_str().unwrap()));
        assert!(p["name"].is_string());
    }
    let es = props.iter().find(|p| p["name"] == ELECTION_SAFETY).unwrap();
    assert_eq!(es["status"], "holds");
    assert!(es.get("trace").is_none());
}

#[test]
fn a_search_stopped_by_a_limit_says_why_and_claims_nothing() {
    let (code, out, _) = check(&["default", "--max-memory", "40", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["complete"], false);
    assert_eq!(v["stopped_by"], "memory");
    for p in v["properties"].as_array().unwrap() {
        assert!(
            ["unknown", "example_found"].contains(&p["status"].as_str().unwrap()),
            "{p}"
        );
    }
    let (_, out, _) = check(&["five", "--depth", "3"]);
    assert!(
        out.contains("incomplete: stopped at the depth limit"),
        "{out}"
    );
}

#[test]
fn a_violation_exits_1_with_a_trace_in_json() {
    let (code, out, _) = check(&["bugs/no_step_down", "--json"]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let es = v["properties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == ELECTION_SAFETY)
        .unwrap();
    assert_eq!(es["status"], "violated");
    let trace = es["trace"].as_array().unwrap();
    assert_eq!(trace.len(), 7, "initial state + 6 steps");
    let first = trace[1]["event"].as_str().unwrap();
    assert!(first.ends_with(": election timeout"), "{first}");
    let id: usize = first[1..2].parse().unwrap();
    assert_eq!(trace[1]["servers"][id]["role"], "candidate");
}

#[test]
fn human_output_prints_the_trace_as_columns() {
    let (code, out, _) = check(&["bugs/no_step_down"]);
    assert_eq!(code, 1);
    assert!(
        out.contains("Election Safety violated in 6 steps:"),
        "{out}"
    );
    let header = out
        .lines()
        .find(|l| l.trim_start().starts_with("#  event"))
        .unwrap();
    assert!(header.contains("S0") && header.contains("S1") && header.contains("S2"));
}

#[test]
fn bad_model_files_exit_2_naming_file_and_field() {
    let dir = std::env::temp_dir().join(format!("raft-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "servers = 3\nfoo = 1\n[bounds]\nmax_term = 1\nmax_log_len = 0\n",
    )
    .unwrap();
    let (code, _, err) = check(&[bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("bad.toml") && err.contains("foo"), "{err}");

    std::fs::write(
        &bad,
        "servers = 9\n[bounds]\nmax_term = 1\nmax_log_len = 0\n",
    )
    .unwrap();
    let (code, _, err) = check(&[bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("bad.toml") && err.contains("servers"), "{err}");

    std::fs::write(
        &bad,
        "servers = 3\n[faults]\nmax_crashes = 1\nmax_damage = 1\ndamage = [\"wipe\", \"bogus\"]\n\
         [bounds]\nmax_term = 1\nmax_log_len = 0\n",
    )
    .unwrap();
    let (code, _, err) = check(&[bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("faults.damage[1]") && err.contains("lose-last-entry"),
        "{err}"
    );

    let (code, _, err) = check(&["no-such-model"]);
    assert_eq!(code, 2);
    assert!(err.contains("no-such-model"), "{err}");

    let (code, _, err) = check(&["default", "--symmetry"]);
    assert_eq!(code, 2);
    assert!(err.contains("symmetry") && err.contains("clients"), "{err}");

    let (code, _, _) = check(&["five", "--checker", "quantum"]);
    assert_eq!(code, 2);
    let (code, _, err) = check(&["five", "--timeout", "-1"]);
    assert_eq!(code, 2, "{err}");

    let suite = dir.join("suite.toml");
    std::fs::write(
        &suite,
        "[[entry]]\nmodel = \"five\"\nexpect = { \"Nope\" = \"holds\" }\n",
    )
    .unwrap();
    let (code, _, err) = check(&["--suite", suite.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("Nope"), "{err}");

    std::fs::write(
        &suite,
        "[[entry]]\nmodel = \"five\"\nwithout_bug = true\nexpect = { \"Election Safety\" = \"holds\" }\n",
    )
    .unwrap();
    let (code, _, err) = check(&["--suite", suite.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("entry[0].without_bug") && err.contains("no bug"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn pinned_unique_state_counts() {
    // Level-synchronous BFS visits the same set of states on every run and thread count.
    assert_eq!(run("five").unique_states, 1121);
    assert_eq!(run("bugs/no_step_down").unique_states, 1733);
    assert_eq!(run("bugs/vote_without_log_check").unique_states, 23390);
}

#[test]
fn symmetry_reduces_the_election_model_without_changing_verdicts() {
    let cfg = load::load("election").unwrap();
    let opts = RunOptions {
        symmetry: true,
        ..RunOptions::default()
    };
    let reduced = runner::run(&cfg, &opts);
    assert!(reduced.complete);
    assert_eq!(reduced.unique_states, 1_026); // 6,086 without symmetry
    for p in &reduced.properties {
        assert_ne!(p.status, Status::Violated, "{}", p.name);
    }
}

#[test]
fn traces_do_not_depend_on_thread_count() {
    // Threads race to discover a state first; the trace must still be the same, also when
    // symmetry lets the threads hold different renamings of a state.
    let cfg = load::load("bugs/commit_without_min").unwrap();
    let events = |threads| {
        let opts = RunOptions {
            symmetry: true,
            threads,
            ..RunOptions::default()
        };
        let report = runner::run(&cfg, &opts);
        let violated = report
            .properties
            .into_iter()
            .find(|p| p.status == Status::Violated)
            .expect("the bug is caught");
        let trace = violated.trace.unwrap();
        trace.into_iter().map(|s| s.event).collect::<Vec<_>>()
    };
    let one = events(1);
    assert_eq!(one.len(), 13);
    assert_eq!(events(2), one);
    assert_eq!(events(2), one);
}

#[test]
fn bfs_trace_is_the_shortest() {
    let report = run("bugs/no_step_down");
    let es = report
        .properties
        .iter()
        .find(|p| p.name == ELECTION_SAFETY)
        .unwrap();
    assert_eq!(es.status, Status::Violated);
    assert_eq!(es.trace.as_ref().unwrap().len() - 1, 6);
    // A depth limit of d checks every path of up to d steps: none of 5 violates it, so 6 is
    // the shortest.
    let model =
        raft_checked::check::model_with_properties(load::load("bugs/no_step_down").unwrap());
    let within = |depth| {
        let limits = Limits {
            max_depth: Some(depth),
            threads: 2,
            ..Limits::default()
        };
        let result = bfs::check(&model, &limits, None, &Progress::default());
        result.discoveries.contains_key(ELECTION_SAFETY)
    };
    assert!(!within(5));
    assert!(within(6));
}

#[test]
fn explorer_serves_raft_readable_states() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_check"))
        .args(["five", "--explore", &addr])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    // Path 0: the first action of the initial state, S0's election timeout.
    let body = loop {
        if let Ok(mut s) = std::net::TcpStream::connect(&addr) {
            write!(s, "GET /api/state?path=0 HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
            let mut body = String::new();
            s.read_to_string(&mut body).ok();
            if body.contains("200") {
                break body;
            }
        }
        assert!(Instant::now() < deadline, "explorer did not answer");
        std::thread::sleep(Duration::from_millis(100));
    };
    child.kill().ok();
    child.wait().ok();
    let json = &body[body.find("\r\n\r\n").unwrap() + 4..];
    let state: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(state["event"], "S0: election timeout", "{state}");
    assert_eq!(state["servers"][0]["role"], "candidate", "{state}");
    assert_eq!(state["servers"][0]["term"], 1, "{state}");
    assert_eq!(state["changed"], serde_json::json!([0]), "{state}");
}

#[test]
fn the_readme_model_example_parses() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("```toml\n").expect("a TOML example") + "```toml\n".len();
    let example = &readme[start..start + readme[start..].find("```").unwrap()];
    let path = std::path::Path::new("README.md");
    let cfg = spec::parse("readme", path, example).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.proposals.len(), 2);
    assert!(!cfg.file.timing.all_elections_uncontested && cfg.file.timing.heartbeats);
}

#[test]
fn a_given_prefix_comes_first_in_the_trace_and_the_search_goes_on_from_it() {
    const ELECTABLE: &str = "electable logs hold every committed entry";
    let (code, out, err) = check(&["bugs/accept_stale_replies", "--json"]);
    assert_eq!(code, 1, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let p = v["properties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == ELECTABLE)
        .unwrap();
    let trace = p["trace"].as_array().unwrap();
    let given: Vec<bool> = trace
        .iter()
        .map(|s| s["given"].as_bool().unwrap())
        .collect();
    // The fresh cluster, 17 given steps and 19 lost messages, then the 9 steps found.
    assert_eq!(given.len(), 1 + 36 + 9);
    assert!(!given[0] && given[1..37].iter().all(|&g| g) && !given[37..].iter().any(|&g| g));
    assert_eq!(trace[1]["event"], "S0: election timeout");
    assert_eq!(trace.last().unwrap()["servers"][0]["commit"], 2);

    let (code, out, _) = check(&["bugs/accept_stale_replies"]);
    assert_eq!(code, 1);
    assert!(
        out.contains(&format!(
            "{ELECTABLE} violated in 9 steps after 17 given steps and the loss of 19 messages:"
        )),
        "{out}"
    );
    let lines: Vec<&str> = out.lines().collect();
    let loss = lines
        .iter()
        .position(|l| l.contains("18-36  network loses 19 messages in flight"))
        .expect("the given loss reads as one row");
    assert_eq!(lines[loss + 1].trim(), "(the search starts here)");
    assert!(lines[loss + 2].trim_start().starts_with("37  "), "{out}");
}

#[test]
fn every_bug_model_is_in_the_zoo_suite() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let suite = std::fs::read_to_string(root.join("checks/bugs.toml")).unwrap();
    let mut models = 0;
    let mut bugs = std::collections::BTreeSet::new();
    for file in std::fs::read_dir(root.join("models/bugs")).unwrap() {
        let path = file.unwrap().path();
        let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
        let cfg = load::load(path.to_str().unwrap()).unwrap();
        assert!(cfg.file.bug.is_some(), "{stem} injects no bug");
        bugs.insert(format!("{:?}", cfg.file.bug));
        assert!(
            suite.contains(&format!("model = \"bugs/{stem}\"")),
            "checks/bugs.toml has no entry for bugs/{stem}"
        );
        models += 1;
    }
    // One model per bug of the zoo, and accept_stale_replies_fresh: the same bug with nothing
    // given, for the swarm.
    assert_eq!(bugs.len(), 10, "{bugs:?}");
    assert_eq!(models, 11);
}

#[test]
fn liveness_zoo_suite_catches_every_liveness_bug_with_its_lasso() {
    let (code, out, err) = check(&["--suite", "checks/liveness.toml"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("MISMATCH"), "{out}");
}

#[test]
fn every_liveness_model_is_in_its_suite_and_breaks_only_liveness() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let suite = std::fs::read_to_string(root.join("checks/liveness.toml")).unwrap();
    let mut models = 0;
    for file in std::fs::read_dir(root.join("models/liveness")).unwrap() {
        let path = file.unwrap().path();
        let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
        let cfg = load::load(path.to_str().unwrap()).unwrap();
        assert!(cfg.file.bug.is_some(), "{stem} injects no bug");
        let entry = format!("model = \"liveness/{stem}\"");
        assert_eq!(
            suite.matches(&entry).count(),
            2,
            "{stem}: with and without its bug"
        );
        models += 1;
    }
    assert!(models >= 4, "at least four liveness bugs");
}

/// A lasso in JSON: the trace's last state is the state at `loop_from`, and every liveness
/// property of a correct model holds with the bound stops counted apart.
#[test]
fn liveness_counterexamples_are_lassos_in_json() {
    let (code, out, _) = check(&["liveness/no_append_retry", "--json"]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let p = v["properties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["status"] == "violated" && p["kind"] == "leads_to")
        .expect("a violated liveness property");
    let trace = p["trace"].as_array().unwrap();
    let k = p["loop_from"].as_u64().expect("loop_from") as usize;
    let servers = |i: usize| trace[i]["servers"].clone();
    assert_eq!(
        servers(k),
        servers(trace.len() - 1),
        "the cycle returns to step {k}"
    );
    assert!(k < trace.len() - 1);
    assert!(v["bound_stops"].as_u64().is_some());
    let (code, out, _) = check(&["election", "--json"]);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let live: Vec<_> = v["properties"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["kind"] == "eventually" || p["kind"] == "leads_to")
        .collect();
    assert_eq!(live.len(), 5);
    // Election has no client and no log entry: all but the leader property hold vacuously.
    assert!(
        live.iter()
            .all(|p| p["status"] == "holds" || p["status"] == "vacuous"),
        "{out}"
    );
    assert_eq!(live[0]["status"], "holds", "{out}");
}

#[test]
fn properties_can_be_selected_and_liveness_turned_off() {
    let (code, out, _) = check(&["liveness/client_no_retry", "--no-liveness"]);
    assert_eq!(code, 0, "safety alone holds: {out}");
    assert!(!out.contains("eventually"), "{out}");
    let (code, out, _) = check(&["bugs/no_step_down", "--property", "Log Matching"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Log Matching") && !out.contains("Election Safety"),
        "{out}"
    );
    let (code, _, err) = check(&["election", "--property", "No Such Thing"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("no such property") && err.contains("Election Safety"),
        "{err}"
    );
}

/// The expected violated property of each zoo bug, as checks/bugs.toml pins it for BFS (entries
/// that name their own checker, as the swarm's 60-second one does, are left to the suite).
fn zoo_expectations() -> Vec<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let suite: toml::Value =
        toml::from_str(&std::fs::read_to_string(root.join("checks/bugs.toml")).unwrap()).unwrap();
    let mut out = Vec::new();
    for e in suite["entry"].as_array().unwrap() {
        if e.get("without_bug").is_some() || e.get("checker").is_some() {
            continue;
        }
        let expect = e["expect"].as_table().unwrap();
        let (name, _) = expect
            .iter()
            .find(|(_, v)| v.as_str() == Some("violated"))
            .unwrap();
        out.push((e["model"].as_str().unwrap().to_string(), name.clone()));
    }
    out
}

/// The swarm finds every zoo bug, with the property the BFS finds, on several seeds; the trace
/// it prints replays (the runner validates it), and `--seed S --walk W` finds it again alone.
#[test]
fn the_swarm_finds_every_zoo_bug_and_replays_its_walk() {
    for (model, property) in zoo_expectations() {
        for seed in ["1", "2", "3"] {
            let args = [
                &model,
                "--checker",
                "simulation",
                "--seed",
                seed,
                "--timeout",
                "20",
            ];
            let (code, out, err) = check(&[args.as_slice(), &["--json"]].concat());
            assert_eq!(code, 1, "{model} seed {seed}: {err}");
            let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
            let props = v["properties"].as_array().unwrap();
            // The walk stops at the first violation: the BFS's property, or another consequence
            // of the same bug met first (snapshot_discards_log also pulls a commit index back).
            let p = props
                .iter()
                .find(|p| p["name"] == property.as_str() && p["status"] == "violated")
                .or_else(|| props.iter().find(|p| p["status"] == "violated"))
                .unwrap_or_else(|| panic!("{model} seed {seed}: nothing violated: {out}"));
            assert_eq!(p["kind"], "always", "{model} seed {seed}");
            assert!(p["trace"].as_array().is_some_and(|t| t.len() > 1));
            let property = p["name"].as_str().unwrap().to_string();
            let walk = p["walk"]
                .as_u64()
                .expect("the walk that found it")
                .to_string();
            let again = [
                &model,
                "--checker",
                "simulation",
                "--seed",
                seed,
                "--walk",
                &walk,
            ];
            let (code, out, _) = check(&again);
            assert_eq!(code, 1, "{model} seed {seed} walk {walk} alone: {out}");
            assert!(out.contains(&format!("{property} violated")), "{out}");
        }
    }
}

/// A walk of a later epoch (the swarm empties its corpus at each) replays alone: `--walk W`
/// rebuilds the corpus from the batches of W's own epoch only. Seed 1 of the fresh
/// accept_stale_replies model finds the bug at walk 257,670, in the epoch that starts at walk
/// 131,072; rebuilding from walk 0 instead misses it.
#[test]
fn a_walk_of_a_later_epoch_replays_alone() {
    let model = "bugs/accept_stale_replies_fresh";
    let args = [
        model,
        "--checker",
        "simulation",
        "--seed",
        "1",
        "--walk",
        "257670",
    ];
    let (code, v, err) = check_json(&args);
    assert_eq!(code, 1, "{err}");
    let violated: Vec<_> = v["properties"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["status"] == "violated")
        .map(|p| (p["name"].clone(), p["walk"].clone()))
        .collect();
    let expected = (
        "electable logs hold every committed entry".into(),
        257670.into(),
    );
    assert_eq!(violated, [expected]);
}

/// No checker panics, and none exits 0 with a violation or 1 without one, on any shipped model
/// (each run bounded by a state cap, so the whole matrix takes seconds).
#[test]
fn no_checker_panics_or_hides_a_violation_on_any_shipped_model() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut models = Vec::new();
    for dir in ["models", "models/bugs", "models/liveness"] {
        for file in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = file.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                models.push(path.to_str().unwrap().to_string());
            }
        }
    }
    assert!(models.len() >= 20, "{models:?}");
    for model in &models {
        for (checker, seed) in [
            ("bfs", "0"),
            ("dfs", "0"),
            ("simulation", "1"),
            ("simulation", "2"),
        ] {
            let args = [
                model.as_str(),
                "--checker",
                checker,
                "--seed",
                seed,
                "--max-states",
                "20000",
                "--json",
            ];
            let (code, out, err) = check(&args);
            assert!(
                code == 0 || code == 1,
                "{model} {checker}: exit {code}: {err}"
            );
            let v: serde_json::Value = serde_json::from_str(out.trim())
                .unwrap_or_else(|e| panic!("{model} {checker}: {e}: {out}{err}"));
            let violated = v["properties"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["status"] == "violated");
            assert_eq!(code == 1, violated, "{model} {checker} seed {seed}: {out}");
        }
    }
}

/// `symmetry = true` in a model file with a client is refused when the model is read: exit 2, a
/// message naming the file and the field, with the reason `--symmetry` is refused with.
#[test]
fn a_model_declaring_symmetry_with_a_client_is_refused_naming_the_field() {
    let dir = std::env::temp_dir().join(format!("raft-check-sym-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("sym_client.toml");
    std::fs::write(
        &bad,
        "symmetry = true\n[[client]]\nops = [\"put x 1\"]\n[bounds]\nmax_term = 1\nmax_log_len = 1\n",
    )
    .unwrap();
    let (code, out, err) = check(&[bad.to_str().unwrap(), "--json"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("sym_client.toml: symmetry:"), "{err}");
    assert!(err.contains("clients try servers in id order"), "{err}");
    assert!(out.is_empty(), "{out}");
    std::fs::remove_dir_all(&dir).ok();
}

/// A model that declares symmetry is checked with it by every path in (no flag, suites),
/// `--no-symmetry` turns it off, and its liveness properties are still `unknown`.
#[test]
fn a_model_that_declares_symmetry_is_checked_with_it_without_a_flag() {
    let json = |args: &[&str]| {
        let (code, out, err) = check(args);
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_else(|_| {
            panic!("{args:?}: {out}{err}");
        });
        (code, v)
    };
    let electable =
        |v: &serde_json::Value| violated_trace_len(v, "electable logs hold every committed entry");
    // Figure 8, no flag: the state count `check --symmetry` gave before the model declared it
    // (measured: 169,298, as checks/bugs.toml's run shows), and the pinned 19-step trace.
    let (code, v) = json(&["bugs/commit_previous_term_entries", "--json"]);
    assert_eq!(code, 1);
    assert_eq!(v["symmetry"], true);
    assert_eq!(v["unique_states"], 169_298);
    assert_eq!(electable(&v), 19);

    // The smaller declared model: no flag and `--symmetry` agree, `--no-symmetry` visits every
    // renaming, and the verdict and trace length do not change.
    let sms = |v: &serde_json::Value| violated_trace_len(v, "State Machine Safety");
    let (_, plain) = json(&["bugs/commit_without_min", "--json"]);
    let (_, flag) = json(&["bugs/commit_without_min", "--symmetry", "--json"]);
    let (code, off) = json(&["bugs/commit_without_min", "--no-symmetry", "--json"]);
    assert_eq!(code, 1);
    assert_eq!(plain["symmetry"], true);
    assert_eq!(plain["unique_states"], flag["unique_states"]);
    assert_eq!(off["symmetry"], false);
    assert!(off["unique_states"].as_u64() > plain["unique_states"].as_u64());
    assert_eq!(sms(&plain), 12);
    assert_eq!(sms(&off), 12);
    let (code, _, err) = check(&["bugs/commit_without_min", "--symmetry", "--no-symmetry"]);
    assert_eq!(code, 2, "{err}");

    // Suites: an entry without `symmetry` follows the model, `symmetry = false` overrides it.
    let dir = std::env::temp_dir().join(format!("raft-check-sym-suite-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let suite = dir.join("suite.toml");
    let entry = |name: &str, sym: &str| {
        format!(
            "[[entry]]\nname = \"{name}\"\nmodel = \"bugs/commit_without_min\"\n{sym}\
             expect = {{ \"State Machine Safety\" = \"violated\" }}\n\
             trace_len = {{ \"State Machine Safety\" = 12 }}\n"
        )
    };
    std::fs::write(
        &suite,
        entry("declared", "") + &entry("off", "symmetry = false\n"),
    )
    .unwrap();
    let (code, out, err) = check(&["--suite", suite.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let states = |name: &str| {
        let row = out.lines().find(|l| l.starts_with(name)).unwrap();
        row.split_whitespace().rev().nth(1).unwrap().to_string()
    };
    assert_eq!(states("declared"), plain["unique_states"].to_string());
    assert_eq!(states("off"), off["unique_states"].to_string());

    // Election with symmetry declared: reduced, and liveness is not checked (unknown).
    let model = dir.join("election_sym.toml");
    let election = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/election.toml"),
    )
    .unwrap();
    std::fs::write(&model, format!("symmetry = true\n{election}")).unwrap();
    let (code, v) = json(&[model.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0);
    let (_, flag) = json(&["election", "--symmetry", "--json"]);
    assert_eq!(v["unique_states"], flag["unique_states"]);
    let live: Vec<_> = v["properties"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["kind"] == "eventually" || p["kind"] == "leads_to")
        .collect();
    assert_eq!(live.len(), 5);
    assert!(live.iter().all(|p| p["status"] == "unknown"), "{v}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Linearizability with no client operation proves nothing: `check election` reports it
/// `vacuous` (as every property the model leaves nothing to break), and exits 0 as for `holds`.
#[test]
fn a_property_nothing_could_break_is_vacuous_and_exits_0() {
    let (code, out, err) = check(&["election", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let status = |name: &str| {
        v["properties"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no {name}: {out}"))["status"]
            .clone()
    };
    assert_eq!(status("client operations are linearizable"), "vacuous");
    assert_eq!(
        status("every client operation eventually completes"),
        "vacuous"
    );
    assert_eq!(status("Log Matching"), "vacuous"); // max_log_len = 0
    assert_eq!(status("State Machine Safety"), "vacuous");
    assert_eq!(status(ELECTION_SAFETY), "holds");
    assert_eq!(status("a leader is eventually elected"), "holds");
    assert_eq!(status("an entry is committed"), "no_example");
    let (code, out, _) = check(&["election"]);
    assert_eq!(code, 0);
    assert!(out.contains("vacuous"), "{out}");

    // A violation is never hidden: no_step_down (no client, no entry) still exits 1.
    let (code, out, _) = check(&["bugs/no_step_down", "--json"]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let es = v["properties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == ELECTION_SAFETY)
        .unwrap();
    assert_eq!(es["status"], "violated");
}

/// Every suite's expectations agree with the vacuity rule: no `holds` is expected of a property
/// its model leaves nothing to break, and `vacuous` only of such properties (checked on the
/// suites' entries as loaded, without running them).
#[test]
fn suite_expectations_follow_the_vacuity_rule() {
    use raft_checked::check::{suite, vacuity};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut vacuous = 0;
    for name in ["ci", "bugs", "liveness"] {
        let path = root.join(format!("checks/{name}.toml"));
        for e in suite::load(&path).unwrap_or_else(|err| panic!("{err}")) {
            for (property, want) in &e.expect {
                let is = vacuity::is_vacuous(&e.model, property);
                match want {
                    Status::Holds => assert!(!is, "{name}: {}: {property} is vacuous", e.name),
                    Status::Vacuous => {
                        assert!(is, "{name}: {}: {property} is not vacuous", e.name);
                        vacuous += 1;
                    }
                    _ => {}
                }
            }
        }
    }
    assert!(vacuous > 0);
}

/// Runs `check` with `args` and `--json`, and parses the one object it prints.
fn check_json(args: &[&str]) -> (i32, serde_json::Value, String) {
    let mut args = args.to_vec();
    args.push("--json");
    let (code, out, err) = check(&args);
    let v = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    (code, v, err)
}

/// Every property the search itself decides (`always` and `sometimes`) must be `unknown` or an
/// example found: a search cut short by a limit claims nothing else.
fn assert_claims_nothing(v: &serde_json::Value) {
    for p in v["properties"].as_array().unwrap() {
        let status = p["status"].as_str().unwrap();
        match p["kind"].as_str().unwrap() {
            "sometimes" => assert!(["unknown", "example_found"].contains(&status), "{p}"),
            _ => assert_eq!(status, "unknown", "{p}"),
        }
    }
}

#[test]
fn dfs_on_election_is_complete_with_the_same_verdicts_as_bfs() {
    let cfg = load::load("election").unwrap();
    let with = |checker| {
        let opts = RunOptions {
            checker,
            ..RunOptions::default()
        };
        runner::run(&cfg, &opts)
    };
    let (dfs, bfs) = (
        with(runner::CheckerKind::Dfs),
        with(runner::CheckerKind::Bfs),
    );
    assert!(dfs.complete && bfs.complete);
    assert_eq!(dfs.stopped_by, None);
    assert_eq!(dfs.unique_states, bfs.unique_states); // 6,086: the same states
    assert_eq!(dfs.properties.len(), bfs.properties.len());
    for (d, b) in dfs.properties.iter().zip(&bfs.properties) {
        assert_eq!(d.name, b.name);
        match d.kind {
            "always" => {
                // election appends no entry: its log properties hold vacuously, in both.
                assert!(
                    matches!(b.status, Status::Holds | Status::Vacuous),
                    "{}",
                    b.name
                );
                assert_eq!(d.status, b.status, "{}", d.name);
            }
            "sometimes" => assert_eq!(d.status, b.status, "{}", d.name),
            // Liveness is checked on the BFS's graph only.
            _ => assert_eq!(d.status, Status::Unknown, "{}", d.name),
        }
    }
}

#[test]
fn dfs_max_states_stops_by_states_and_claims_nothing() {
    let (code, v, _) = check_json(&["default", "--checker", "dfs", "--max-states", "500"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["checker"], "dfs");
    assert_eq!(v["complete"], false);
    assert_eq!(v["stopped_by"], "states");
    assert_eq!(v["unique_states"], 500);
    assert_claims_nothing(&v);
}

#[test]
fn dfs_timeout_stops_by_time_within_a_few_seconds() {
    let start = Instant::now();
    let (code, v, _) = check_json(&["default", "--checker", "dfs", "--timeout", "1"]);
    let wall = start.elapsed();
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["complete"], false);
    assert_eq!(v["stopped_by"], "time");
    let searched = v["elapsed_s"].as_f64().unwrap();
    assert!((1.0..2.0).contains(&searched), "{searched} s");
    assert!(wall < Duration::from_secs(4), "{wall:?}");
    assert_claims_nothing(&v);
}

#[test]
fn dfs_finds_no_step_down_with_a_trace_that_replays() {
    use stateright::Model;
    let (code, v, _) = check_json(&["bugs/no_step_down", "--checker", "dfs"]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["stopped_by"], "violation");
    let es = v["properties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == ELECTION_SAFETY)
        .unwrap();
    assert_eq!(es["status"], "violated");
    assert!(es["trace"].as_array().unwrap().len() > 1, "{es}");
    // The path the DFS returns replays from the initial state, step by step within the bounds,
    // to a state with two leaders in one term.
    let model =
        raft_checked::check::model_with_properties(load::load("bugs/no_step_down").unwrap());
    let limits = Limits::default();
    let result = raft_checked::check::dfs::check(&model, &limits, None, &Progress::default());
    assert_eq!(result.stopped, Some(bfs::Stop::Violation));
    let path = &result.discoveries[ELECTION_SAFETY];
    let mut state = model.init_states().pop().unwrap();
    for action in path {
        state = model.next_state(&state, action.clone()).expect("enabled");
        assert!(model.within_boundary(&state));
    }
    let es = model
        .properties()
        .into_iter()
        .find(|p| p.name == ELECTION_SAFETY)
        .unwrap();
    assert!(
        !(es.condition)(&model, &state),
        "the last state violates it"
    );
}

#[test]
fn dfs_depth_limit_checks_every_path_within_it() {
    // A state first reached near the limit and later by a shorter path is expanded again, so a
    // depth-limited DFS visits exactly the states BFS finds within that depth.
    let unique = |checker, depth| {
        let (_, v, _) = check_json(&["election", "--checker", checker, "--depth", depth]);
        (
            v["unique_states"].as_u64().unwrap(),
            v["stopped_by"].clone(),
        )
    };
    // (Not expanding them again, election at depth 6 visits 819 states of 941.)
    for depth in ["4", "6", "9"] {
        let (dfs, stop) = unique("dfs", depth);
        assert_eq!(dfs, unique("bfs", depth).0, "depth {depth}");
        assert_eq!(stop, "depth");
    }
    // A limit no path reaches cuts nothing: the search is complete.
    let (_, v, _) = check_json(&["election", "--checker", "dfs", "--depth", "30"]);
    assert_eq!(v["complete"], true, "{v}");
    assert_eq!(v["unique_states"], 6086);
}

#[test]
fn unbounded_model_warning_on_stderr_for_dfs_and_bfs() {
    for checker in ["dfs", "bfs"] {
        let args = ["bugs/vote_not_persisted", "--checker", checker];
        let (_, _, err) = check_json(&[&args[..], &["--max-states", "10"]].concat());
        assert!(
            err.contains("warning: model bugs/vote_not_persisted")
                && err.contains("set bounds.max_messages"),
            "{checker}: {err}"
        );
    }
    // Bounded models, and any run with a depth limit, get none.
    let (_, _, err) = check_json(&["election", "--checker", "dfs", "--max-states", "10"]);
    assert!(!err.contains("warning"), "{err}");
    let (_, _, err) = check_json(&[
        "bugs/vote_not_persisted",
        "--checker",
        "dfs",
        "--depth",
        "2",
    ]);
    assert!(!err.contains("warning"), "{err}");
}

#[test]
fn every_binary_answers_version_and_check_lists_models_it_cannot_find() {
    for bin in [
        env!("CARGO_BIN_EXE_check"),
        env!("CARGO_BIN_EXE_node"),
        env!("CARGO_BIN_EXE_client"),
        env!("CARGO_BIN_EXE_cluster"),
        env!("CARGO_BIN_EXE_bench"),
    ] {
        let out = Command::new(bin).arg("--version").output().unwrap();
        assert!(out.status.success(), "{bin}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(env!("CARGO_PKG_VERSION")), "{bin}: {text}");
    }
    let (code, _, err) = check(&["no_such_model"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("the models are:") && err.contains("bugs/no_step_down"),
        "{err}"
    );
}

/// The steps of property `name`'s trace in a JSON report, which must show it violated.
fn violated_trace_len(v: &serde_json::Value, name: &str) -> usize {
    let p = v["properties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap();
    assert_eq!(p["status"], "violated", "{p}");
    p["trace"].as_array().unwrap().len() - 1
}

/// Coverage: what each search's transitions exercised. BFS and DFS explore the same graph of a
/// complete model, so they count the same transitions; each count reflects its model (crashes
/// only where crashes may happen, snapshots only where they are taken); and the swarm's counts
/// are the same for any thread count.
#[test]
fn every_search_reports_what_it_exercised_and_the_counts_agree() {
    let cfg = load::load("snapshot_over_conflict").unwrap();
    let with = |checker, threads| {
        let opts = RunOptions {
            checker,
            threads,
            walks: (checker == runner::CheckerKind::Simulation).then_some(128),
            ..RunOptions::default()
        };
        runner::run(&cfg, &opts).coverage
    };
    let (bfs, dfs) = (
        with(runner::CheckerKind::Bfs, 2),
        with(runner::CheckerKind::Dfs, 1),
    );
    assert_eq!(bfs, dfs);
    assert!(
        bfs.crashes > 0 && bfs.restarts > 0 && bfs.drops > 0,
        "{bfs:?}"
    );
    assert!(
        bfs.snapshots_taken > 0 && bfs.commit_advances > 0,
        "{bfs:?}"
    );
    let swarm = with(runner::CheckerKind::Simulation, 1);
    assert_eq!(swarm, with(runner::CheckerKind::Simulation, 2));
    assert!(swarm.drops > 0, "{swarm:?}");

    let election = run("election").coverage;
    assert!(
        election.elections_won > 0 && election.leader_changes > 0,
        "{election:?}"
    );
    assert_eq!(
        election.crashes + election.drops + election.snapshots_taken,
        0
    );
    assert_eq!(election.commit_advances + election.operations_completed, 0);
    let client = run("bugs/no_deduplication").coverage;
    assert!(
        client.client_retries > 0 && client.operations_completed > 0,
        "{client:?}"
    );
    let installs = run("bugs/snapshot_discards_log").coverage;
    assert!(installs.snapshots_installed > 0, "{installs:?}");

    let (code, out, _) = check(&["election", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["coverage"]["elections_won"], election.elections_won);
    let (_, text, _) = check(&["election"]);
    assert!(text.contains("exercised (transitions): "), "{text}");
    assert!(text.contains(" elections won, "), "{text}");
}

/// A file under the system's temporary directory, unique to this process and `name`.
fn temp_file(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("check-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    path
}

/// Whether two arrows cross between their ends (touching at an end does not count).
fn cross(a: &DrawnArrow, b: &DrawnArrow) -> bool {
    let side = |p: [f64; 2], q: [f64; 2], r: [f64; 2]| {
        ((q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])).signum()
    };
    let (a1, a2) = ([a.ends[0], a.ends[1]], [a.ends[2], a.ends[3]]);
    let (b1, b2) = ([b.ends[0], b.ends[1]], [b.ends[2], b.ends[3]]);
    side(a1, a2, b1) * side(a1, a2, b2) < 0.0 && side(b1, b2, a1) * side(b1, b2, a2) < 0.0
}

/// `check --svg` on the zoo's no_step_down: a well-formed SVG, a lane per server, and each
/// arrow from the step that sent its message to the one that delivered it, so that S1's
/// Vote(t1), delivered after S1 has timed out into term 2, is an arrow two rows long.
#[test]
fn svg_draws_no_step_down_with_the_delayed_vote() {
    let path = temp_file("no_step_down.svg");
    let (code, out, err) = check(&["bugs/no_step_down", "--svg", path.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    let svg = std::fs::read_to_string(&path).unwrap();
    raft_checked::model::diagram::well_formed(&svg).unwrap();
    assert!(svg.starts_with("<?xml") && svg.contains("xmlns=\"http://www.w3.org/2000/svg\""));
    for lane in ["S0", "S1", "S2"] {
        let name = format!("text-anchor=\"middle\">{lane}</text>");
        assert_eq!(svg.matches(&name).count(), 1, "{lane}");
    }
    assert!(svg.contains("two leaders in term 2: S0 and S1"), "{svg}");
    let arrows = drawn_arrows(&svg);
    let delivered: Vec<&DrawnArrow> = arrows.iter().filter(|a| a.fate == "delivered").collect();
    let steps: Vec<(usize, usize)> = delivered.iter().map(|a| (a.sent, a.ended)).collect();
    assert_eq!(steps, [(1, 2), (2, 4), (3, 5), (5, 6)]);
    let row = delivered[0].ends[3] - delivered[0].ends[1];
    let vote = delivered[1];
    assert!(vote.label.starts_with("S1 → S0: Vote(t1, yes)"), "{vote:?}");
    assert_eq!((vote.src.as_str(), vote.dst.as_str()), ("S1", "S0"));
    assert_eq!(vote.ends[3] - vote.ends[1], 2.0 * row, "{vote:?}");
    // S1 timed out between sending it and its delivery: its timer mark sits on S1's lane,
    // within the arrow's rows.
    let timeout = svg.find("<title>S1: election timeout</title>").unwrap();
    let mark = &svg[svg[..timeout].rfind("<circle").unwrap()..timeout];
    let at = |name: &str| {
        let from = mark.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
        mark[from..from + mark[from..].find('"').unwrap()]
            .parse::<f64>()
            .unwrap()
    };
    assert!(
        mark.contains("sd-timer") && at("cx") == vote.ends[0],
        "{mark}"
    );
    assert!(vote.ends[1] < at("cy") && at("cy") < vote.ends[3], "{mark}");
    // Messages still in flight at the end are stubs, never arrows to a delivery.
    assert!(arrows.iter().any(|a| a.fate == "in-flight" && a.ended == 6));
}

#[test]
fn svg_writes_nothing_when_nothing_is_violated_and_fails_clearly_when_it_cannot_write() {
    let path = temp_file("five.svg");
    let (code, _, err) = check(&["five", "--svg", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(!path.exists());
    assert!(err.contains("no property is violated"), "{err}");
    let (code, _, err) = check(&["bugs/no_step_down", "--svg", "/nonexistent/dir/d.svg"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--svg /nonexistent/dir/d.svg: cannot write"),
        "{err}"
    );
    let (code, _, err) = check(&["--suite", "checks/ci.toml", "--svg", "x.svg"]);
    assert_eq!(code, 2, "{err}");
}

/// `check --html` on Figure 8's bug: one self-contained page (no script, nothing fetched)
/// with the verdicts, the figures and the trace as diagram and table; the diagram shows
/// reordering as arrows that cross.
#[test]
fn html_report_of_commit_previous_term_entries_is_self_contained() {
    let path = temp_file("figure8.html");
    let model = "bugs/commit_previous_term_entries";
    let (code, out, err) = check(&[model, "--html", path.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    let html = std::fs::read_to_string(&path).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("<meta charset=\"utf-8\">"));
    for external in [
        "<script",
        "<link",
        " src=",
        "href=\"http",
        "url(http",
        "@import",
    ] {
        assert!(!html.contains(external), "{external}");
    }
    let property = "electable logs hold every committed entry";
    assert!(
        html.contains(&format!("<a href=\"#p4\">{property}</a>")),
        "{html}"
    );
    assert!(html.contains("class=\"violated\">violated</td>"));
    assert!(html.contains("states ") && html.contains(" · depth "));
    let svg = &html[html.find("<svg").unwrap()..html.rfind("</svg>").unwrap() + 6];
    raft_checked::model::diagram::well_formed(svg).unwrap();
    assert!(
        svg.contains("S1 (its log could win the next election"),
        "{svg}"
    );
    // The text table follows the diagram.
    let after = &html[html.rfind("</svg>").unwrap()..];
    assert!(
        after.contains("<pre>") && after.contains("0  initial state"),
        "{after}"
    );
    let arrows = drawn_arrows(svg);
    let delivered: Vec<&DrawnArrow> = arrows.iter().filter(|a| a.fate == "delivered").collect();
    let crossing = delivered
        .iter()
        .flat_map(|a| delivered.iter().map(move |b| (a, b)))
        .filter(|(a, b)| cross(a, b))
        .count();
    assert!(crossing > 0, "{delivered:?}");
}

/// A lasso's cycle is bracketed and its rows tinted; given steps are greyed, one row each.
#[test]
fn svg_marks_lasso_cycles_and_given_steps() {
    let path = temp_file("lasso.svg");
    let (code, _, err) = check(&[
        "liveness/no_append_retry",
        "--property",
        "an entry accepted by a leader that stays leader is eventually committed",
        "--svg",
        path.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    let svg = std::fs::read_to_string(&path).unwrap();
    raft_checked::model::diagram::well_formed(&svg).unwrap();
    assert!(
        svg.contains("↻ back to step 9: steps 10-14 repeat forever"),
        "{svg}"
    );
    assert_eq!(svg.matches("class=\"sd-cycle-row\"").count(), 5);
    assert_eq!(svg.matches("class=\"sd-cycle\"").count(), 1);
    let stuck = "leader S0 (term 1) accepted entry 1 (1:x=1) and stays at commit 0";
    assert!(svg.contains(stuck), "{svg}");
    let path = temp_file("given.svg");
    let model = "bugs/accept_stale_replies";
    let (code, _, err) = check(&[model, "--svg", path.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    let svg = std::fs::read_to_string(&path).unwrap();
    let given = raft_checked::model::RaftModel::new(load::load(model).unwrap()).given;
    assert!(!given.is_empty());
    assert_eq!(svg.matches("class=\"sd-given-row\"").count(), given.len());
    assert!(svg.contains("the search starts here"));
}

/// Traces explain themselves: the violation names the servers and entries involved (`why:`,
/// JSON `explanation`), and the messages in flight are in every JSON step and, with
/// `--show-network`, under every printed step.
#[test]
fn traces_name_what_breaks_and_show_the_network_on_request() {
    let (code, out, _) = check(&["bugs/commit_previous_term_entries"]);
    assert_eq!(code, 1);
    assert!(
        out.contains("why: S1 (its log could win the next election, log [2:x=2]) lacks entry 1 (1:x=1), committed in term 3"),
        "{out}"
    );
    assert!(!out.contains("in flight:"), "{out}");

    let (code, out, _) = check(&["bugs/no_step_down", "--show-network"]);
    assert_eq!(code, 1);
    assert!(
        out.contains("why: two leaders in term 2: S0 and S1"),
        "{out}"
    );
    let line = |step: &str| {
        let at = out.lines().position(|l| l.starts_with(step)).unwrap();
        out.lines().nth(at + 1).unwrap().trim().to_string()
    };
    assert_eq!(line("0  initial state"), "in flight: nothing");
    // S1's vote for term 1 is in flight from step 2 until step 4 delivers it.
    for step in ["2  ", "3  "] {
        assert!(line(step).contains("S1 → S0: Vote(t1, yes)"), "{out}");
    }
    assert!(!line("4  ").contains("Vote(t1, yes)"), "{out}");

    let (_, json, _) = check(&["bugs/no_step_down", "--json"]);
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    let p = v["properties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["status"] == "violated")
        .unwrap();
    assert_eq!(p["explanation"][0], "two leaders in term 2: S0 and S1");
    let flights: Vec<usize> = p["trace"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["in_flight"].as_array().unwrap().len())
        .collect();
    assert_eq!(flights[..3], [0, 2, 2], "{flights:?}");
}

/// The verdict of every property, and the unique states, of `check ARGS --json`.
fn verdicts(args: &[&str]) -> (std::collections::BTreeMap<String, String>, u64, u64) {
    let mut all = args.to_vec();
    all.push("--json");
    let (code, out, err) = check(&all);
    assert!(code == 0 || code == 1, "{args:?}: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let statuses = v["properties"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let name = p["name"].as_str().unwrap().to_string();
            (name, p["status"].as_str().unwrap().to_string())
        })
        .collect();
    let unique = v["unique_states"].as_u64().unwrap();
    (statuses, unique, v["bound_stops"].as_u64().unwrap_or(0))
}

/// The two timing traps of the Students' Guide are beyond an untimed checker, and these pin
/// why (README, "The liveness bug zoo"). A timer reset changes when a timer fires, not whether
/// it may: with every refused RequestVote resetting the timer, the state graph is the very one
/// of correct Raft (same unique states, same verdicts). A candidate that ignores its term's
/// leader does change the graph, but every disruption it causes takes a new term, so within
/// `max_term` those runs stop at the bound: no violation, and bound stops counted. `sim`, which
/// has time, catches both (tests/sim.rs).
#[test]
fn timing_traps_change_no_verdict_of_the_untimed_checker() {
    let model = "models/timing/reset_timer_on_refused_vote.toml";
    let text = std::fs::read_to_string(model).unwrap();
    assert!(text.contains("bug = \"reset_timer_on_refused_vote\""));
    let correct = temp_file("timing_correct.toml");
    std::fs::write(&correct, text.replace("bug = ", "# bug = ")).unwrap();
    let (with_bug, states, _) = verdicts(&["timing/reset_timer_on_refused_vote"]);
    let (without, correct_states, _) = verdicts(&[correct.to_str().unwrap()]);
    assert_eq!(
        (with_bug.clone(), states),
        (without.clone(), correct_states)
    );
    assert!(with_bug.values().all(|s| s != "violated"), "{with_bug:?}");

    let (candidate, states, bound_stops) = verdicts(&["timing/candidate_ignores_leader"]);
    assert_ne!(
        states, correct_states,
        "the bug changes which states are reachable"
    );
    assert_eq!(candidate, without, "yet no verdict");
    assert!(bound_stops > 0);
}

/// The swarm's corpus (states of new shapes that later walks start from) is merged in walk
/// order after each batch, so a run is the same on one thread as on two: the same steps,
/// estimated unique states, corpus, verdicts and the walk that found each.
#[test]
fn the_swarm_with_its_corpus_is_the_same_for_any_thread_count() {
    let run = |model: &str, threads: &str| {
        let args = [
            model,
            "--checker",
            "simulation",
            "--seed",
            "7",
            "--walks",
            "3000",
            "--threads",
            threads,
            "--json",
        ];
        let (code, out, err) = check(&args);
        assert!(code == 0 || code == 1, "{model}: {err}");
        let mut v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        v.as_object_mut().unwrap().remove("elapsed_s");
        v.as_object_mut().unwrap().remove("peak_rss_bytes");
        v
    };
    for model in ["snapshot_over_conflict", "bugs/accept_stale_replies_fresh"] {
        let one = run(model, "1");
        assert!(one["corpus"].as_u64().unwrap() > 0, "{model}: {one}");
        assert_eq!(one, run(model, "2"), "{model}");
    }
}

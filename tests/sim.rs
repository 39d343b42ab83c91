//! The simulator as its users see it: every scenario passes on a few seeds, a seed is a run
//! (byte-identical output twice), injected bugs fail fitting scenarios, and the CLI's contract
//! (exit statuses, JSON shape, usage errors).

use raft_checked::protocol::server::Bug;
use raft_checked::sim::scenarios;
use std::process::Command;

const SEEDS: [u64; 3] = [1, 2, 3];

/// The zoo's `vote_not_persisted` in `figure8`, seed 3: a run that fails (Election Safety).
const FIGURE8_SEED_3_BROKEN: [&str; 6] = [
    "--scenario",
    "figure8",
    "--seed",
    "3",
    "--bug",
    "vote_not_persisted",
];

fn sim(args: &[&str]) -> (i32, String, String) {
    run_bin(env!("CARGO_BIN_EXE_sim"), args)
}

/// Runs `check` on `args`.
fn check(args: &[&str]) -> (i32, String, String) {
    run_bin(env!("CARGO_BIN_EXE_check"), args)
}

/// Runs one of the crate's binaries from the crate's root: exit code, stdout, stderr.
fn run_bin(bin: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs scenario `name` on [`SEEDS`] and fails with the first failing run's report.
fn passes(name: &str) {
    let scenario = scenarios::find(name).expect("the scenario exists");
    for seed in SEEDS {
        let o = scenarios::run(scenario, seed, None, false);
        assert!(o.failures.is_empty(), "{name} seed {seed}:\n{}", o.text);
    }
}

macro_rules! scenario_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                passes(stringify!($name));
            }
        )*

        /// `--list` names exactly the scenarios tested here: none that does nothing.
        #[test]
        fn list_names_exactly_the_tested_scenarios() {
            let tested = [$(stringify!($name)),*];
            let (code, out, _) = sim(&["--list"]);
            assert_eq!(code, 0);
            let listed: Vec<&str> = out.lines().filter_map(|l| l.split_whitespace().next()).collect();
            assert_eq!(listed, tested);
        }
    };
}

scenario_tests!(
    initial_election,
    re_election,
    many_elections,
    basic_agree,
    rpc_bytes,
    follower_failure,
    leader_failure,
    fail_agree,
    fail_no_agree,
    concurrent_starts,
    rejoin,
    backup,
    count,
    persist1,
    persist2,
    persist3,
    figure8,
    unreliable_agree,
    figure8_unreliable,
    reliable_churn,
    unreliable_churn,
    snapshot_basic,
    snapshot_install,
    snapshot_install_unreliable,
    snapshot_install_crash,
    snapshot_install_large,
    snapshot_init,
    kv_basic,
    kv_concurrent,
    kv_unreliable,
    kv_one_partition,
    kv_many_partitions_many_clients,
    kv_persist_partition_unreliable_linearizable,
    kv_snapshot_size,
    kv_session_expiry,
    kv_speed,
    wiped_follower,
    disk_stall,
);

#[test]
fn the_same_seed_prints_the_same_bytes() {
    let args = ["--scenario", "unreliable_churn", "--seed", "7"];
    let (code1, out1, _) = sim(&args);
    let (code2, out2, _) = sim(&args);
    assert_eq!(code1, 0, "{out1}");
    assert_eq!(code2, 0);
    assert!(out1.starts_with("seed 7: ok"), "{out1}");
    assert_eq!(out1, out2);
    // A failing run prints its trace, the same both times too.
    let bad = [FIGURE8_SEED_3_BROKEN.as_slice(), &["--trace"]].concat();
    let (c1, t1, _) = sim(&bad);
    let (c2, t2, _) = sim(&bad);
    assert_eq!((c1, c2), (1, 1), "{t1}");
    assert!(t1.lines().count() > 100, "{t1}");
    assert_eq!(t1, t2);
}

#[test]
fn different_seeds_are_different_runs() {
    let scenario = scenarios::find("unreliable_churn").unwrap();
    let a = scenarios::run(scenario, 1, None, true).text;
    let b = scenarios::run(scenario, 2, None, true).text;
    assert_ne!(a, b);
}

#[test]
fn vote_not_persisted_breaks_election_safety_in_figure8() {
    let (code, out, err) = sim(&[
        "--scenario",
        "figure8",
        "--seeds",
        "6",
        "--bug",
        "vote_not_persisted",
        "--json",
    ]);
    assert_eq!(code, 1, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    let failures = v["failures"].as_array().unwrap();
    assert!(
        failures.iter().any(|f| f["check"] == "Election Safety"),
        "{v}"
    );
}

#[test]
fn no_step_down_and_vote_without_log_check_are_caught() {
    let scenario = scenarios::find("figure8_unreliable").unwrap();
    for bug in [Bug::NoStepDown, Bug::VoteWithoutLogCheck] {
        let failed = (1..=6).any(|seed| {
            !scenarios::run(scenario, seed, Some(bug), false)
                .failures
                .is_empty()
        });
        assert!(failed, "{bug:?} passed every seed");
    }
}

/// The wiped follower catches up only because the leader moves nextIndex back: without that
/// (the zoo's `no_next_index_backoff`) it is stuck at commit 0, which the scenario reports.
#[test]
fn wiped_follower_fails_when_the_leader_never_backs_off() {
    let scenario = scenarios::find("wiped_follower").unwrap();
    let o = scenarios::run(scenario, 1, Some(Bug::NoNextIndexBackoff), false);
    assert_eq!(o.failures.len(), 1, "{}", o.text);
    assert!(
        o.text.contains("did not reach agreement on 3 servers"),
        "{}",
        o.text
    );
}

#[test]
fn json_has_the_contract_fields() {
    let (code, out, _) = sim(&["--scenario", "basic_agree", "--seeds", "2", "--json"]);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["scenario"], "basic_agree");
    assert_eq!(v["runs"], 2);
    assert_eq!(v["failures"], serde_json::json!([]));
    assert!(v["virtual_s"].as_f64().unwrap() > 0.0);
    assert!(v["wall_s"].as_f64().is_some());
    assert_eq!(v["ops"], 6);
}

#[test]
fn bad_usage_exits_2_with_a_message() {
    for args in [
        vec![],
        vec!["--scenario", "nope"],
        vec!["--scenario", "basic_agree", "--bug", "nope"],
        vec!["--scenario", "basic_agree", "--seeds", "0"],
        vec!["--scenario", "basic_agree", "--seed", "1", "--seeds", "2"],
        vec!["--scenario", "basic_agree", "--seed", "x"],
        vec!["--frobnicate"],
    ] {
        let (code, out, err) = sim(&args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(
            !err.is_empty() && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
}

/// The `(data-sent, data-ended, data-fate)` of every arrow in a drawing.
fn arrows(svg: &str) -> Vec<(usize, usize, String)> {
    raft_checked::model::diagram::drawn_arrows(svg)
        .into_iter()
        .map(|a| (a.sent, a.ended, a.fate))
        .collect()
}

/// `sim --svg` draws a failing seed's last steps as a sequence diagram: a lane per server and
/// client, each datagram an arrow from the round that sent it to the round that read it (or
/// a cross where it was lost), the violated property and the servers it concerns at the end.
/// One seed is one run: the same command draws the same bytes.
#[test]
fn svg_draws_a_failing_seeds_last_steps() {
    let dir = std::env::temp_dir().join(format!("sim-svg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("f8.svg");
    let args = [
        FIGURE8_SEED_3_BROKEN.as_slice(),
        &["--svg", path.to_str().unwrap()],
    ]
    .concat();
    let (code, out, err) = sim(&args);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("last 80 steps drawn"), "{err}");
    let svg = std::fs::read_to_string(&path).unwrap();
    raft_checked::model::diagram::well_formed(&svg).unwrap();
    assert!(svg.contains("figure8 seed 3: Election Safety violated"));
    assert!(
        svg.contains("two leaders in term"),
        "the servers it concerns"
    );
    for lane in ["S0", "S4", "C0"] {
        assert!(svg.contains(&format!("middle\">{lane}</text>")), "{lane}");
    }
    let drawn = arrows(&svg);
    assert!(drawn.iter().all(|(sent, ended, _)| sent <= ended));
    let delivered = drawn.iter().filter(|a| a.2 == "delivered").count();
    let lost = drawn.iter().filter(|a| a.2 == "dropped").count();
    assert!(
        delivered > 50 && lost > 0,
        "{delivered} delivered, {lost} lost"
    );
    assert!(drawn.iter().any(|(sent, ended, _)| ended > &(sent + 1)));
    std::fs::remove_file(&path).unwrap();
    let _ = sim(&args);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), svg);

    // A passing seed is drawn when asked for by --seed; with --seeds only a failing one is.
    let ok = dir.join("ok.svg");
    let ok_str = ok.to_str().unwrap();
    let (code, _, _) = sim(&["--scenario", "basic_agree", "--seed", "1", "--svg", ok_str]);
    assert_eq!(code, 0);
    let svg = std::fs::read_to_string(&ok).unwrap();
    assert!(svg.contains("basic_agree seed 1: every check passed"));
    assert!(arrows(&svg).iter().any(|a| a.2 == "delivered"));
    std::fs::remove_file(&ok).unwrap();
    let (code, _, err) = sim(&["--scenario", "basic_agree", "--seeds", "2", "--svg", ok_str]);
    assert_eq!(code, 0);
    assert!(err.contains("no diagram written") && !ok.exists(), "{err}");
    let (code, _, err) = sim(&["--scenario", "basic_agree", "--svg", "/nonexistent/d/x.svg"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot write /nonexistent/d/x.svg"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `RUST_LOG` turns on the nodes' own log lines (the `node` binary's: elections, terms,
/// leaders), stamped with virtual time and the run's seed, on stderr; the same seed logs the
/// same lines. Without it nothing is logged.
#[test]
fn rust_log_logs_the_nodes_in_virtual_time() {
    let run = |log: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sim"));
        cmd.args(["--scenario", "initial_election", "--seed", "1"]);
        cmd.env_remove("RUST_LOG");
        if let Some(filter) = log {
            cmd.env("RUST_LOG", filter);
        }
        let out = cmd.output().expect("sim runs");
        assert_eq!(out.status.code(), Some(0));
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        // The last line is the wall-clock rate, which differs run to run.
        let log: Vec<String> = err
            .lines()
            .filter(|l| !l.starts_with("sim: "))
            .map(String::from)
            .collect();
        log
    };
    let log = run(Some("info"));
    let won = log
        .iter()
        .find(|l| l.contains("election won: leader of term 1"))
        .expect("the election is logged");
    assert!(
        won.contains("run{seed=1}") && won.contains(" node="),
        "{won}"
    );
    let stamp: f64 = won.split('s').next().unwrap().trim().parse().unwrap();
    assert!(stamp > 0.0 && stamp < 5.0, "{won}");
    assert_eq!(log, run(Some("info")));
    assert!(run(None).is_empty());
}

/// A reader that stops early (`sim ... | head -1`) ends `sim` as it ends `cat`, by SIGPIPE,
/// never with a panic about a broken pipe.
#[test]
fn a_closed_stdout_ends_sim_quietly() {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(FIGURE8_SEED_3_BROKEN)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sim starts");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("seed 3: FAILED"), "{first}");
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
}

/// The Students' Guide's two timing traps, which the untimed checker cannot see
/// (tests/check_cli.rs), are caught here, where time exists, by the lab tests that catch them
/// in 6.5840. A candidate that ignores the leader of its term times out and starts a new term
/// with no failure around (`initial_election`: "term changed with no failure"). Followers that
/// reset their timers on refused votes let servers with stale logs keep the others from
/// standing: in `figure8_unreliable` some seed of 1-100 goes without a leader or without
/// agreement too long. Correct Raft passes the same seeds.
#[test]
fn timing_traps_are_caught_by_the_simulator() {
    let initial = scenarios::find("initial_election").unwrap();
    let failed: Vec<u64> = (1..=20)
        .filter(|&seed| {
            let o = scenarios::run(initial, seed, Some(Bug::CandidateIgnoresLeader), false);
            o.failures.iter().any(|f| f.check == "terms")
        })
        .collect();
    assert!(!failed.is_empty(), "no seed of 1..=20 failed");
    for &seed in &failed {
        let o = scenarios::run(initial, seed, None, false);
        assert!(o.failures.is_empty(), "{}", o.text);
    }
    let figure8 = scenarios::find("figure8_unreliable").unwrap();
    let failed: Vec<u64> = (1..=100)
        .filter(|&seed| {
            let o = scenarios::run(figure8, seed, Some(Bug::ResetTimerOnRefusedVote), false);
            // Only progress fails: no agreement, or no leader after the last heal.
            let stalls = |d: &str| d.contains("did not reach agreement") || d.contains("no leader");
            assert!(o.failures.iter().all(|f| stalls(&f.detail)), "{}", o.text);
            !o.failures.is_empty()
        })
        .collect();
    assert!(!failed.is_empty(), "no seed of 1..=100 failed");
    for &seed in &failed {
        assert!(scenarios::run(figure8, seed, None, false)
            .failures
            .is_empty());
    }
}

/// From a field failure to the checker: `--emit-model` writes a failing seed's protocol events
/// as given steps, and `check FILE` replays them to the same violation (two leaders in the
/// term the simulator saw). A passing run's file checks clean around its end; a file with a
/// step taken out is refused where the model cannot follow it.
#[test]
fn emit_model_hands_a_failing_seed_to_the_checker() {
    let dir = std::env::temp_dir().join(format!("raft-sim-emit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let failing = dir.join("figure8.toml");
    let f = failing.to_str().unwrap();
    let (code, out, err) = sim(&[
        "--scenario",
        "figure8",
        "--seed",
        "3",
        "--bug",
        "vote_not_persisted",
        "--emit-model",
        f,
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("two leaders in term 45"), "{out}");
    assert!(
        err.contains("given steps from") && err.contains("check it with"),
        "{err}"
    );
    let (code, out, err) = check(&[f, "--json"]);
    assert_eq!(code, 1, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let safety = v["properties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "Election Safety")
        .unwrap();
    assert_eq!(safety["status"], "violated", "{out}");
    assert!(
        safety["explanation"]
            .to_string()
            .contains("two leaders in term 45"),
        "{out}"
    );

    // The text report counts every given step and loss, folded rows included.
    let (_, out, _) = check(&[f]);
    let lost = out
        .split("Election Safety violated in 0 steps after 944 given steps and the loss of ")
        .nth(1)
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        lost.contains(&format!(
            "network loses {}",
            lost.split(' ').next().unwrap()
        )),
        "{out}"
    );

    let passing = dir.join("basic_agree.toml");
    let p = passing.to_str().unwrap();
    let (code, _, err) = sim(&[
        "--scenario",
        "basic_agree",
        "--seed",
        "1",
        "--emit-model",
        p,
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = check(&[p]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("no violation within depth 6"), "{out}");

    // The first election timeout taken out: the RequestVote that follows was never sent.
    let text = std::fs::read_to_string(&passing).unwrap();
    let vote = text
        .lines()
        .find(|l| l.contains("election timeout"))
        .unwrap();
    let tampered = dir.join("tampered.toml");
    std::fs::write(&tampered, text.replacen(&format!("{vote}\n"), "", 1)).unwrap();
    let (code, out, err) = check(&[tampered.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("given.steps[") && err.contains("is not enabled"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

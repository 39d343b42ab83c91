//! The command-line habits of `client`, `cluster` and `bench` (issue #14 item 5), through the
//! built binaries: global options after the subcommand, RAFT_PEERS / RAFT_KEY, the client's
//! exit statuses, a cluster restarted on its data directory, `bench --json`, and completions.
//! Every wait is bounded; every cluster runs on 127.0.0.1.

use raft_checked::net::cluster::{check_ports_free, peers_string, LocalCluster, PEERS_FILE};
use raft_checked::net::wire;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NODE: &str = env!("CARGO_BIN_EXE_node");
const CLIENT: &str = env!("CARGO_BIN_EXE_client");
const CLUSTER: &str = env!("CARGO_BIN_EXE_cluster");
const BENCH: &str = env!("CARGO_BIN_EXE_bench");

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("raft-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `bin` with `args` and exactly the RAFT_* variables in `env` (none inherited).
fn run(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut cmd = Command::new(bin);
    cmd.args(args);
    for var in raft_checked::net::ENV_VARS {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn client_takes_options_anywhere_and_from_the_environment() {
    let dir = temp_dir("client");
    let key_file = dir.join("key");
    write_key(&key_file, "a-very-secret-cluster-key-0123456789\n");
    let mut c = LocalCluster::new(PathBuf::from(NODE), 3, &dir, Some(key_file.clone())).unwrap();
    c.quiet = true;
    c.start_all().unwrap();
    let peers = peers_string(&c.peers);
    let key = key_file.to_str().unwrap();

    // Global options after the subcommand (the issue's `client get x --timeout 2`).
    let out = run(
        CLIENT,
        &[
            "put",
            "x",
            "1",
            "--peers",
            &peers,
            "--key",
            key,
            "--timeout",
            "20",
        ],
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = run(
        CLIENT,
        &[
            "--peers",
            &peers,
            "get",
            "x",
            "--timeout",
            "20",
            "--key",
            key,
        ],
        &[],
    );
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "1\n"),
        "{}",
        out.stderr
    );

    // RAFT_PEERS and RAFT_KEY stand in for --peers and --key.
    let env = [("RAFT_PEERS", peers.as_str()), ("RAFT_KEY", key)];
    let out = run(CLIENT, &["append", "x", "2", "--timeout", "20"], &env);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = run(CLIENT, &["get", "x", "--timeout", "20"], &env);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "12\n"),
        "{}",
        out.stderr
    );
    let out = run(CLIENT, &["get", "absent", "--timeout", "20"], &env);
    assert_eq!((out.code, out.stdout.as_str()), (1, ""), "{}", out.stderr);
    let out = run(CLIENT, &["status", "--json"], &env);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 3);
    // A flag beats the environment: a wrong --key is not answered, so the client times out.
    let wrong = dir.join("wrong-key");
    write_key(&wrong, "another-cluster-key-0123456789-abcdef");
    let out = run(
        CLIENT,
        &[
            "get",
            "x",
            "--timeout",
            "1",
            "--key",
            wrong.to_str().unwrap(),
        ],
        &env,
    );
    assert_eq!(out.code, 3, "{}", out.stderr);
    c.kill_all();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn client_exit_statuses_tell_bad_usage_from_an_unavailable_cluster() {
    // Bad usage: 2, with a message, never a panic.
    let usage: &[(&[&str], &str)] = &[
        (&["get", "x"], "--peers"),
        (&["--peers", "127.0.0.1:1"], "subcommand"),
        (&["--peers", "127.0.0.1:1", "frobnicate"], "frobnicate"),
        (
            &["--peers", "no-such-host:x", "get", "x"],
            "bad peer address",
        ),
        (
            &["--peers", "127.0.0.1:1", "get", "x", "--timeout", "abc"],
            "abc",
        ),
        (
            &["--peers", "127.0.0.1:1", "get", "x", "--timeout", "0"],
            "--timeout",
        ),
        (
            &[
                "--peers",
                "127.0.0.1:1",
                "--key",
                "/no/such/key",
                "get",
                "x",
            ],
            "key file",
        ),
    ];
    for (args, says) in usage {
        let out = run(CLIENT, args, &[]);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(says), "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "{args:?}: {}", out.stderr);
    }
    let big = "v".repeat(wire::MAX_COMMAND_BYTES + 1);
    let out = run(CLIENT, &["--peers", "127.0.0.1:1", "put", "k", &big], &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("too large"), "{}", out.stderr);

    // Unavailable: 3. A bound socket that never answers stands in for a dead cluster.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let out = run(
        CLIENT,
        &["get", "x", "--peers", &addr, "--timeout", "1"],
        &[],
    );
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("timed out"), "{}", out.stderr);
    let out = run(CLIENT, &["status", "--peers", &addr, "--timeout", "1"], &[]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stdout.contains("unreachable"), "{}", out.stdout);
    // An empty RAFT_KEY is no key (not a missing value), so this too reaches the timeout.
    let out = run(
        CLIENT,
        &["get", "x", "--peers", &addr, "--timeout", "1"],
        &[("RAFT_KEY", "")],
    );
    assert_eq!(out.code, 3, "{}", out.stderr);

    // The statuses are documented where a user looks.
    let out = run(CLIENT, &["--help"], &[]);
    assert_eq!(out.code, 0);
    for line in [
        "Exit status:",
        "3  timeout or unavailable",
        "RAFT_PEERS",
        "Examples:",
    ] {
        assert!(
            out.stdout.contains(line),
            "help lacks {line:?}: {}",
            out.stdout
        );
    }
}

#[test]
fn every_tool_prints_shell_completions() {
    for (bin, name) in [(CLIENT, "client"), (CLUSTER, "cluster"), (BENCH, "bench")] {
        for shell in ["bash", "zsh", "fish"] {
            let out = run(bin, &["--completions", shell], &[]);
            assert_eq!(out.code, 0, "{name} {shell}: {}", out.stderr);
            assert!(out.stdout.contains(name), "{name} {shell}: {}", out.stdout);
        }
    }
    let out = run(CLIENT, &["--completions", "bash"], &[]);
    assert!(out.stdout.contains("--peers") && out.stdout.contains("status"));
    let out = run(CLIENT, &["--completions", "no-such-shell"], &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
}

/// A `cluster` process on `data` and the peers it printed, once it reported running; or its
/// stderr when it exited first.
fn start_cluster(data: &Path, extra: &[&str]) -> Result<(Child, String), String> {
    let mut child = Command::new(CLUSTER)
        .arg("--data")
        .arg(data)
        .args(extra)
        .env_remove("RAFT_PEERS")
        .env_remove("RAFT_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut peers = None;
    // cluster prints `running` within ~10 s of starting, or exits (closing stdout) on an error.
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(p) = line.strip_prefix("peers: ") {
            peers = Some(p.to_string());
        }
        if line.starts_with("running") {
            return Ok((child, peers.expect("peers printed before running")));
        }
    }
    let out = child.wait_with_output().unwrap();
    Err(String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Kills a `cluster` process and waits until its nodes (which exit when its pipes close) have
/// released their ports.
fn stop_cluster(mut child: Child, peers: &[SocketAddr]) {
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while check_ports_free(peers).is_err() {
        assert!(Instant::now() < deadline, "the nodes kept their ports");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn cluster_restarts_on_its_data_directory_with_the_data_intact() {
    let data = temp_dir("restart");
    let (child, peers) = start_cluster(&data, &[]).unwrap();
    let recorded = std::fs::read_to_string(data.join(PEERS_FILE)).unwrap();
    assert_eq!(recorded.trim(), peers);
    let env = [("RAFT_PEERS", peers.as_str())];
    let out = run(CLIENT, &["put", "kept", "yes", "--timeout", "20"], &env);
    assert_eq!(out.code, 0, "{}", out.stderr);

    // While it runs, a second start on the same directory says which port is busy.
    let err = start_cluster(&data, &[]).unwrap_err();
    assert!(err.contains("is not free"), "{err}");
    let addrs = wire::parse_peers(&peers).unwrap();
    stop_cluster(child, &addrs);

    // Started again: the same addresses, so the same cluster and the same data.
    let (child, again) = start_cluster(&data, &[]).unwrap();
    assert_eq!(again, peers);
    let out = run(CLIENT, &["get", "kept", "--timeout", "20"], &env);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "yes\n"),
        "{}",
        out.stderr
    );
    stop_cluster(child, &addrs);

    // What disagrees with the recorded addresses is refused before any node starts.
    let err = start_cluster(&data, &["--nodes", "5"]).unwrap_err();
    assert!(err.contains("records 3 nodes"), "{err}");
    let err = start_cluster(&data, &["--base-port", "1"]).unwrap_err();
    assert!(err.contains("--base-port 1"), "{err}");
    std::fs::write(data.join(PEERS_FILE), "not an address\n").unwrap();
    let err = start_cluster(&data, &[]).unwrap_err();
    assert!(err.contains("malformed"), "{err}");
    std::fs::remove_file(data.join(PEERS_FILE)).unwrap();
    let err = start_cluster(&data, &[]).unwrap_err();
    assert!(err.contains("no peers file"), "{err}");
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn cluster_base_port_fixes_the_addresses() {
    // A free run of 3 ports: bind a free one, release it, and hope its next two are free too;
    // try a few so a busy neighbour does not fail the test.
    let data = temp_dir("base-port");
    let mut last_err = String::new();
    for _ in 0..5 {
        let base = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if base > u16::MAX - 3 {
            continue;
        }
        let _ = std::fs::remove_dir_all(&data);
        match start_cluster(&data, &["--base-port", &base.to_string()]) {
            Ok((child, peers)) => {
                let want: Vec<String> = (0..3).map(|i| format!("127.0.0.1:{}", base + i)).collect();
                assert_eq!(peers, want.join(","));
                stop_cluster(child, &wire::parse_peers(&peers).unwrap());
                let _ = std::fs::remove_dir_all(&data);
                return;
            }
            Err(e) => last_err = e,
        }
    }
    panic!("no run of 3 free ports: {last_err}");
}

#[test]
fn bench_json_reports_the_run() {
    let out = run(
        BENCH,
        &[
            "--clients",
            "8",
            "--seconds",
            "1",
            "--json",
            "--snapshot-after",
            "0",
        ],
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["clients"], 8);
    assert_eq!(v["nodes"], 3);
    let ops = v["ops"].as_u64().unwrap();
    assert!(ops > 0, "{v}");
    let ops_per_s = v["ops_per_s"].as_f64().unwrap();
    let elapsed = v["elapsed_s"].as_f64().unwrap();
    assert!((ops_per_s * elapsed - ops as f64).abs() < 1.0, "{v}");
    let lat = &v["latency_us"];
    let at = |p: &str| lat[p].as_u64().unwrap_or_else(|| panic!("no {p}: {v}"));
    assert!(at("min") >= 1 && at("min") <= at("p50"), "{v}");
    assert!(at("p50") <= at("p90") && at("p90") <= at("p99"), "{v}");
    assert!(at("p99") <= at("p999") && at("p999") <= at("max"), "{v}");
    assert!(v["errors"].is_u64(), "{v}");

    // The clients' bound is 1024; past it is bad usage.
    let out = run(BENCH, &["--clients", "1025"], &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
}

/// The "done when": a thousand clients (etcd's `check perf --load=xl`) run, each with
/// its own socket, and every one of them ends without an error.
#[test]
fn bench_runs_a_thousand_clients() {
    let out = run(
        BENCH,
        &["--clients", "1000", "--seconds", "1", "--json"],
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["clients"], 1000);
    assert!(v["ops"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["errors"], 0, "{v}\n{}", out.stderr);
}

/// Writes a key file private to its owner (the binaries refuse one that others may read).
fn write_key(path: &std::path::Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// `bench` with the keys split: its nodes get `--peer-key` and `--client-key`, its clients the
/// client key, and every put completes; the client key alone cannot start nodes.
#[test]
fn bench_runs_with_split_keys() {
    let dir = temp_dir("bench-keys");
    let (peer, client) = (dir.join("peer.key"), dir.join("client.key"));
    write_key(&peer, "peer-secret-peer-secret-peer-secret!!");
    write_key(&client, "client-secret-client-secret-client!!");
    let (p, c) = (peer.to_str().unwrap(), client.to_str().unwrap());
    let args = [
        "--clients",
        "4",
        "--seconds",
        "1",
        "--json",
        "--peer-key",
        p,
        "--client-key",
        c,
    ];
    let out = run(BENCH, &args, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert!(v["ops"].as_u64().unwrap() > 0 && v["errors"] == 0, "{v}");
    let out = run(BENCH, &["--seconds", "1", "--client-key", c], &[]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("need --peer-key too"), "{}", out.stderr);
}

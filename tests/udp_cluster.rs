//! Fault tests of the real deployment: node processes on 127.0.0.1 talking UDP, driven through
//! the `node` and `client` binaries. Every wait is a bounded poll, generous for a loaded machine.

use raft_checked::net::client::query_status;
use raft_checked::net::cluster::{peers_string, LocalCluster};
use raft_checked::net::storage::{DurableStorage, META_FILE};
use raft_checked::net::wire::{self, Body, Envelope, Key, NodeStatus};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const NODE: &str = env!("CARGO_BIN_EXE_node");
const CLIENT: &str = env!("CARGO_BIN_EXE_client");

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("raft-udp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn cluster(name: &str, key: Option<PathBuf>) -> LocalCluster {
    let mut c = LocalCluster::new(PathBuf::from(NODE), 3, &temp_dir(name), key).unwrap();
    c.quiet = true;
    c.start_all().unwrap();
    c
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn client(peers: &[SocketAddr], key: Option<&Path>, timeout: u32, args: &[&str]) -> Out {
    let mut cmd = Command::new(CLIENT);
    cmd.arg("--peers")
        .arg(peers_string(peers))
        .arg("--timeout")
        .arg(timeout.to_string());
    if let Some(k) = key {
        cmd.arg("--key").arg(k);
    }
    let out = cmd.args(args).output().unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn put(c: &LocalCluster, k: &str, v: &str) {
    let out = client(&c.peers, c.key.as_deref(), 20, &["put", k, v]);
    assert_eq!(out.code, 0, "put {k}={v} failed: {}", out.stderr);
}

fn get(c: &LocalCluster, k: &str) -> Option<String> {
    let out = client(&c.peers, c.key.as_deref(), 20, &["get", k]);
    match out.code {
        0 => Some(out.stdout.trim_end_matches('\n').to_string()),
        1 => None,
        _ => panic!("get {k} failed: {}", out.stderr),
    }
}

fn statuses(c: &LocalCluster, key: Option<&Key>) -> Vec<Option<NodeStatus>> {
    query_status(&c.peers, key, Duration::from_millis(500)).unwrap()
}

/// Polls until `f` holds, panicking with `what` after `secs`.
fn wait_until<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The id of the one leader of the highest term among the reachable nodes.
fn wait_leader(c: &LocalCluster, key: Option<&Key>, excluding: Option<usize>) -> usize {
    wait_until(20, "a leader", || {
        let st = statuses(c, key);
        let top = st.iter().flatten().map(|s| s.term).max()?;
        let leaders: Vec<_> = st
            .iter()
            .flatten()
            .filter(|s| s.role == "leader" && s.term == top)
            .map(|s| s.id as usize)
            .collect();
        match leaders[..] {
            [l] if Some(l) != excluding => Some(l),
            _ => None,
        }
    })
}

#[test]
fn leader_crash_restart_and_full_restart_lose_nothing() {
    let mut c = cluster("faults", None);
    let leader = wait_leader(&c, None, None);

    // The status query answers for every node, in JSON.
    let out = client(&c.peers, None, 5, &["status", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let arr = json.as_array().unwrap();
    assert_eq!(arr.len(), 3);
    for (i, node) in arr.iter().enumerate() {
        assert_eq!(node["id"], i);
        for field in [
            "role",
            "term",
            "leader",
            "commit_index",
            "last_applied",
            "log_len",
        ] {
            assert!(node.get(field).is_some(), "status lacks {field}: {node}");
        }
    }

    let mut acked = Vec::new();
    for i in 0..5 {
        let (k, v) = (format!("k{i}"), format!("v{i}"));
        put(&c, &k, &v);
        acked.push((k, v));
    }
    assert_eq!(get(&c, "absent"), None);
    for (k, v) in &acked {
        assert_eq!(get(&c, k).as_deref(), Some(v.as_str()));
    }

    // SIGKILL the leader: the others elect a new one and every acknowledged put survives.
    c.kill(leader);
    let new_leader = wait_leader(&c, None, Some(leader));
    assert_ne!(new_leader, leader);
    for (k, v) in &acked {
        assert_eq!(
            get(&c, k).as_deref(),
            Some(v.as_str()),
            "lost {k} after leader crash"
        );
    }
    for i in 5..8 {
        let (k, v) = (format!("k{i}"), format!("v{i}"));
        put(&c, &k, &v);
        acked.push((k, v));
    }
    put(&c, "k0", "overwritten");
    acked[0].1 = "overwritten".into();

    // Restart it: it catches up with the leader's commit index.
    c.start(leader).unwrap();
    wait_until(20, "the restarted node to catch up", || {
        let st = statuses(&c, None);
        let target = st.iter().flatten().map(|s| s.commit_index).max()?;
        let me = st[leader].as_ref()?;
        (me.last_applied >= target && me.log_len >= target).then_some(())
    });

    // Kill every node, restart them all: nothing acknowledged is lost.
    c.kill_all();
    c.start_all().unwrap();
    wait_leader(&c, None, None);
    for (k, v) in &acked {
        assert_eq!(
            get(&c, k).as_deref(),
            Some(v.as_str()),
            "lost {k} after full restart"
        );
    }
}

fn spawn_node(c: &LocalCluster, i: usize) -> std::process::Child {
    spawn_node_with(c, i, &[])
}

fn spawn_node_with(c: &LocalCluster, i: usize, args: &[&str]) -> std::process::Child {
    Command::new(NODE)
        .args(args)
        .arg("--id")
        .arg(i.to_string())
        .arg("--peers")
        .arg(peers_string(&c.peers))
        .arg("--data")
        .arg(c.data_dir(i))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn read_stderr(child: &mut std::process::Child) -> String {
    let mut stderr = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    stderr
}

fn start_node_expecting_failure(c: &LocalCluster, i: usize) -> (i32, String) {
    start_node_expecting_failure_with(c, i, &[])
}

fn start_node_expecting_failure_with(c: &LocalCluster, i: usize, args: &[&str]) -> (i32, String) {
    let mut child = spawn_node_with(c, i, args);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("node {i} started despite a damaged state file");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status.code().unwrap_or(-1), read_stderr(&mut child))
}

/// The log file node `i`'s meta file names (read while the node is down).
/// Cuts a log file's last record off, exactly at its start: what looks like a shorter log (or,
/// when the log is its checkpoint record alone, cuts that in half).
fn cut_last_record(log: &Path) {
    let bytes = std::fs::read(log).unwrap();
    // Header: magic, version, node, cluster, generation, SHA-256; a record: length,
    // its complement, SHA-256, payload.
    let head = 8 + 4 + 8 + 8 + 8 + 32;
    let (mut pos, mut last) = (head, head);
    while pos < bytes.len() {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        last = pos;
        pos += 4 + 4 + 32 + len;
    }
    assert_eq!(pos, bytes.len(), "a whole number of records");
    let cut = if last > head { last } else { (head + pos) / 2 };
    std::fs::write(log, &bytes[..cut]).unwrap();
}

fn log_file(c: &LocalCluster, i: usize) -> PathBuf {
    let mut st =
        DurableStorage::open(&c.data_dir(i), i as u64, wire::cluster_id(&c.peers)).unwrap();
    st.load().unwrap().expect("the node saved its state");
    st.log_path().unwrap().to_path_buf()
}

fn assert_refused(c: &LocalCluster, i: usize, file: &Path, why: &str) {
    let (code, stderr) = start_node_expecting_failure(c, i);
    assert_ne!(code, 0);
    assert!(
        stderr.contains(&file.display().to_string()),
        "message does not name the file: {stderr}"
    );
    assert!(stderr.contains(why), "{stderr}");
}

/// Flips one bit in the middle of `file`.
fn flip_middle(file: &Path) {
    let mut bytes = std::fs::read(file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(file, &bytes).unwrap();
}

/// Starts node `i` (its log read back by the caller) and waits until it serves again: repaired
/// from its peers, not recovering. Returns the node's process.
fn start_and_wait_repaired(c: &LocalCluster, i: usize) -> std::process::Child {
    let child = spawn_node(c, i);
    wait_until(20, "the damaged node to be repaired", || {
        let st = statuses(c, None);
        let s = st[i].clone()?;
        (!s.recovering && s.log_len >= 2).then_some(())
    });
    child
}

/// Finding 6 of the audit (Protocol-Aware Recovery): damaged state is never trusted nor taken for
/// a fresh start. A node whose log or state file is damaged keeps the files as `*.damaged`,
/// restarts recovering (it neither votes nor stands), and is repaired from its peers; every
/// acknowledged write stays readable. Another node's state file is refused, nothing moved.
#[test]
fn damaged_state_is_repaired_from_the_peers() {
    let mut c = cluster("corrupt", None);
    wait_leader(&c, None, None);
    put(&c, "a", "1");
    put(&c, "b", "2");
    c.kill_all();

    // Another node's state file: a configuration mistake, refused, and nothing is moved.
    let meta0 = c.data_dir(0).join(META_FILE);
    let own = std::fs::read(&meta0).unwrap();
    std::fs::copy(c.data_dir(1).join(META_FILE), &meta0).unwrap();
    assert_refused(&c, 0, &meta0, "belongs to server 1");
    assert!(!c.data_dir(0).join(format!("{META_FILE}.damaged")).exists());
    std::fs::write(&meta0, &own).unwrap();

    // One node at a time (a minority): a flipped bit in the middle of its log, its state file
    // cut short, a flipped bit in its state file, its log cut at a record boundary (finding 6:
    // acknowledged records cut away, which once passed for a torn append).
    type Damage = fn(&LocalCluster) -> (usize, PathBuf, &'static str);
    let damages: [Damage; 4] = [
        |c| {
            let log = log_file(c, 0);
            flip_middle(&log);
            (0, log, "checksum")
        },
        |c| {
            let meta = c.data_dir(1).join(META_FILE);
            let bytes = std::fs::read(&meta).unwrap();
            std::fs::write(&meta, &bytes[..bytes.len() - 7]).unwrap();
            (1, meta, "truncated")
        },
        |c| {
            let meta = c.data_dir(2).join(META_FILE);
            flip_middle(&meta);
            (2, meta, "unusable")
        },
        |c| {
            let log = log_file(c, 0);
            cut_last_record(&log);
            (0, log, "cut short")
        },
    ];
    for (round, damage) in damages.into_iter().enumerate() {
        let (i, file, why) = damage(&c);
        for j in (0..3).filter(|&j| j != i) {
            c.start(j).unwrap();
        }
        let mut child = start_and_wait_repaired(&c, i);
        put(&c, &format!("after{round}"), "x");
        assert_eq!(get(&c, "a").as_deref(), Some("1"));
        assert_eq!(get(&c, "b").as_deref(), Some("2"));
        c.kill_all();
        let _ = child.kill();
        let _ = child.wait();
        let stderr = read_stderr(&mut child);
        assert!(stderr.contains("storage damaged"), "{stderr}");
        assert!(stderr.contains(&file.display().to_string()), "{stderr}");
        assert!(stderr.contains(why), "{stderr}");
        assert!(stderr.contains("recovered: its log matches"), "{stderr}");
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(file.with_file_name(format!("{name}.damaged")).exists());
    }

    // A torn final log record (an append whose fsync never returned, so no sync mark covers
    // it: the first bytes of a record header) is cut off, and the node starts and answers, not
    // recovering.
    let log2 = log_file(&c, 2);
    let mut bytes = std::fs::read(&log2).unwrap();
    bytes.extend_from_slice(&[200, 0, 0, 0, !200, 255, 255]);
    std::fs::write(&log2, &bytes).unwrap();
    let mut child = spawn_node(&c, 2);
    let deadline = Instant::now() + Duration::from_secs(10);
    let up = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Err(format!("exited: {s}"));
        }
        let st = query_status(&c.peers, None, Duration::from_millis(300));
        if let Some(s) = st.ok().and_then(|st| st[2].clone()) {
            break Ok(s);
        }
        if Instant::now() > deadline {
            break Err("no status answer within 10 s".to_string());
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let stderr = read_stderr(&mut child);
    assert!(
        up.as_ref().is_ok_and(|s| !s.recovering),
        "node 2 did not come up ({up:?}): {stderr}"
    );
    assert!(stderr.contains("torn"), "{stderr}");
    assert!(stderr.contains(&log2.display().to_string()), "{stderr}");
}

#[test]
fn bad_datagrams_are_dropped_and_counted() {
    let dir = temp_dir("keyed-key");
    let key_file = dir.join("key");
    write_key(&key_file, "a-very-secret-cluster-key-0123456789\n");
    let key = Key::from_file(&key_file).unwrap();
    let c = cluster("keyed", Some(key_file.clone()));
    let leader = wait_leader(&c, Some(&key), None);
    put(&c, "x", "1");

    let target = c.peers[leader];
    let cid = wire::cluster_id(&c.peers);
    let env = |cluster| Envelope {
        cluster,
        from: 1_234_567,
        body: Body::StatusRequest { nonce: 1 },
    };
    let good = wire::encode(&env(cid), Some(&key)).unwrap();
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let send = |b: &[u8]| {
        s.send_to(b, target).unwrap();
    };
    send(b"garbage that is not a datagram");
    send(&[]);
    send(&good[..good.len() / 2]); // truncated: the MAC no longer checks
    send(
        &wire::encode(
            &env(cid),
            Some(&Key::from_bytes(b"some-other-key-9876543210")),
        )
        .unwrap(),
    );
    send(&wire::encode(&env(cid), None).unwrap()); // unsigned
    send(&wire::encode(&env(cid ^ 1), Some(&key)).unwrap()); // another cluster's
    let mut v9 = good.clone();
    v9[3] = 9;
    send(&v9);
    send(&vec![b'R'; 61 * 1024]);

    let st = wait_until(10, "the drops to be counted", || {
        let st = statuses(&c, Some(&key));
        let s = st[leader].clone()?.counters;
        (s.malformed >= 2 && s.bad_mac >= 3 && s.wrong_cluster >= 1 && s.wrong_version >= 1)
            .then_some(s)
    });
    assert!(st.oversize >= 1, "{st:?}");
    // The same numbers through the client's status --json.
    let out = client(&c.peers, Some(&key_file), 5, &["status", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(json[leader]["drops"]["bad_mac"].as_u64().unwrap() >= 3);
    assert_eq!(json[leader]["role"], "leader");

    // Still serving with the key; a keyless client is ignored and times out (exit 3).
    assert_eq!(get(&c, "x").as_deref(), Some("1"));
    let out = client(&c.peers, None, 1, &["get", "x"]);
    assert_eq!(out.code, 3, "keyless client got an answer: {}", out.stdout);
    assert!(out.stderr.contains("timed out"), "{}", out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- A fault-injecting UDP proxy and a linearizability check of a recorded history. ----

mod proxy {
    use raft_checked::net::driver::Rng;
    use std::cmp::Reverse;
    use std::collections::{BinaryHeap, HashMap};
    use std::net::{SocketAddr, UdpSocket};
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
    use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
    use std::sync::{Arc, Mutex};
    use std::thread::JoinHandle;
    use std::time::{Duration, Instant};

    #[derive(Clone, Copy)]
    pub struct Faults {
        pub drop: f64,
        pub duplicate: f64,
        pub max_delay: Duration,
        /// Faults only between servers: clients' datagrams pass untouched.
        pub servers_only: bool,
    }

    struct Delayed {
        at: Instant,
        seq: u64,
        socket: Arc<UdpSocket>,
        bytes: Vec<u8>,
        to: SocketAddr,
    }
    impl PartialEq for Delayed {
        fn eq(&self, o: &Self) -> bool {
            (self.at, self.seq) == (o.at, o.seq)
        }
    }
    impl Eq for Delayed {}
    impl PartialOrd for Delayed {
        fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(o))
        }
    }
    impl Ord for Delayed {
        fn cmp(&self, o: &Self) -> std::cmp::Ordering {
            (self.at, self.seq).cmp(&(o.at, o.seq))
        }
    }

    /// Forwards datagrams with loss, duplication and random delay (hence reordering).
    #[derive(Clone)]
    struct Link {
        faults: Faults,
        rng: Arc<Mutex<Rng>>,
        seq: Arc<AtomicU64>,
        tx: Sender<Delayed>,
        pub stats: Arc<[AtomicU64; 4]>,
    }

    impl Link {
        fn forward(&self, socket: &Arc<UdpSocket>, bytes: &[u8], to: SocketAddr, faulty: bool) {
            if !faulty {
                self.stats[2].fetch_add(1, Ordering::Relaxed);
                let _ = socket.send_to(bytes, to);
                return;
            }
            let (r1, r2, d1, d2) = {
                let mut rng = self.rng.lock().unwrap();
                let unit = |r: &mut Rng| (r.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                let range = Duration::ZERO..self.faults.max_delay;
                (
                    unit(&mut rng),
                    unit(&mut rng),
                    rng.duration_in(&range),
                    rng.duration_in(&range),
                )
            };
            if r1 < self.faults.drop {
                self.stats[0].fetch_add(1, Ordering::Relaxed);
                return;
            }
            let copies = if r2 < self.faults.duplicate {
                self.stats[1].fetch_add(1, Ordering::Relaxed);
                vec![d1, d2]
            } else {
                vec![d1]
            };
            self.stats[2].fetch_add(1, Ordering::Relaxed);
            for d in copies {
                let _ = self.tx.send(Delayed {
                    at: Instant::now() + d,
                    seq: self.seq.fetch_add(1, Ordering::Relaxed),
                    socket: socket.clone(),
                    bytes: bytes.to_vec(),
                    to,
                });
            }
        }
    }

    fn scheduler(rx: Receiver<Delayed>, stop: Arc<AtomicBool>) {
        let mut heap = BinaryHeap::new();
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            while heap
                .peek()
                .is_some_and(|Reverse(d): &Reverse<Delayed>| d.at <= now)
            {
                let Reverse(d) = heap.pop().unwrap();
                let _ = d.socket.send_to(&d.bytes, d.to);
            }
            let wait = heap
                .peek()
                .map_or(Duration::from_millis(20), |Reverse(d)| {
                    d.at.saturating_duration_since(now)
                })
                .min(Duration::from_millis(20));
            match rx.recv_timeout(wait) {
                Ok(d) => heap.push(Reverse(d)),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
    }

    /// Proxies `front` (the address everyone uses) to `back` (where the node really is). Each
    /// distinct source gets its own upstream socket, so answers find their way back.
    ///
    /// While `isolated` names a server, datagrams between it and the other servers are dropped
    /// both ways (servers send from their bind address, so the source tells who sent); clients
    /// still reach every server.
    fn proxy(
        me: usize,
        front: Arc<UdpSocket>,
        backs: Arc<Vec<SocketAddr>>,
        isolated: Arc<AtomicUsize>,
        link: Link,
        stop: Arc<AtomicBool>,
    ) {
        let back = backs[me];
        let mut upstreams: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
        let mut buf = vec![0u8; 65_536];
        front
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        while !stop.load(Ordering::Relaxed) {
            let Ok((len, src)) = front.recv_from(&mut buf) else {
                continue;
            };
            let cut = isolated.load(Ordering::Relaxed);
            let faulty = !link.faults.servers_only || backs.contains(&src);
            if let Some(sender) = backs.iter().position(|&b| b == src) {
                if cut == me || cut == sender {
                    link.stats[3].fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
            let up = upstreams.entry(src).or_insert_with(|| {
                let up = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
                up.set_read_timeout(Some(Duration::from_millis(20)))
                    .unwrap();
                let (up2, front2, link2, stop2) =
                    (up.clone(), front.clone(), link.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 65_536];
                    while !stop2.load(Ordering::Relaxed) {
                        if let Ok((len, _)) = up2.recv_from(&mut buf) {
                            link2.forward(&front2, &buf[..len], src, faulty);
                        }
                    }
                });
                up
            });
            link.forward(up, &buf[..len], back, faulty);
        }
    }

    pub struct Proxies {
        stop: Arc<AtomicBool>,
        threads: Vec<JoinHandle<()>>,
        /// dropped, duplicated, forwarded, cut by the partition
        pub stats: Arc<[AtomicU64; 4]>,
        isolated: Arc<AtomicUsize>,
    }

    impl Proxies {
        /// One proxy per (front, back) pair; pair `i` is server `i`.
        pub fn start(pairs: &[(SocketAddr, SocketAddr)], faults: Faults) -> Proxies {
            let stop = Arc::new(AtomicBool::new(false));
            let isolated = Arc::new(AtomicUsize::new(usize::MAX));
            let backs = Arc::new(pairs.iter().map(|p| p.1).collect::<Vec<_>>());
            let (tx, rx) = channel();
            let stats = Arc::new([
                AtomicU64::new(0),
                AtomicU64::new(0),
                AtomicU64::new(0),
                AtomicU64::new(0),
            ]);
            let link = Link {
                faults,
                rng: Arc::new(Mutex::new(Rng::seeded(42))),
                seq: Arc::new(AtomicU64::new(0)),
                tx,
                stats: stats.clone(),
            };
            let mut threads = Vec::new();
            let s = stop.clone();
            threads.push(std::thread::spawn(move || scheduler(rx, s)));
            for (me, &(front, _)) in pairs.iter().enumerate() {
                let front = Arc::new(UdpSocket::bind(front).unwrap());
                let (link, s) = (link.clone(), stop.clone());
                let (backs, isolated) = (backs.clone(), isolated.clone());
                threads.push(std::thread::spawn(move || {
                    proxy(me, front, backs, isolated, link, s)
                }));
            }
            Proxies {
                stop,
                threads,
                stats,
                isolated,
            }
        }

        /// Cuts server `i` off from the other servers (`None` heals the partition).
        pub fn isolate(&self, i: Option<usize>) {
            self.isolated
                .store(i.unwrap_or(usize::MAX), Ordering::Relaxed);
        }
    }

    impl Drop for Proxies {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            for t in self.threads.drain(..) {
                let _ = t.join();
            }
        }
    }
}

#[derive(Debug)]
enum Event {
    Invoke(u64, Op),
    Return(u64, OpResult),
}

use raft_checked::model::ghost::KvSpec;
use raft_checked::net::client::{ClientOptions, Session};
use raft_checked::protocol::types::{Op, OpResult};
use raft_checked::sim::linearizability::HistoryOp;
use stateright::semantics::{ConsistencyTester, LinearizabilityTester};
use std::sync::{Arc, Mutex};

/// Client `t`'s `count` operations on two shared keys: puts, appends and gets in turn, each
/// value unique, so a history has one linearization at most.
fn two_key_ops(t: u64, count: u64) -> Vec<Op> {
    (0..count)
        .map(|i| {
            let key = ["a", "b"][((t + i) % 2) as usize].to_string();
            let value = format!("{t}.{i};");
            match (t + i) % 3 {
                0 => Op::Put { key, value },
                1 => Op::Append { key, value },
                _ => Op::Get { key },
            }
        })
        .collect()
}

/// A 3-node cluster whose nodes talk to each other only through fault-injecting proxies:
/// `fronts` are the addresses peers and clients use, each forwarded to the node's real socket.
fn proxied_cluster(
    name: &str,
    faults: proxy::Faults,
    args: &[&str],
) -> (LocalCluster, proxy::Proxies, Vec<std::net::SocketAddr>) {
    let fronts = raft_checked::net::cluster::free_local_addrs(3).unwrap();
    let backs = raft_checked::net::cluster::free_local_addrs(3).unwrap();
    let pairs: Vec<_> = fronts.iter().copied().zip(backs.iter().copied()).collect();
    let proxies = proxy::Proxies::start(&pairs, faults);
    let mut c = LocalCluster::new(PathBuf::from(NODE), 3, &temp_dir(name), None).unwrap();
    c.quiet = true;
    c.peers = fronts.clone();
    c.binds = Some(backs);
    c.extra_args = vec!["--no-source-check".into()];
    c.extra_args.extend(args.iter().map(|a| a.to_string()));
    c.start_all().unwrap();
    (c, proxies, fronts)
}

#[test]
fn lossy_duplicating_reordering_network_with_leader_crash_stays_linearizable() {
    use proxy::Faults;
    use std::sync::atomic::Ordering;
    let faults = Faults {
        drop: 0.1,
        duplicate: 0.1,
        max_delay: Duration::from_millis(15),
        servers_only: false,
    };
    let (mut c, proxies, fronts) = proxied_cluster("lossy", faults, &[]);
    let leader = wait_leader(&c, None, None);

    let history = Arc::new(Mutex::new(Vec::<Event>::new()));
    let threads: Vec<_> = (0..3u64)
        .map(|t| {
            let (peers, history) = (fronts.clone(), history.clone());
            std::thread::spawn(move || {
                let ops = two_key_ops(t, 12);
                let opts = ClientOptions::new(peers, None, Duration::from_secs(40));
                let mut session = Session::new(opts).unwrap();
                history
                    .lock()
                    .unwrap()
                    .push(Event::Invoke(t, ops[0].clone()));
                let next_ops = ops.clone();
                session
                    .run_until(ops, None, |i, result, _| {
                        let mut h = history.lock().unwrap();
                        h.push(Event::Return(t, result));
                        if let Some(op) = next_ops.get(i + 1) {
                            h.push(Event::Invoke(t, op.clone()));
                        }
                        true
                    })
                    .unwrap();
            })
        })
        .collect();

    // Crash the leader mid-run, then bring it back.
    std::thread::sleep(Duration::from_millis(500));
    c.kill(leader);
    std::thread::sleep(Duration::from_millis(1500));
    c.start(leader).unwrap();
    for t in threads {
        t.join().unwrap();
    }

    let history = history.lock().unwrap();
    let mut tester = LinearizabilityTester::new(KvSpec::default());
    for e in history.iter() {
        match e {
            Event::Invoke(t, op) => tester.on_invoke(*t, op.clone()).unwrap(),
            Event::Return(t, r) => tester.on_return(*t, r.clone()).unwrap(),
        };
    }
    assert_eq!(tester.len(), 36);
    assert!(tester.is_consistent(), "not linearizable: {history:?}");
    let dropped = proxies.stats[0].load(Ordering::Relaxed);
    let duplicated = proxies.stats[1].load(Ordering::Relaxed);
    assert!(
        dropped > 0 && duplicated > 0,
        "the proxy injected no faults"
    );
}

/// Damages node `i`'s storage (it is down) in one of three ways, by `round`: its log cut at a
/// record boundary (its last save lost whole), its state file deleted, a flipped bit in the
/// middle of its log.
fn damage_storage(c: &LocalCluster, i: usize, round: usize) {
    let meta = c.data_dir(i).join(META_FILE);
    match round % 3 {
        0 => cut_last_record(&log_file(c, i)),
        1 => std::fs::remove_file(&meta).unwrap(),
        _ => flip_middle(&log_file(c, i)),
    }
}

/// Sends `signal` (`STOP`, `CONT`) to node `i`'s process.
fn signal(c: &LocalCluster, i: usize, signal: &str) {
    let pid = c.children[i].as_ref().expect("node is running").id();
    let ok = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{signal} {pid}");
}

/// The nemesis of issue #13: on a lossy, duplicating, reordering network, three clients write
/// and read two keys while, one node at a time (a minority), a node is killed with SIGKILL and
/// its storage damaged (its log cut at a record boundary, its state file deleted, a flipped bit
/// in its log) before
/// it restarts, a node is paused with SIGSTOP, and a node is cut off by a partition. The client
/// history, final reads included, must be linearizable (so no acknowledged write was lost), and
/// every damaged node must have been repaired.
#[test]
fn nemesis_with_disk_damage_on_a_minority_stays_linearizable() {
    use proxy::Faults;
    let faults = Faults {
        drop: 0.05,
        duplicate: 0.05,
        max_delay: Duration::from_millis(10),
        servers_only: false,
    };
    let (mut c, proxies, fronts) = proxied_cluster("nemesis", faults, &["--snapshot-after", "16"]);
    wait_leader(&c, None, None);

    // Each operation as its client saw it, timed from here (for the per-key checker).
    let start = Instant::now();
    let history = Arc::new(Mutex::new(Vec::<HistoryOp>::new()));
    let invoke = move |client: usize, op: Op| HistoryOp {
        client,
        op,
        call: start.elapsed(),
        ret: None,
    };
    let threads: Vec<_> = (0..3u64)
        .map(|t| {
            let (peers, history) = (fronts.clone(), history.clone());
            std::thread::spawn(move || {
                let ops = two_key_ops(t, 16);
                let opts = ClientOptions::new(peers, None, Duration::from_secs(60));
                let mut session = Session::new(opts).unwrap();
                let mut mine = vec![invoke(t as usize, ops[0].clone())];
                let next_ops = ops.clone();
                session
                    .run_until(ops, None, |i, result, _| {
                        mine[i].ret = Some((start.elapsed(), result));
                        std::thread::sleep(Duration::from_millis(400));
                        if let Some(op) = next_ops.get(i + 1) {
                            mine.push(invoke(t as usize, op.clone()));
                        }
                        true
                    })
                    .unwrap();
                history.lock().unwrap().extend(mine);
            })
        })
        .collect();

    // The nemesis, while the clients run: one fault at a time, on one node at a time.
    let mut round = 0;
    let mut repaired = 0;
    while threads.iter().any(|t| !t.is_finished()) && round < 9 {
        let i = round % 3;
        match round % 3 {
            0 => {
                c.kill(i);
                damage_storage(&c, i, round / 3);
                c.start(i).unwrap();
                wait_until(30, "the damaged node to be repaired", || {
                    let s = statuses(&c, None)[i].clone()?;
                    (!s.recovering).then_some(())
                });
                repaired += 1;
            }
            1 => {
                signal(&c, i, "STOP");
                std::thread::sleep(Duration::from_millis(1200));
                signal(&c, i, "CONT");
            }
            _ => {
                proxies.isolate(Some(i));
                std::thread::sleep(Duration::from_millis(1200));
                proxies.isolate(None);
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        round += 1;
    }
    for t in threads {
        t.join().unwrap();
    }
    assert!(
        repaired >= 2,
        "the clients finished before the nemesis damaged two nodes"
    );

    // Final reads: every acknowledged write must show.
    let opts = ClientOptions::new(fronts.clone(), None, Duration::from_secs(60));
    let mut session = Session::new(opts).unwrap();
    for key in ["a", "b"] {
        let mut read = invoke(9, Op::Get { key: key.into() });
        session
            .run_until(vec![read.op.clone()], None, |_, result, _| {
                read.ret = Some((start.elapsed(), result));
                true
            })
            .unwrap();
        history.lock().unwrap().push(read);
    }
    let history = history.lock().unwrap();
    assert_eq!(history.len(), 50);
    assert!(history.iter().all(|h| h.ret.is_some()));
    let verdict = raft_checked::sim::linearizability::check(&history);
    assert!(verdict.is_none(), "{verdict:?}: {history:#?}");
}

/// Sends one put straight to server `to` (no redirects, no retries) and collects every answer
/// for `listen`: whether it was acknowledged as done.
fn put_only_to(peers: &[SocketAddr], to: usize, k: &str, v: &str, listen: Duration) -> bool {
    use raft_checked::protocol::types::{ClientReply, Command, Msg};
    let session = raft_checked::net::client::new_session(to as u64 + 99);
    let env = Envelope {
        cluster: wire::cluster_id(peers),
        from: session,
        body: Body::Raft(Msg::ClientRequest(Command {
            client: session,
            request_id: 1,
            op: Op::Put {
                key: k.into(),
                value: v.into(),
            },
        })),
    };
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.send_to(&wire::encode(&env, None).unwrap(), peers[to])
        .unwrap();
    let deadline = Instant::now() + listen;
    let mut buf = vec![0u8; 65_536];
    let mut done = false;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        let Ok((len, _)) = s.recv_from(&mut buf) else {
            continue;
        };
        if let Ok(Envelope {
            body:
                Body::Raft(Msg::ClientResponse {
                    reply: ClientReply::Done(_),
                    ..
                }),
            ..
        }) = wire::decode(&buf[..len], None, env.cluster)
        {
            done = true;
        }
    }
    done
}

#[test]
fn partitioned_leader_cannot_commit_and_the_majority_goes_on() {
    use proxy::Faults;
    use std::sync::atomic::Ordering;
    let faults = Faults {
        drop: 0.0,
        duplicate: 0.0,
        max_delay: Duration::ZERO,
        servers_only: false,
    };
    let (c, proxies, fronts) = proxied_cluster("partition", faults, &[]);
    let old = wait_leader(&c, None, None);
    let mut acked = Vec::new();
    for i in 0..3 {
        let (k, v) = (format!("before{i}"), format!("b{i}"));
        put(&c, &k, &v);
        acked.push((k, v));
    }

    // Cut the leader off from the other two: they elect a new leader in a higher term.
    proxies.isolate(Some(old));
    let new = wait_leader(&c, None, Some(old));
    assert_ne!(new, old);

    // The isolated old leader still takes a put into its log, but cannot commit it: no answer.
    assert!(
        !put_only_to(&fronts, old, "minority", "lost", Duration::from_secs(2)),
        "the isolated minority acknowledged a put"
    );

    // The majority goes on committing (a client trying the old leader first retries elsewhere).
    for i in 0..3 {
        let (k, v) = (format!("during{i}"), format!("d{i}"));
        put(&c, &k, &v);
        acked.push((k, v));
    }
    let st = statuses(&c, None);
    let (minority, majority) = (st[old].clone().unwrap(), st[new].clone().unwrap());
    assert!(
        majority.term > minority.term,
        "{majority:?} vs {minority:?}"
    );
    assert!(
        minority.commit_index < majority.commit_index,
        "the minority committed alongside the majority: {minority:?} vs {majority:?}"
    );
    assert!(minority.log_len > minority.commit_index, "{minority:?}");
    assert!(
        proxies.stats[3].load(Ordering::Relaxed) > 0,
        "nothing was cut"
    );

    // Heal: the old leader steps down, drops its uncommitted entries and catches up.
    proxies.isolate(None);
    wait_until(20, "the old leader to catch up", || {
        let st = statuses(&c, None);
        let top = st.iter().flatten().map(|s| s.commit_index).max()?;
        let term = st.iter().flatten().map(|s| s.term).max()?;
        let me = st[old].as_ref()?;
        (me.role == "follower" && me.term == term && me.last_applied >= top).then_some(())
    });
    for (k, v) in &acked {
        assert_eq!(get(&c, k).as_deref(), Some(v.as_str()), "lost {k}");
    }
    assert_eq!(get(&c, "minority"), None, "an unacknowledged minority put");
    drop(c);
    drop(proxies);
}

/// A follower that missed compacted entries catches up through an InstallSnapshot too large for
/// one datagram: it travels in fragments, each MAC'd, and is reassembled on the follower.
#[test]
fn a_restarted_follower_catches_up_from_a_fragmented_snapshot() {
    use raft_checked::net::client::{ClientOptions, Session};
    use raft_checked::protocol::types::{Op, OpResult};
    let dir = temp_dir("snapshot");
    let key_file = dir.join("key");
    write_key(&key_file, "a-fragmented-snapshot-key-0123456789\n");
    let key = Key::from_file(&key_file).unwrap();
    let mut c =
        LocalCluster::new(PathBuf::from(NODE), 3, &dir.join("data"), Some(key_file)).unwrap();
    c.quiet = true;
    c.extra_args = vec!["--snapshot-after".into(), "5".into()];
    c.start_all().unwrap();
    let leader = wait_leader(&c, Some(&key), None);
    let follower = (leader + 1) % 3;
    c.kill(follower);

    // 40 puts of distinct keys with ~1.9 KiB values (commands are at most 2 KiB): the snapshot
    // of the map is ~77 KiB, more than one datagram.
    let acked: Vec<(String, String)> = (0..40)
        .map(|i| (format!("big{i}"), format!("{i:04}").repeat(475)))
        .collect();
    let peers = c.peers.clone();
    let session = |timeout| {
        Session::new(ClientOptions::new(
            peers.clone(),
            Some(key.clone()),
            timeout,
        ))
        .unwrap()
    };
    let ops = acked
        .iter()
        .map(|(k, v)| Op::Put {
            key: k.clone(),
            value: v.clone(),
        })
        .collect();
    let results = session(Duration::from_secs(15)).run(ops).unwrap();
    assert!(results.iter().all(|r| *r == OpResult::Written));

    let leader_status = wait_until(10, "the leader to compact", || {
        let st = statuses(&c, Some(&key));
        let l = st.iter().flatten().find(|s| s.role == "leader")?.clone();
        (l.snapshot_index > 0).then_some(l)
    });
    assert!(leader_status.commit_index >= 40);

    c.start(follower).unwrap();
    let caught_up = wait_until(15, "the restarted follower to catch up", || {
        let st = statuses(&c, Some(&key));
        let target = st.iter().flatten().map(|s| s.commit_index).max()?;
        let me = st[follower].as_ref()?;
        (me.last_applied >= target && me.commit_index >= target).then(|| me.clone())
    });
    assert!(caught_up.snapshot_index > 0, "{caught_up:?}");
    assert!(
        caught_up.counters.reassembled > 0,
        "{:?}",
        caught_up.counters
    );
    assert_eq!(caught_up.counters.bad_mac, 0);
    let sent = statuses(&c, Some(&key))
        .iter()
        .flatten()
        .map(|s| s.counters.fragmented_out)
        .sum::<u64>();
    assert!(sent > 0);

    // `status --json` shows the snapshot on the follower.
    let out = client(&c.peers, c.key.as_deref(), 5, &["status", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let snap = json[follower]["snapshot_index"].as_u64().unwrap();
    assert!(snap > 0, "{}", json[follower]);
    assert!(json[follower]["counters"]["reassembled"].as_u64().unwrap() > 0);

    // Every acknowledged put reads back.
    let gets: Vec<Op> = acked
        .iter()
        .map(|(k, _)| Op::Get { key: k.clone() })
        .collect();
    let values = session(Duration::from_secs(15)).run(gets.clone()).unwrap();
    for ((k, v), r) in acked.iter().zip(&values) {
        assert_eq!(*r, OpResult::Value(Some(v.clone())), "wrong value for {k}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writes a key file readable by its owner only: `node` refuses one that group or others may read.
fn write_key(path: &std::path::Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A value grown by appends past one datagram can still be read: the reply travels in fragments
/// and the client reassembles them (it used to refuse them, so such a value could be written but
/// never read).
#[test]
fn a_value_larger_than_a_datagram_reads_back_whole() {
    use raft_checked::net::client::{ClientOptions, Session};
    use raft_checked::protocol::types::{Op, OpResult};
    let c = cluster("large-value", None);
    wait_leader(&c, None, None);
    let piece = |i: usize| format!("{i:04}").repeat(475); // 1,900 bytes: a command fits 2 KiB
    let appends: Vec<Op> = (0..40)
        .map(|i| Op::Append {
            key: "long".into(),
            value: piece(i),
        })
        .collect();
    let mut session = Session::new(ClientOptions::new(
        c.peers.clone(),
        None,
        Duration::from_secs(20),
    ))
    .unwrap();
    let results = session.run(appends).unwrap();
    assert!(
        results.iter().all(|r| *r == OpResult::Written),
        "{results:?}"
    );
    let expected: String = (0..40).map(piece).collect();
    assert_eq!(expected.len(), 76_000);
    assert_eq!(get(&c, "long").as_deref(), Some(expected.as_str()));
}

/// `node` logs through `tracing`, filtered by `RUST_LOG`: the election it wins, as text or as
/// one JSON object per line (`--log-format json`); `RAFT_PEERS` stands in for `--peers`.
#[test]
fn node_logs_the_election_it_wins() {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let run = |format: &str, filter: &str| {
        let dir = temp_dir(&format!("log-{format}"));
        let mut child = std::process::Command::new(NODE)
            .args(["--id", "0", "--data"])
            .arg(dir.join("data"))
            .args(["--log-format", format])
            .args(["--initial-cluster-state", "new"])
            .env("RAFT_PEERS", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", filter)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        let _ = child.kill();
        let _ = child.wait();
        read_stderr(&mut child)
    };
    let text = run("text", "info");
    assert!(text.contains("election won: leader of term 1"), "{text}");
    assert!(
        text.contains("no saved state: starting as a new server"),
        "{text}"
    );
    let json = run("json", "info");
    let events: Vec<serde_json::Value> = json
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let won = events
        .iter()
        .find(|e| e["fields"]["message"] == "election won: leader of term 1")
        .unwrap_or_else(|| panic!("{json}"));
    assert_eq!(won["level"], "INFO");
    assert_eq!(won["fields"]["term"], 1);
    let quiet = run("text", "warn");
    assert!(!quiet.contains("election won"), "{quiet}");
}

/// The storage quota on real processes (issue #13, "bounded state"): with `--max-db-bytes
/// 64`, a put that would grow the keys and values past 64 bytes is refused with exit 5 and a
/// clear message, changes nothing on any node, and survives a restart of the whole cluster as
/// refused; reads, and a put that shrinks a value, still work.
#[test]
fn writes_past_the_storage_quota_are_refused_with_a_clear_error() {
    let mut c = LocalCluster::new(PathBuf::from(NODE), 3, &temp_dir("quota"), None).unwrap();
    c.quiet = true;
    c.extra_args = vec!["--max-db-bytes".into(), "64".into()];
    c.start_all().unwrap();
    let forty = "v".repeat(40);
    put(&c, "a", &forty);
    let out = client(&c.peers, None, 20, &["put", "b", &forty]);
    assert_eq!(out.code, 5, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("no space") && out.stderr.contains("quota of 64"),
        "{}",
        out.stderr
    );
    assert_eq!(get(&c, "b"), None);
    assert_eq!(get(&c, "a").as_deref(), Some(forty.as_str()));
    put(&c, "a", "short");
    put(&c, "b", &forty);
    c.kill_all();
    c.start_all().unwrap();
    assert_eq!(get(&c, "b").as_deref(), Some(forty.as_str()));
    let out = client(&c.peers, None, 20, &["append", "a", &forty]);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert_eq!(get(&c, "a").as_deref(), Some("short"));
    // Deleting frees the space: the refused append then fits.
    let out = client(&c.peers, None, 20, &["delete", "b"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(get(&c, "b"), None);
    let out = client(&c.peers, None, 20, &["append", "a", &forty]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

/// `check --validate-trace` on the traces of one real run.
fn validate(files: &[PathBuf]) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_check"))
        .arg("--validate-trace")
        .args(files)
        .output()
        .unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Real runs validated against the model (issue #12 item 7, as etcd raft validates its traces
/// against TLA+): three nodes record every handler they run (`node --trace`), the leader is
/// killed with SIGKILL and restarted (its trace goes on in the same file), and the merged
/// traces replay through the model's transitions with every always property holding. A trace
/// with a forged entry, or a restart that restored less than it had saved, is rejected with
/// the node, file and line; a file that is not a trace is bad input.
#[test]
fn a_real_run_with_a_crash_replays_through_the_model() {
    let dir = temp_dir("trace");
    let mut c = LocalCluster::new(PathBuf::from(NODE), 3, &dir.join("data"), None).unwrap();
    c.quiet = true;
    let pattern = dir.join("trace-{id}.jsonl");
    c.extra_args = vec!["--trace".into(), pattern.to_string_lossy().into_owned()];
    c.start_all().unwrap();
    for k in ["a", "b", "c"] {
        put(&c, k, &format!("v{k}"));
    }
    let leader = wait_leader(&c, None, None);
    c.kill(leader);
    put(&c, "d", "vd");
    c.start(leader).unwrap();
    put(&c, "e", "ve");
    assert_eq!(get(&c, "a").as_deref(), Some("va"));
    c.kill_all();
    let files: Vec<PathBuf> = (0..3)
        .map(|i| dir.join(format!("trace-{i}.jsonl")))
        .collect();
    let out = validate(&files);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.starts_with("valid: "), "{}", out.stdout);
    let restarted = std::fs::read_to_string(&files[leader]).unwrap();
    assert_eq!(restarted.matches("\"event\":\"start\"").count(), 2);

    // A forged entry: some follower "received" an entry nobody sent.
    let follower = (leader + 1) % 3;
    let text = std::fs::read_to_string(&files[follower]).unwrap();
    let (k, line) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains("\"Put\"") && l.contains("AppendEntries"))
        .expect("the follower received entries");
    let forged_line = line.replacen("\"value\":\"v", "\"value\":\"forged-v", 1);
    assert_ne!(forged_line, line);
    let forged = dir.join("forged.jsonl");
    std::fs::write(&forged, text.replacen(line, &forged_line, 1)).unwrap();
    let mut with_forged = files.clone();
    with_forged[follower] = forged;
    let out = validate(&with_forged);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains(&format!("forged.jsonl:{}", k + 1)) && out.stdout.contains("forged-v"),
        "{}",
        out.stdout
    );

    // A restart that came back with less than it had saved (a lost log record).
    let second = restarted
        .match_indices("\"event\":\"start\"")
        .nth(1)
        .unwrap()
        .0;
    let (before, after) = restarted.split_at(second);
    let lost = after.replacen("\"last_index\":", "\"last_index\":0,\"was\":", 1);
    let lost_file = dir.join("lost.jsonl");
    std::fs::write(&lost_file, format!("{before}{lost}")).unwrap();
    let mut with_lost = files.clone();
    with_lost[leader] = lost_file;
    let out = validate(&with_lost);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("durable state lost"), "{}", out.stdout);

    let junk = dir.join("junk.jsonl");
    std::fs::write(&junk, "not json\n").unwrap();
    let out = validate(&[junk]);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("not a trace event"), "{}", out.stderr);
    // Numbers no node could have received (the wire refuses them) are bad input, not a
    // handler's panic: a term of 2^64 - 1 in the follower's first AppendEntries.
    let huge_lines: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(j, l)| match j == k {
            true => {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["msg"]["AppendEntries"]["term"] = serde_json::json!(u64::MAX);
                v.to_string()
            }
            false => l.to_string(),
        })
        .collect();
    let huge = dir.join("huge.jsonl");
    std::fs::write(&huge, huge_lines.join("\n")).unwrap();
    let mut with_huge = files.clone();
    with_huge[follower] = huge;
    let out = validate(&with_huge);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("at or above 2^62"), "{}", out.stderr);
}

/// Separate trust for peers and clients (issue #13, item 2): with `--peer-key` and
/// `--client-key`, a client (which holds only the client key) puts and reads as usual, but a
/// server's message forged under the client key, here a RequestVote of term 2^40 that claims
/// to come from S0, is dropped by every node and counted (`client_key_as_peer`): no term moves.
/// The nodes run with `--no-source-check`, as behind a proxy, so that the key is the only
/// defence; the same datagram under the peer key does move the terms, which shows it is the
/// key that stops it.
#[test]
fn a_client_key_cannot_speak_for_a_server() {
    use raft_checked::protocol::types::Msg;
    let dir = temp_dir("two-keys");
    let (peer_file, client_file) = (dir.join("peer.key"), dir.join("client.key"));
    write_key(&peer_file, "peer-secret-peer-secret-peer-secret!!");
    write_key(&client_file, "client-secret-client-secret-client!!");
    let client_key = Key::from_file(&client_file).unwrap();
    let peer_key = Key::from_file(&peer_file).unwrap();
    let mut c = LocalCluster::new(PathBuf::from(NODE), 3, &dir.join("data"), None).unwrap();
    c.quiet = true;
    c.extra_args = vec![
        "--peer-key".into(),
        peer_file.to_string_lossy().into_owned(),
        "--client-key".into(),
        client_file.to_string_lossy().into_owned(),
        "--no-source-check".into(),
    ];
    c.start_all().unwrap();
    let put_ok = |k: &str| {
        let out = client(&c.peers, Some(&client_file), 20, &["put", k, "1"]);
        assert_eq!(out.code, 0, "put {k}: {}", out.stderr);
    };
    put_ok("a");
    let forged = |key: &Key| {
        let env = Envelope {
            cluster: wire::cluster_id(&c.peers),
            from: 0,
            body: Body::Raft(Msg::RequestVote {
                term: 1 << 40,
                last_log_index: 100,
                last_log_term: 1 << 40,
            }),
        };
        let bytes = wire::encode(&env, Some(key)).unwrap();
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        for p in &c.peers {
            s.send_to(&bytes, p).unwrap();
        }
    };
    let max_term = || {
        query_status(&c.peers, Some(&client_key), Duration::from_millis(500))
            .unwrap()
            .iter()
            .flatten()
            .map(|s| s.term)
            .max()
            .unwrap_or(0)
    };
    forged(&client_key);
    let refused = wait_until(10, "the forgery to be counted", || {
        let all = query_status(&c.peers, Some(&client_key), Duration::from_millis(500)).unwrap();
        all.iter()
            .all(|s| {
                s.as_ref()
                    .is_some_and(|s| s.counters.client_key_as_peer >= 1)
            })
            .then_some(all)
    });
    assert!(refused.iter().flatten().all(|s| s.term < 1 << 40));
    put_ok("b");
    assert!(max_term() < 1 << 40);
    forged(&peer_key);
    wait_until(10, "the peer key to be believed", || {
        (max_term() >= 1 << 40).then_some(())
    });
}

/// The audit's findings 1 and 2 (issue #13), on real processes, by a holder of the cluster's
/// one key forging server messages (the nodes run with `--no-source-check`, as behind a
/// proxy, so that nothing but the checks under test stands in the way):
/// 1. a RequestVote of term 2^64 - 1 is malformed (terms stop below 2^62): no term moves, and
///    puts go on;
/// 2. an AppendEntries reply claiming match index 2^64 - 1 is malformed, and one claiming 2^40
///    (in range, past the leader's log) is ignored: with both followers stopped (SIGSTOP) a
///    put is not acknowledged on it, and after the leader is killed every acknowledged put is
///    still there.
#[test]
fn forged_terms_and_acknowledgements_change_nothing() {
    use raft_checked::protocol::types::{AppendOutcome, Msg};
    let dir = temp_dir("forged");
    let key_file = dir.join("key");
    write_key(&key_file, "a-very-secret-cluster-key-0123456789\n");
    let key = Key::from_file(&key_file).unwrap();
    let mut c = LocalCluster::new(
        PathBuf::from(NODE),
        3,
        &dir.join("data"),
        Some(key_file.clone()),
    )
    .unwrap();
    c.quiet = true;
    c.extra_args = vec!["--no-source-check".into()];
    c.start_all().unwrap();
    let leader = wait_leader(&c, Some(&key), None);
    let put_ok = |k: &str| {
        let out = client(&c.peers, Some(&key_file), 20, &["put", k, "v"]);
        assert_eq!(out.code, 0, "put {k}: {}", out.stderr);
    };
    put_ok("a");
    let cid = wire::cluster_id(&c.peers);
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let forge = |from: u64, msg: Msg, to: &[SocketAddr]| {
        let env = Envelope {
            cluster: cid,
            from,
            body: Body::Raft(msg),
        };
        let bytes = wire::encode(&env, Some(&key)).unwrap();
        for p in to {
            s.send_to(&bytes, p).unwrap();
        }
    };
    let term = statuses(&c, Some(&key))[leader].clone().unwrap().term;
    let follower = ((leader + 1) % 3) as u64;
    let vote = Msg::RequestVote {
        term: u64::MAX,
        last_log_index: u64::MAX,
        last_log_term: u64::MAX,
    };
    forge(follower, vote, &c.peers);
    let ack = |match_index| Msg::AppendEntriesReply {
        term,
        outcome: AppendOutcome::Matched { match_index },
    };
    forge(follower, ack(u64::MAX), &[c.peers[leader]]);
    forge(follower, ack(1 << 40), &[c.peers[leader]]);
    let st = wait_until(10, "the forgeries to be counted", || {
        let st = statuses(&c, Some(&key));
        st.iter()
            .all(|s| s.as_ref().is_some_and(|s| s.counters.malformed >= 1))
            .then_some(st)
    });
    assert!(st.iter().flatten().all(|s| s.term == term), "{st:?}");
    let lead = st[leader].clone().unwrap();
    assert!(lead.commit_index <= lead.log_len, "{lead:?}");
    // With both followers stopped, only the forged acknowledgement could make a majority: a
    // put must not be acknowledged (the audit saw such puts acknowledged, then lost).
    let signal = |sig: &str, i: usize| {
        let pid = c.children[i].as_ref().expect("running").id().to_string();
        assert!(Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success());
    };
    let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    followers.iter().for_each(|&i| signal("-STOP", i));
    let out = client(&c.peers, Some(&key_file), 2, &["put", "z", "v"]);
    followers.iter().for_each(|&i| signal("-CONT", i));
    assert_eq!(
        out.code, 3,
        "acknowledged without a majority: {}",
        out.stderr
    );
    for k in ["b", "c", "d", "e", "f"] {
        put_ok(k);
    }
    c.kill(leader);
    wait_leader(&c, Some(&key), Some(leader));
    for k in ["a", "b", "c", "d", "e", "f"] {
        assert_eq!(get(&c, k).as_deref(), Some("v"), "{k} was acknowledged");
    }
}

/// The audit's finding 3 (issue #13), on real processes: a follower whose data directory is
/// wiped comes back empty and catches up under the current leader, within 10 s, holding every
/// acknowledged write (before the fix it stayed at commit 0 until a leader change). Restarted
/// with no flag, it takes its empty directory for lost state, not a new server's, and is
/// repaired before it votes again (before, only `--recover` did that; without it the node
/// started as new and could vote twice in a term).
#[test]
fn a_wiped_follower_catches_up_under_the_current_leader() {
    let mut c = cluster("wiped", None);
    let leader = wait_leader(&c, None, None);
    for i in 0..50 {
        put(&c, &format!("k{i}"), "v");
    }
    let follower = (leader + 1) % 3;
    c.kill(follower);
    std::fs::remove_dir_all(c.data_dir(follower)).unwrap();
    put(&c, "after", "wipe");
    let mut wiped_node = spawn_node_with(&c, follower, &[]);
    let commit = statuses(&c, None)[leader].clone().unwrap().commit_index;
    let started = Instant::now();
    wait_until(10, "the wiped follower to catch up", || {
        let st = statuses(&c, None);
        let f = st[follower].clone()?;
        (f.commit_index >= commit && f.last_applied >= commit && !f.recovering).then_some(())
    });
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        wait_leader(&c, None, None),
        leader,
        "no leader change was needed"
    );
    c.kill(leader);
    let other = 3 - leader - follower;
    c.kill(other);
    c.start(other).unwrap();
    assert_eq!(get(&c, "k0").as_deref(), Some("v"));
    assert_eq!(get(&c, "after").as_deref(), Some("wipe"));
    let _ = wiped_node.kill();
    let _ = wiped_node.wait();
    let stderr = read_stderr(&mut wiped_node);
    assert!(stderr.contains("may be a deleted one"), "{stderr}");
    assert!(stderr.contains("recovered: its log matches"), "{stderr}");
    assert!(!stderr.contains("starting as a new server"), "{stderr}");
}

/// `--recover` says outright that an empty directory was deleted: the node recovers, and would
/// not start as new even if nothing had been written.
#[test]
fn recover_marks_an_empty_directory_as_damaged() {
    let mut c = cluster("recover-flag", None);
    let leader = wait_leader(&c, None, None);
    put(&c, "k", "v");
    let follower = (leader + 1) % 3;
    c.kill(follower);
    std::fs::remove_dir_all(c.data_dir(follower)).unwrap();
    let mut node = spawn_node_with(&c, follower, &["--recover"]);
    wait_until(10, "the follower to be repaired", || {
        let f = statuses(&c, None)[follower].clone()?;
        (f.last_applied >= 1 && !f.recovering).then_some(())
    });
    let _ = node.kill();
    let _ = node.wait();
    let stderr = read_stderr(&mut node);
    assert!(
        stderr.contains("--recover: starting recovering"),
        "{stderr}"
    );
}

/// A brand-new cluster: started together with `--initial-cluster-state auto` (as `cluster` and
/// `LocalCluster::start_all` start one), every node hears from every peer that nothing was
/// written and starts as new. With no flag, empty directories are taken for deleted ones: the
/// nodes recover, elect no one, and say which flag starts a new cluster; with a node that never
/// starts, `--initial-cluster-state new` starts the others.
#[test]
fn a_new_cluster_starts_with_a_flag_and_never_by_default() {
    let c = cluster("fresh", None);
    wait_leader(&c, None, None);
    put(&c, "k", "v");
    drop(c);

    let c = LocalCluster::new(PathBuf::from(NODE), 3, &temp_dir("fresh-down"), None).unwrap();
    let mut waiting: Vec<_> = [0, 1].map(|i| spawn_node_with(&c, i, &[])).into();
    std::thread::sleep(Duration::from_secs(3));
    let st = statuses(&c, None);
    assert!(
        st.iter()
            .flatten()
            .all(|s| s.recovering && s.role != "leader"),
        "{st:?}"
    );
    for child in &mut waiting {
        let _ = child.kill();
        let _ = child.wait();
        let stderr = read_stderr(child);
        assert!(
            stderr.contains("Start every node with --initial-cluster-state auto"),
            "{stderr}"
        );
    }
    let flag = ["--initial-cluster-state", "new"];
    let mut started: Vec<_> = [0, 1].map(|i| spawn_node_with(&c, i, &flag)).into();
    let leader = wait_leader(&c, None, None);
    assert!(leader < 2);
    put(&c, "k", "v");
    for child in &mut started {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Finding 4 of the reliability audit: each client process is a new session, and the
/// deduplication table kept every one forever, so the snapshot grew with the number of clients
/// until a replaced follower could no longer get it. With `--max-sessions` (Raft thesis §6.3)
/// 20,000 one-get sessions leave the snapshot bounded, and a wiped follower still catches up
/// within 10 s.
#[test]
fn twenty_thousand_sessions_leave_the_snapshot_bounded() {
    use raft_checked::net::client::{ClientOptions, Session};
    use raft_checked::protocol::types::Op;
    let mut c = cluster_with(
        "sessions",
        &["--max-sessions", "1000", "--snapshot-after", "200"],
    );
    let leader = wait_leader(&c, None, None);
    put(&c, "k", "v");
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                for _ in 0..2500 {
                    let opts = ClientOptions::new(c.peers.clone(), None, Duration::from_secs(20));
                    let results = Session::new(opts)
                        .unwrap()
                        .run(vec![Op::Get { key: "k".into() }]);
                    assert_eq!(results.unwrap().len(), 1);
                }
            });
        }
    });
    eprintln!("20,000 one-get sessions in {:?}", started.elapsed());
    let meta = |i: usize| std::fs::metadata(c.data_dir(i).join(META_FILE)).map_or(0, |m| m.len());
    let leader_meta = wait_until(20, "a snapshot after the sessions", || {
        let st = statuses(&c, None)[leader].clone()?;
        (st.snapshot_index > 19_000).then(|| meta(leader))
    });
    eprintln!("the leader's meta file (its snapshot) holds {leader_meta} bytes");
    // 1,000 sessions of about 40 bytes each, and one key: far below the 20,000 sessions' ~1 MB.
    assert!(
        leader_meta < 100_000,
        "the snapshot holds {leader_meta} bytes"
    );
    let follower = (leader + 1) % 3;
    c.kill(follower);
    std::fs::remove_dir_all(c.data_dir(follower)).unwrap();
    c.start(follower).unwrap();
    let commit = statuses(&c, None)[leader].clone().unwrap().commit_index;
    let wiped = Instant::now();
    wait_until(10, "the wiped follower to catch up", || {
        let f = statuses(&c, None)[follower].clone()?;
        (f.commit_index >= commit && f.last_applied >= commit).then_some(())
    });
    assert!(wiped.elapsed() < Duration::from_secs(10));
    assert_eq!(get(&c, "k").as_deref(), Some("v"));
}

/// A started 3-node cluster whose nodes all get `args`.
fn cluster_with(name: &str, args: &[&str]) -> LocalCluster {
    let mut c = LocalCluster::new(PathBuf::from(NODE), 3, &temp_dir(name), None).unwrap();
    c.quiet = true;
    c.extra_args = args.iter().map(|a| a.to_string()).collect();
    c.start_all().unwrap();
    c
}

/// Puts keys k0..k59 (acknowledged), stops every node and deletes the state file of nodes 0
/// and 1.
fn put_60_then_lose_two_state_files(c: &mut LocalCluster) {
    wait_leader(c, None, None);
    for i in 0..60 {
        put(c, &format!("k{i}"), &i.to_string());
    }
    c.kill_all();
    for i in [0, 1] {
        std::fs::remove_file(c.data_dir(i).join(META_FILE)).unwrap();
    }
}

/// Finding 6 of the audit, its missing-meta half: deleting the state file on 2 of 3 nodes lost
/// all 60 acknowledged writes in 6 of 10 trials, the nodes starting again as new empty members.
/// Now a node whose log starts at index 1 recovers its whole state from the log (nothing is
/// lost). One whose snapshot went with the state file restarts recovering: on a majority no
/// leader can be elected, so the cluster answers nothing rather than answer from a history
/// without those writes, and says why; on a minority it is repaired and everything reads back.
#[test]
fn a_lost_state_file_on_a_majority_loses_no_acknowledged_write() {
    // No snapshot yet (60 entries, the default compacts after 1000): recovered from the logs.
    let mut c = cluster("nometa", None);
    put_60_then_lose_two_state_files(&mut c);
    c.start_all().unwrap();
    for i in 0..60 {
        assert_eq!(
            get(&c, &format!("k{i}")),
            Some(i.to_string()),
            "k{i} was lost"
        );
    }
    c.kill_all();

    // Snapshots every 20 entries: the two damaged nodes recover, and nothing is answered.
    let snap = ["--snapshot-after", "20"];
    let mut c = cluster_with("nometa-snap", &snap);
    put_60_then_lose_two_state_files(&mut c);
    c.start(2).unwrap();
    let mut damaged: Vec<_> = [0, 1].map(|i| spawn_node_with(&c, i, &snap)).into();
    wait_until(10, "both damaged nodes to say they are recovering", || {
        let st = statuses(&c, None);
        [0, 1]
            .iter()
            .all(|&i| st[i].as_ref().is_some_and(|s| s.recovering))
            .then_some(())
    });
    let out = client(&c.peers, None, 3, &["get", "k0"]);
    assert_eq!(out.code, 3, "the cluster answered: {}", out.stdout);
    let st = statuses(&c, None);
    assert!(st.iter().flatten().all(|s| s.role != "leader"), "{st:?}");
    for child in &mut damaged {
        let _ = child.kill();
        let _ = child.wait();
        let stderr = read_stderr(child);
        assert!(stderr.contains("storage damaged"), "{stderr}");
        assert!(
            stderr.contains("recovering from damaged storage too"),
            "{stderr}"
        );
    }
    c.kill_all();

    // The same damage on one node only: it is repaired, and all 60 writes read back.
    let mut c = cluster_with("nometa-snap-one", &snap);
    wait_leader(&c, None, None);
    for i in 0..60 {
        put(&c, &format!("k{i}"), &i.to_string());
    }
    c.kill_all();
    std::fs::remove_file(c.data_dir(0).join(META_FILE)).unwrap();
    c.start_all().unwrap();
    wait_until(20, "node 0 to be repaired", || {
        let s = statuses(&c, None)[0].clone()?;
        (!s.recovering && s.snapshot_index >= 20).then_some(())
    });
    for i in 0..60 {
        assert_eq!(
            get(&c, &format!("k{i}")),
            Some(i.to_string()),
            "k{i} was lost"
        );
    }
}

/// Issue #13, item 5: a snapshot of any size reaches a follower, acknowledged per fragment
/// (Figure 13's chunks), over a network that loses and repeats datagrams. About 19 MB of
/// key/value state (past the 16 MiB a message could once take on the wire) is written while a
/// follower is down and compacted away; on restart the follower can only catch up by
/// InstallSnapshot in about 330 fragments through a proxy that drops 5% of datagrams, which a
/// message sent all at once would all but never survive (0.95^330). Only the servers' traffic
/// is lossy (clients' datagrams pass the proxies untouched), so the writes go quickly.
#[test]
fn a_snapshot_past_16_mib_reaches_a_follower_over_a_lossy_network() {
    let faults = proxy::Faults {
        drop: 0.05,
        duplicate: 0.02,
        max_delay: Duration::from_millis(5),
        servers_only: true,
    };
    // The default election timeouts (300-600 ms), shorter than the transfer: each new chunk
    // from its leader holds off the follower's election, as Figure 13's chunk RPCs do.
    let (mut c, _proxies, fronts) =
        proxied_cluster("bigsnap", faults, &["--snapshot-after", "500"]);
    let leader = wait_leader(&c, None, None);
    let behind = (leader + 1) % 3;
    c.kill(behind);

    let (threads, per_thread) = (16u64, 700u64);
    let writers: Vec<_> = (0..threads)
        .map(|t| {
            let fronts = fronts.clone();
            std::thread::spawn(move || {
                let ops: Vec<Op> = (0..per_thread)
                    .map(|i| Op::Put {
                        key: format!("k{t}-{i}"),
                        value: format!("{t}-{i}-").repeat(1000)[..1_900].to_string(),
                    })
                    .collect();
                let opts = ClientOptions::new(fronts, None, Duration::from_secs(60));
                let mut session = Session::new(opts).unwrap();
                let mut done = 0;
                session
                    .run_until(ops, None, |_, result, _| {
                        assert_eq!(result, OpResult::Written);
                        done += 1;
                        true
                    })
                    .unwrap();
                done
            })
        })
        .collect();
    let written: u64 = writers.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(written, threads * per_thread);

    let target = wait_until(20, "the leader to compact nearly all the writes", || {
        let s = statuses(&c, None)[leader].clone()?;
        (s.snapshot_index + 500 >= written).then_some(s.commit_index)
    });
    let meta = std::fs::metadata(c.data_dir(leader).join(META_FILE))
        .unwrap()
        .len();
    assert!(
        meta > 16 << 20,
        "the leader's snapshot is only {meta} bytes"
    );
    c.start(behind).unwrap();
    let restarted = Instant::now();
    let deadline = restarted + Duration::from_secs(60);
    let caught_up = loop {
        let st = statuses(&c, None);
        if let Some(s) = st[behind].clone().filter(|s| s.last_applied >= target) {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the follower did not catch up within 60 s: {st:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    println!(
        "caught up {:.1} s after its restart; leader resent {} fragments",
        restarted.elapsed().as_secs_f64(),
        statuses(&c, None)[leader]
            .as_ref()
            .map_or(0, |l| l.counters.frag_resent)
    );
    assert!(caught_up.snapshot_index + 500 >= written, "{caught_up:?}");
    assert!(caught_up.counters.reassembled >= 1, "{caught_up:?}");
    assert!(caught_up.counters.frag_acks_out > 300, "{caught_up:?}");
    let l = statuses(&c, None)[leader].clone().unwrap();
    assert_eq!(l.counters.oversize_out, 0, "{l:?}");
    assert!(
        l.counters.frag_resent > 0,
        "no fragment was lost and resent: {l:?}"
    );
    // The writes read back: one sample per writer.
    for t in 0..threads {
        let v = get(&c, &format!("k{t}-{}", per_thread - 1)).unwrap();
        assert!(v.starts_with(&format!("{t}-{}-", per_thread - 1)), "{v}");
    }
}

//! The named scenarios, modelled on MIT 6.5840's Lab 3 (Raft) and Lab 4 (key/value) tests with
//! the lab's constants, and running one on a seed: the scenario's own assertions, the model's
//! `always` properties on every cluster state, and linearizability of the client history.

use crate::check::report::render_trace;
use crate::model::diagram::{Drawing, Ending, Picture};
use crate::protocol::server::Bug;
use crate::protocol::types::Op;
use crate::sim::cluster::{Failure, Sim, SimConfig};
use crate::sim::linearizability;
use crate::sim::network::LinkConfig;
use std::time::Duration;

/// A named scenario: its cluster and what it does and asserts.
pub struct Scenario {
    /// Its name on the command line (a contract: the lab test it follows).
    pub name: &'static str,
    /// One line on what it checks.
    pub about: &'static str,
    /// Cluster size.
    pub servers: usize,
    /// Adjusts the cluster's configuration (network, snapshots) before it starts.
    pub configure: fn(&mut SimConfig),
    /// Drives the run: faults, clients, and the lab test's assertions.
    pub run: fn(&mut Sim) -> Result<(), Failure>,
}

/// What one run of a scenario on one seed found.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The seed.
    pub seed: u64,
    /// The failed checks (at most one: a run stops at its first failure).
    pub failures: Vec<Failure>,
    /// Virtual time the run covered.
    pub virtual_time: Duration,
    /// Client operations completed.
    pub ops: usize,
    /// How long after the last fault healed a leader was first seen.
    pub elected_after_heal: Option<Duration>,
    /// The run's report: one summary line, then the trace when it failed or was asked for.
    /// Depends on the seed alone.
    pub text: String,
}

fn ms(t: u64) -> Duration {
    Duration::from_millis(t)
}

fn secs(t: u64) -> Duration {
    Duration::from_secs(t)
}

fn nothing(_: &mut SimConfig) {}

/// The lab's `SnapShotInterval`: a snapshot every 10 entries.
const SNAPSHOT_INTERVAL: u64 = 10;

fn snapshots(c: &mut SimConfig) {
    c.snapshot_after = Some(SNAPSHOT_INTERVAL);
}

fn snapshots_unreliable(c: &mut SimConfig) {
    snapshots(c);
    unreliable(c);
}

/// `node --max-sessions 3`, over the unreliable network.
fn three_sessions_unreliable(c: &mut SimConfig) {
    unreliable(c);
    c.max_sessions = Some(3);
}

/// Snapshots every 500 entries, over the unreliable network: few, large snapshots.
fn large_snapshots_unreliable(c: &mut SimConfig) {
    c.snapshot_after = Some(500);
    unreliable(c);
}

fn unreliable(c: &mut SimConfig) {
    c.link = LinkConfig::unreliable();
}

/// Every scenario, in the order `--list` prints them (the order). A table rather than
/// a function, so that adding one is one entry.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "initial_election",
        about: "3A: a leader is elected, and terms stay put with no failure",
        servers: 3,
        configure: nothing,
        run: initial_election,
    },
    Scenario {
        name: "re_election",
        about: "3A: a new leader after the leader is cut off; none without a majority",
        servers: 3,
        configure: nothing,
        run: re_election,
    },
    Scenario {
        name: "many_elections",
        about: "3A: 7 servers, ten rounds of cutting off 3 random servers",
        servers: 7,
        configure: nothing,
        run: many_elections,
    },
    Scenario {
        name: "basic_agree",
        about: "3B: three commands committed by all servers at indices 1, 2, 3",
        servers: 3,
        configure: nothing,
        run: basic_agree,
    },
    Scenario {
        name: "rpc_bytes",
        about: "3B: each command's bytes cross to each follower about once",
        servers: 3,
        configure: nothing,
        run: rpc_bytes,
    },
    Scenario {
        name: "follower_failure",
        about: "3B: agreement despite one cut-off follower; none with both gone",
        servers: 3,
        configure: nothing,
        run: follower_failure,
    },
    Scenario {
        name: "leader_failure",
        about: "3B: agreement after the leader is cut off; none with two gone",
        servers: 3,
        configure: nothing,
        run: leader_failure,
    },
    Scenario {
        name: "fail_agree",
        about: "3B: agreement while a follower is cut off, and after it rejoins",
        servers: 3,
        configure: nothing,
        run: fail_agree,
    },
    Scenario {
        name: "fail_no_agree",
        about: "3B: 5 servers, no commit without a majority, agreement after",
        servers: 5,
        configure: nothing,
        run: fail_no_agree,
    },
    Scenario {
        name: "concurrent_starts",
        about: "3B: five commands started at once at the leader all commit",
        servers: 3,
        configure: nothing,
        run: concurrent_starts,
    },
    Scenario {
        name: "rejoin",
        about: "3B: a cut-off leader's uncommitted entries give way when it rejoins",
        servers: 3,
        configure: nothing,
        run: rejoin,
    },
    Scenario {
        name: "backup",
        about: "3B: 5 servers, leaders back up quickly over incorrect follower logs",
        servers: 5,
        configure: nothing,
        run: backup,
    },
    Scenario {
        name: "count",
        about: "3B: no more RPCs than needed to elect, to agree, and while idle",
        servers: 3,
        configure: nothing,
        run: count,
    },
    Scenario {
        name: "persist1",
        about: "3C: agreement across crashes and restarts of every server and of leaders",
        servers: 3,
        configure: nothing,
        run: persist1,
    },
    Scenario {
        name: "persist2",
        about: "3C: 5 servers, five rounds of majorities crashed and restarted in turn",
        servers: 5,
        configure: nothing,
        run: persist2,
    },
    Scenario {
        name: "persist3",
        about: "3C: a partitioned leader and one follower crash; agreement after restart",
        servers: 3,
        configure: nothing,
        run: persist3,
    },
    Scenario {
        name: "figure8",
        about: "3C: 5 servers, 1000 rounds of crashing the leader and restarting servers",
        servers: 5,
        configure: nothing,
        run: figure8,
    },
    Scenario {
        name: "unreliable_agree",
        about: "3C: 5 servers, agreement with concurrent commands on a lossy network",
        servers: 5,
        configure: unreliable,
        run: unreliable_agree,
    },
    Scenario {
        name: "figure8_unreliable",
        about: "3C: 5 servers, 1000 rounds of leader churn on a lossy, long-reordering network",
        servers: 5,
        configure: unreliable,
        run: figure8_unreliable,
    },
    Scenario {
        name: "reliable_churn",
        about: "3C: 5 servers, crashes (some in an fsync), restarts, cuts, three clients",
        servers: 5,
        configure: nothing,
        run: churn,
    },
    Scenario {
        name: "unreliable_churn",
        about: "3C: reliable_churn on a lossy network",
        servers: 5,
        configure: unreliable,
        run: churn,
    },
    Scenario {
        name: "snapshot_basic",
        about: "3D: logs stay short with snapshots every 10 entries",
        servers: 3,
        configure: snapshots,
        run: snapshot_basic,
    },
    Scenario {
        name: "snapshot_install",
        about: "3D: a cut-off follower catches up by InstallSnapshot",
        servers: 3,
        configure: snapshots,
        run: snapshot_install,
    },
    Scenario {
        name: "snapshot_install_unreliable",
        about: "3D: snapshot_install on a lossy network",
        servers: 3,
        configure: snapshots_unreliable,
        run: snapshot_install,
    },
    Scenario {
        name: "snapshot_install_crash",
        about: "3D: a crashed follower catches up by InstallSnapshot after restarting",
        servers: 3,
        configure: snapshots,
        run: snapshot_install_crash,
    },
    Scenario {
        name: "snapshot_install_large",
        about: "(no lab test) a follower cut off while 4 clients write 3.8 MB catches up by a snapshot of about 65 fragments, acknowledged one by one, over a network losing 10%",
        servers: 3,
        configure: large_snapshots_unreliable,
        run: snapshot_install_large,
    },
    Scenario {
        name: "snapshot_init",
        about: "3D: every server restarts from a snapshot, twice, and agreement goes on",
        servers: 3,
        configure: snapshots,
        run: snapshot_init,
    },
    Scenario {
        name: "kv_basic",
        about: "4A: one client appends and reads for 15 s; its history is linearizable",
        servers: 5,
        configure: nothing,
        run: kv_basic,
    },
    Scenario {
        name: "kv_concurrent",
        about: "4A: five clients for 15 s; the history is linearizable",
        servers: 5,
        configure: nothing,
        run: kv_concurrent,
    },
    Scenario {
        name: "kv_unreliable",
        about: "4A: five clients on a lossy network; the history is linearizable",
        servers: 5,
        configure: unreliable,
        run: kv_unreliable,
    },
    Scenario {
        name: "kv_one_partition",
        about: "4A: the minority side completes nothing until the partition heals",
        servers: 5,
        configure: nothing,
        run: kv_one_partition,
    },
    Scenario {
        name: "kv_many_partitions_many_clients",
        about: "4A: five clients while random partitions come and go",
        servers: 5,
        configure: nothing,
        run: kv_many_partitions_many_clients,
    },
    Scenario {
        name: "kv_persist_partition_unreliable_linearizable",
        about: "4A: 15 clients on shared keys, lossy network, partitions, whole-cluster crashes",
        servers: 5,
        configure: unreliable,
        run: kv_persist_partition_unreliable_linearizable,
    },
    Scenario {
        name: "kv_snapshot_size",
        about: "4B: 200 puts with snapshots; each disk stays small",
        servers: 3,
        configure: snapshots,
        run: kv_snapshot_size,
    },
    Scenario {
        name: "kv_session_expiry",
        about: "(no lab test) thesis 6.3: 3 sessions kept, 20 clients join over 10 s, unreliable: older sessions expire mid-retry; linearizable, never applied twice",
        servers: 3,
        configure: three_sessions_unreliable,
        run: kv_session_expiry,
    },
    Scenario {
        name: "kv_speed",
        about: "4A: 1000 appends by one client, each within a third of a heartbeat",
        servers: 3,
        configure: nothing,
        run: kv_speed,
    },
    Scenario {
        name: "wiped_follower",
        about: "the audit's bug: a follower whose disk is wiped catches up under the leader",
        servers: 3,
        configure: nothing,
        run: wiped_follower,
    },
    Scenario {
        name: "disk_stall",
        about: "an fsync stalls for seconds on a follower, then on the leader; agreement goes on",
        servers: 5,
        configure: nothing,
        run: disk_stall,
    },
];

/// Every scenario, in `--list` order.
pub fn all() -> &'static [Scenario] {
    SCENARIOS
}

/// The scenario called `name`.
pub fn find(name: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.name == name)
}

/// A Put of a unique value (the lab's commands are distinct random numbers).
fn cmd(v: u64) -> Op {
    Op::Put {
        key: "x".into(),
        value: v.to_string(),
    }
}

// ---- Lab 3A. ----

fn initial_election(sim: &mut Sim) -> Result<(), Failure> {
    sim.check_one_leader()?;
    sim.run_for(ms(50));
    let term1 = sim.check_terms()?;
    if term1 < 1 {
        return sim.failed(
            "terms",
            format!("term is {term1}, but should be at least 1"),
        );
    }
    // No failure: the leader holds its followers, so elections stop.
    sim.run_for(ms(2000));
    let term2 = sim.check_terms()?;
    if term1 != term2 {
        return sim.failed(
            "terms",
            format!("term changed from {term1} to {term2} with no failure"),
        );
    }
    sim.check_one_leader()?;
    Ok(())
}

fn re_election(sim: &mut Sim) -> Result<(), Failure> {
    let n = sim.n();
    let leader1 = sim.check_one_leader()?;
    sim.disconnect(leader1);
    sim.check_one_leader()?;
    sim.connect(leader1);
    let leader2 = sim.check_one_leader()?;
    sim.disconnect(leader2);
    sim.disconnect((leader2 + 1) % n);
    sim.run_for(ms(2000));
    sim.check_no_leader()?;
    sim.connect((leader2 + 1) % n);
    sim.check_one_leader()?;
    sim.connect(leader2);
    sim.check_one_leader()?;
    sim.check_elected_after_heal()?;
    Ok(())
}

fn many_elections(sim: &mut Sim) -> Result<(), Failure> {
    let n = sim.n() as u64;
    sim.check_one_leader()?;
    for _ in 0..10 {
        let cut: Vec<usize> = (0..3).map(|_| sim.random(n) as usize).collect();
        for &i in &cut {
            sim.disconnect(i);
        }
        sim.check_one_leader()?;
        for &i in &cut {
            sim.connect(i);
        }
    }
    sim.check_one_leader()?;
    sim.check_elected_after_heal()?;
    Ok(())
}

// ---- Lab 3B. ----

fn basic_agree(sim: &mut Sim) -> Result<(), Failure> {
    let n = sim.n();
    for index in 1..=3 {
        let (count, _) = sim.n_committed(index)?;
        if count > 0 {
            return sim.failed("basic_agree", "some have committed before Start()");
        }
        let got = sim.one(cmd(index * 100), n)?;
        if got != index {
            return sim.failed("basic_agree", format!("got index {got}, expected {index}"));
        }
    }
    Ok(())
}

fn rpc_bytes(sim: &mut Sim) -> Result<(), Failure> {
    let n = sim.n() as u64;
    sim.count_rpcs = true;
    sim.one(cmd(99), n as usize)?;
    let bytes0 = sim.rpc_bytes;
    let mut sent = 0;
    for i in 0..10u64 {
        // The lab's 5000-byte commands exceed a command's limit here (2048 bytes).
        let value: String = (0..1500)
            .map(|k| char::from(b'a' + ((i + k) % 26) as u8))
            .collect();
        sent += value.len() as u64;
        let op = Op::Put {
            key: "x".into(),
            value,
        };
        sim.one(op, n as usize)?;
    }
    let got = sim.rpc_bytes - bytes0;
    let expected = sent * (n - 1);
    if got > expected + 50_000 {
        let d = format!("too many RPC bytes: {got}, expected {expected}");
        return sim.failed("rpc bytes", d);
    }
    Ok(())
}

/// Submits `op` through a fresh client, lets 2 s pass, and fails if it was not accepted into
/// a log or if it committed anywhere (no majority can be reachable).
fn submit_expect_no_commit(sim: &mut Sim, op: Op) -> Result<u64, Failure> {
    let c = sim.add_client(vec![op]);
    sim.run_for(ms(2000));
    sim.stop_client(c);
    sim.ok()?;
    let Some(index) = sim.client_index(c) else {
        return sim.failed("accepted", "no leader accepted the command");
    };
    let (count, _) = sim.n_committed(index)?;
    if count > 0 {
        return sim.failed(
            "no commit",
            format!("{count} committed index {index} without a majority"),
        );
    }
    Ok(index)
}

fn follower_failure(sim: &mut Sim) -> Result<(), Failure> {
    let n = sim.n();
    sim.one(cmd(101), n)?;
    let leader1 = sim.check_one_leader()?;
    sim.disconnect((leader1 + 1) % n);
    sim.one(cmd(102), n - 1)?;
    sim.run_for(ms(1000));
    sim.one(cmd(103), n - 1)?;
    let leader2 = sim.check_one_leader()?;
    sim.disconnect((leader2 + 1) % n);
    sim.disconnect((leader2 + 2) % n);
    submit_expect_no_commit(sim, cmd(104))?;
    Ok(())
}

fn leader_failure(sim: &mut Sim) -> Result<(), Failure> {
    let n = sim.n();
    sim.one(cmd(101), n)?;
    let leader1 = sim.check_one_leader()?;
    sim.disconnect(leader1);
    sim.one(cmd(102), n - 1)?;
    sim.run_for(ms(1000));
    sim.one(cmd(103), n - 1)?;
    let leader2 = sim.check_one_leader()?;
    sim.disconnect(leader2);
    sim.disconnect((leader2 + 1) % n);
    // Every server is now alone: none may commit, whichever accepts the command.
    let c = sim.add_client(vec![cmd(104)]);
    sim.run_for(ms(2000));
    sim.stop_client(c);
    let (count, _) = sim.n_committed(4)?;
    if count > 0 {
        return sim.failed(
            "no commit",
            format!("{count} committed index 4 without a majority"),
        );
    }
    Ok(())
}

/// A disk that stalls (an fsync that takes seconds) on a follower, then on the leader: a
/// stalled follower does not hold up agreement (the others are a majority); a stalled leader's
/// loop waits in its fsync, sends no heartbeats, and another server leads and commits; once the
/// stall ends everyone agrees again.
fn disk_stall(sim: &mut Sim) -> Result<(), Failure> {
    let n = sim.n();
    sim.one(cmd(101), n)?;
    let leader = sim.check_one_leader()?;
    let follower = (leader + 1) % n;
    sim.stall_disk(follower, secs(5));
    let started = sim.now();
    sim.one(cmd(102), n - 1)?;
    let took = sim.now() - started;
    if took >= secs(4) {
        return sim.failed(
            "a stalled follower does not hold up agreement",
            format!(
                "agreement took {:.3}s while S{follower}'s disk stalled",
                took.as_secs_f64()
            ),
        );
    }
    sim.run_for(secs(5));
    let leader = sim.check_one_leader()?;
    sim.stall_disk(leader, secs(3));
    sim.one(cmd(103), n - 1)?;
    // Its loop waited in the fsync of cmd 103's entry: no heartbeats, so another server led.
    let next = sim.check_one_leader()?;
    if next == leader {
        return sim.failed(
            "a stalled leader gives way",
            format!("S{leader} still leads after its disk stalled"),
        );
    }
    sim.run_for(secs(3));
    sim.one(cmd(104), n)?;
    Ok(())
}

fn fail_agree(sim: &mut Sim) -> Result<(), Failure> {
    let n = sim.n();
    sim.one(cmd(101), n)?;
    let leader = sim.check_one_leader()?;
    sim.disconnect((leader + 1) % n);
    sim.one(cmd(102), n - 1)?;
    sim.one(cmd(103), n - 1)?;
    sim.run_for(ms(1000));
    sim.one(cmd(104), n - 1)?;
    sim.one(cmd(105), n - 1)?;
    sim.connect((leader + 1) % n);
    sim.one(cmd(106), n)?;
    sim.run_for(ms(1000));
    sim.one(cmd(107), n)?;
    Ok(())
}

fn fail_no_agree(sim: &mut Sim) -> Result<(), Failure> {
    let n = sim.n();
    sim.one(cmd(10), n)?;
    let leader = sim.check_one_leader()?;
    for k in 1..=3 {
        sim.disconnect((leader + k) % n);
    }
    let index = submit_expect_no_commit(sim, cmd(20))?;
    if index != 2 {
        return sim.failed("fail_no_agree", format!("expected index 2, got {index}"));
    }
    for k in 1..=3 {
        sim.connect((leader + k) % n);
    }
    sim.check_one_leader()?;
    let c = sim.add_client(vec![cmd(30)]);
    sim.run_until(secs(10), |s| s.client_index(c).is_some());
    sim.stop_client(c);
    match sim.client_index(c) {
        Some(i) if (2..=3).contains(&i) => {}
        other => return sim.failed("fail_no_agree", format!("unexpected index {other:?}")),
    }
    sim.one(cmd(1000), n)?;
    Ok(())
}

fn count(sim: &mut Sim) -> Result<(), Failure> {
    let n = sim.n();
    sim.count_rpcs = true;
    sim.check_one_leader()?;
    let total1 = sim.rpcs;
    if !(1..=30).contains(&total1) {
        return sim.failed(
            "rpc count",
            format!("{total1} RPCs to elect the initial leader"),
        );
    }
    let start = sim.one(cmd(1), n)?;
    let leader = sim.check_one_leader()?;
    let total2 = sim.rpcs;
    // Ten commands at once at the leader, as the lab starts them: batching and coalescing
    // must keep their cost near one round of AppendEntries each.
    for k in 0..10 {
        sim.start(leader, cmd(100 + k));
    }
    wait_committed(sim, start + 10, n)?;
    let total3 = sim.rpcs;
    if total3 - total2 > (10 + 1 + 3) * 3 {
        let d = format!(
            "{} RPCs for 10 entries after index {start}",
            total3 - total2
        );
        return sim.failed("rpc count", d);
    }
    sim.run_for(ms(1000));
    let idle = sim.rpcs - total3;
    if idle > 3 * 20 {
        return sim.failed("rpc count", format!("{idle} RPCs for 1 second of idleness"));
    }
    Ok(())
}

fn concurrent_starts(sim: &mut Sim) -> Result<(), Failure> {
    let n = sim.n();
    sim.one(cmd(1), n)?;
    let leader = sim.check_one_leader()?;
    let clients: Vec<usize> = (0..5).map(|k| sim.start(leader, cmd(100 + k))).collect();
    sim.run_for(ms(500));
    sim.ok()?;
    let mut indices = Vec::new();
    for &c in &clients {
        match sim.client_index(c) {
            Some(k) => indices.push(k),
            // The leader lost its term meanwhile; the lab retries then, and so may we not
            // conclude anything: check agreement once more below.
            None => {
                return sim.failed(
                    "concurrent_starts",
                    format!("client {c}'s command is in no log"),
                )
            }
        }
    }
    indices.sort();
    indices.dedup();
    if indices.len() != 5 {
        return sim.failed(
            "concurrent_starts",
            format!("indices {indices:?} are not 5 distinct"),
        );
    }
    for k in indices {
        wait_committed(sim, k, n)?;
    }
    Ok(())
}

fn rejoin(sim: &mut Sim) -> Result<(), Failure> {
    let n = sim.n();
    sim.one(cmd(101), n)?;
    let leader1 = sim.check_one_leader()?;
    sim.disconnect(leader1);
    for v in [102, 103, 104] {
        sim.start(leader1, cmd(v));
    }
    sim.one(cmd(103), 2)?;
    let leader2 = sim.check_one_leader()?;
    sim.disconnect(leader2);
    sim.connect(leader1);
    sim.one(cmd(104), 2)?;
    sim.connect(leader2);
    sim.one(cmd(105), n)?;
    Ok(())
}

fn backup(sim: &mut Sim) -> Result<(), Failure> {
    let n = sim.n();
    let v = sim.random(10_000);
    sim.one(cmd(v), n)?;
    let leader1 = sim.check_one_leader()?;
    for k in 2..=4 {
        sim.disconnect((leader1 + k) % n);
    }
    for _ in 0..50 {
        let v = sim.random(10_000);
        sim.start(leader1, cmd(v));
    }
    sim.run_for(ms(500));
    sim.disconnect(leader1);
    sim.disconnect((leader1 + 1) % n);
    for k in 2..=4 {
        sim.connect((leader1 + k) % n);
    }
    for _ in 0..50 {
        let v = sim.random(10_000);
        sim.one(cmd(v), 3)?;
    }
    let leader2 = sim.check_one_leader()?;
    let mut other = (leader1 + 2) % n;
    if leader2 == other {
        other = (leader2 + 1) % n;
    }
    sim.disconnect(other);
    for _ in 0..50 {
        let v = sim.random(10_000);
        sim.start(leader2, cmd(v));
    }
    sim.run_for(ms(500));
    for i in 0..n {
        sim.disconnect(i);
    }
    sim.connect(leader1);
    sim.connect((leader1 + 1) % n);
    sim.connect(other);
    for _ in 0..50 {
        let v = sim.random(10_000);
        sim.one(cmd(v), 3)?;
    }
    for i in 0..n {
        sim.connect(i);
    }
    let v = sim.random(10_000);
    sim.one(cmd(v), n)?;
    Ok(())
}

// ---- Lab 3C. ----

/// Crashes server `i` and starts it again from its disk (the lab's `start1`).
fn restart(sim: &mut Sim, i: usize) {
    sim.crash(i);
    sim.restart(i);
}

/// Waits up to 10 s for `expected` up servers to commit `index`.
fn wait_committed(sim: &mut Sim, index: u64, expected: usize) -> Result<(), Failure> {
    let ok = sim.run_until(secs(10), |s| {
        (0..s.n())
            .filter_map(|i| s.state(i))
            .filter(|st| st.commit_index >= index)
            .count()
            >= expected
    });
    sim.ok()?;
    if !ok {
        return sim.failed(
            "wait",
            format!("index {index} not committed by {expected} servers"),
        );
    }
    Ok(())
}

fn persist1(sim: &mut Sim) -> Result<(), Failure> {
    let n = sim.n();
    sim.one(cmd(11), n)?;
    for i in 0..n {
        restart(sim, i);
    }
    for i in 0..n {
        sim.disconnect(i);
        sim.connect(i);
    }
    sim.one(cmd(12), n)?;
    let leader1 = sim.check_one_leader()?;
    sim.disconnect(leader1);
    restart(sim, leader1);
    sim.connect(leader1);
    sim.one(cmd(13), n)?;
    let leader2 = sim.check_one_leader()?;
    sim.disconnect(leader2);
    sim.one(cmd(14), n - 1)?;
    restart(sim, leader2);
    sim.connect(leader2);
    wait_committed(sim, 4, n)?;
    let i3 = (sim.check_one_leader()? + 1) % n;
    sim.disconnect(i3);
    sim.one(cmd(15), n - 1)?;
    restart(sim, i3);
    sim.connect(i3);
    sim.one(cmd(16), n)?;
    Ok(())
}

fn persist2(sim: &mut Sim) -> Result<(), Failure> {
    let n = sim.n();
    let mut index = 1;
    for _ in 0..5 {
        sim.one(cmd(10 + index), n)?;
        index += 1;
        let leader1 = sim.check_one_leader()?;
        sim.disconnect((leader1 + 1) % n);
        sim.disconnect((leader1 + 2) % n);
        sim.one(cmd(10 + index), n - 2)?;
        index += 1;
        for k in [0, 3, 4] {
            sim.disconnect((leader1 + k) % n);
        }
        for k in [1, 2] {
            restart(sim, (leader1 + k) % n);
            sim.connect((leader1 + k) % n);
        }
        sim.run_for(ms(1000));
        restart(sim, (leader1 + 3) % n);
        sim.connect((leader1 + 3) % n);
        sim.one(cmd(10 + index), n - 2)?;
        index += 1;
        sim.connect((leader1 + 4) % n);
        sim.connect(leader1);
    }
    sim.one(cmd(1000), n)?;
    Ok(())
}

fn persist3(sim: &mut Sim) -> Result<(), Failure> {
    let n = sim.n();
    sim.one(cmd(101), 3)?;
    let leader = sim.check_one_leader()?;
    sim.disconnect((leader + 2) % n);
    sim.one(cmd(102), 2)?;
    sim.crash(leader);
    sim.crash((leader + 1) % n);
    sim.connect((leader + 2) % n);
    sim.restart(leader);
    sim.connect(leader);
    sim.one(cmd(103), 2)?;
    sim.restart((leader + 1) % n);
    sim.connect((leader + 1) % n);
    sim.one(cmd(104), n)?;
    Ok(())
}

/// How a Figure 8 test takes leaders away: crashing them (and restarting servers), or cutting
/// them off the network (and reconnecting servers).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Churn {
    Crash,
    Disconnect,
}

impl Churn {
    /// Whether a leader at `i` may be taken away: a crash takes any; a cut, a connected one.
    fn may_take(self, sim: &Sim, i: usize) -> bool {
        self == Churn::Crash || sim.connected(i)
    }
    fn is_in(self, sim: &Sim, i: usize) -> bool {
        match self {
            Churn::Crash => sim.is_up(i),
            Churn::Disconnect => sim.connected(i),
        }
    }
    fn take(self, sim: &mut Sim, i: usize) {
        match self {
            Churn::Crash => sim.crash(i),
            Churn::Disconnect => sim.disconnect(i),
        }
    }
    fn bring_back(self, sim: &mut Sim, i: usize) {
        match self {
            Churn::Crash => sim.restart(i),
            Churn::Disconnect => sim.connect(i),
        }
    }
}

/// 6.5840's Figure 8 test: the leader crashes every round while clients keep proposing, and
/// crashed servers come back whenever fewer than three are up.
fn figure8(sim: &mut Sim) -> Result<(), Failure> {
    leader_churn(sim, Churn::Crash)
}

/// Figure 8 on a lossy network: half the rounds cut the leader off, and after 200 rounds replies
/// are held back long.
fn figure8_unreliable(sim: &mut Sim) -> Result<(), Failure> {
    leader_churn(sim, Churn::Disconnect)
}

/// The Figure 8 tests' loop: 1000 rounds of a random pause, then the leader taken away (every
/// round by crashes; half the rounds, on a network that turns to long reordering after 200
/// rounds, by cuts), and a random server brought back while fewer than three are in; then
/// everyone back, and one more command must reach every server.
fn leader_churn(sim: &mut Sim, churn: Churn) -> Result<(), Failure> {
    let n = sim.n();
    let v = sim.random(10_000);
    sim.one(cmd(v), 1)?;
    let load = start_load(sim, 2, 100_000);
    let mut up = n;
    for iter in 0..1000 {
        if churn == Churn::Disconnect && iter == 200 {
            sim.net.default = LinkConfig::long_reordering();
        }
        let pause = if sim.random(1000) < 100 {
            sim.random(250)
        } else {
            sim.random(13)
        };
        sim.run_for(ms(pause));
        sim.ok()?;
        let leader =
            (0..n).find(|&i| churn.may_take(sim, i) && sim.state(i).is_some_and(|s| s.is_leader()));
        if let Some(l) = leader {
            if churn == Churn::Crash || sim.random(1000) < 500 {
                churn.take(sim, l);
                up -= 1;
            }
        }
        if up < 3 {
            let s = sim.random(n as u64) as usize;
            if !churn.is_in(sim, s) {
                churn.bring_back(sim, s);
                up += 1;
            }
        }
    }
    for i in 0..n {
        churn.bring_back(sim, i);
    }
    for c in load {
        sim.stop_client(c);
    }
    let v = sim.random(10_000);
    sim.one(cmd(v), n)?;
    sim.check_elected_after_heal()?;
    Ok(())
}

/// Starts `count` clients that each Put unique values to their own key, for background load;
/// returns their indices.
fn start_load(sim: &mut Sim, count: usize, ops: u64) -> Vec<usize> {
    (0..count)
        .map(|k| {
            let base = sim.clients() as u64 * 1_000_000;
            let ops = (0..ops)
                .map(|j| Op::Put {
                    key: format!("load{k}"),
                    value: (base + j).to_string(),
                })
                .collect();
            sim.add_client(ops)
        })
        .collect()
}

fn churn(sim: &mut Sim) -> Result<(), Failure> {
    let n = sim.n() as u64;
    let load = start_load(sim, 3, 100_000);
    for _ in 0..20 {
        if sim.random(1000) < 200 {
            let i = sim.random(n) as usize;
            sim.disconnect(i);
        }
        if sim.random(1000) < 500 {
            let i = sim.random(n) as usize;
            sim.restart(i);
            sim.connect(i);
        }
        if sim.random(1000) < 200 {
            let i = sim.random(n) as usize;
            if sim.random(2) == 0 {
                sim.crash(i);
            } else {
                sim.crash_in_fsync(i);
            }
        }
        sim.run_for(ms(700));
        sim.ok()?;
    }
    sim.run_for(ms(1000));
    sim.net.default = LinkConfig::reliable();
    for i in 0..sim.n() {
        sim.restart(i);
        sim.connect(i);
    }
    for c in load {
        sim.stop_client(c);
    }
    sim.run_for(ms(1000));
    let (v, n) = (sim.random(10_000), sim.n());
    sim.one(cmd(v), n)?;
    sim.check_elected_after_heal()?;
    if sim.ops_done() == 0 {
        return sim.failed("progress", "no client operation completed");
    }
    Ok(())
}

fn unreliable_agree(sim: &mut Sim) -> Result<(), Failure> {
    let n = sim.n();
    for iter in 1..50 {
        for j in 0..4 {
            sim.add_client(vec![cmd(100 * iter + j)]);
        }
        sim.one(cmd(iter), 1)?;
    }
    sim.net.default = LinkConfig::reliable();
    sim.one(cmd(100), n)?;
    Ok(())
}

// ---- Lab 3D. ----

/// The lab's bound on a server's log (its `MAXLOGSIZE` of 2000 bytes, in entries here): with a
/// snapshot every 10 entries, a log longer than this was never compacted.
const MAX_LOG_ENTRIES: usize = 50;

fn check_log_sizes(sim: &mut Sim) -> Result<(), Failure> {
    for i in 0..sim.n() {
        let len = sim.state(i).map_or(0, |s| s.log.entries.len());
        if len > MAX_LOG_ENTRIES {
            return sim.failed("log size", format!("S{i} holds {len} entries in its log"));
        }
    }
    Ok(())
}

/// The lab's `snapcommon`: thirty rounds of commands to trigger snapshots, with a victim
/// disconnected or crashed meanwhile so that it catches up by InstallSnapshot.
fn snap_common(sim: &mut Sim, disconnect: bool, crash: bool) -> Result<(), Failure> {
    let n = sim.n();
    let v = sim.random(10_000);
    sim.one(cmd(v), n)?;
    let mut leader1 = sim.check_one_leader()?;
    for i in 0..30 {
        let (sender, victim) = if i % 3 == 1 {
            ((leader1 + 1) % n, leader1)
        } else {
            (leader1, (leader1 + 1) % n)
        };
        if disconnect {
            sim.disconnect(victim);
            let v = sim.random(10_000);
            sim.one(cmd(v), n - 1)?;
        }
        if crash {
            sim.crash(victim);
            let v = sim.random(10_000);
            sim.one(cmd(v), n - 1)?;
        }
        let count = SNAPSHOT_INTERVAL / 2 + sim.random(SNAPSHOT_INTERVAL);
        for _ in 0..count {
            let v = sim.random(10_000);
            sim.start(sender, cmd(v));
        }
        let v = sim.random(10_000);
        let expected = if disconnect || crash { n - 1 } else { n };
        sim.one(cmd(v), expected)?;
        check_log_sizes(sim)?;
        if disconnect || crash {
            sim.restart(victim);
            sim.connect(victim);
            let v = sim.random(10_000);
            sim.one(cmd(v), n)?;
            leader1 = sim.check_one_leader()?;
        }
    }
    Ok(())
}

fn snapshot_basic(sim: &mut Sim) -> Result<(), Failure> {
    snap_common(sim, false, false)
}

fn snapshot_install(sim: &mut Sim) -> Result<(), Failure> {
    snap_common(sim, true, false)
}

fn snapshot_install_crash(sim: &mut Sim) -> Result<(), Failure> {
    snap_common(sim, false, true)
}

/// A snapshot larger than a datagram, on a lossy network: sent whole, all of its ~65 fragments
/// would have to arrive (0.9^65, about 0.1% a try); acknowledged fragment by fragment, each
/// loss costs a resend. The follower must hold the last write within `one`'s 10 s.
fn snapshot_install_large(sim: &mut Sim) -> Result<(), Failure> {
    let n = sim.n();
    let leader = sim.check_one_leader()?;
    let victim = (leader + 1) % n;
    sim.disconnect(victim);
    let clients: Vec<usize> = (0..4)
        .map(|c| {
            let ops = (0..500)
                .map(|i| {
                    put(
                        &format!("c{c}-{i}"),
                        &format!("{c}-{i}-").repeat(1000)[..1_900],
                    )
                })
                .collect();
            sim.add_client(ops)
        })
        .collect();
    let done = sim.run_until(secs(300), |s| clients.iter().all(|&c| s.client_done(c)));
    sim.ok()?;
    if !done {
        return sim.failed("progress", "the clients did not finish within 300 s");
    }
    sim.connect(victim);
    let v = sim.random(10_000);
    sim.one(cmd(v), n)?;
    Ok(())
}

fn snapshot_init(sim: &mut Sim) -> Result<(), Failure> {
    let n = sim.n();
    let v = sim.random(10_000);
    sim.one(cmd(v), n)?;
    for _ in 0..=SNAPSHOT_INTERVAL {
        let v = sim.random(10_000);
        sim.one(cmd(v), 1)?;
    }
    for _ in 0..2 {
        for i in 0..n {
            sim.crash(i);
        }
        for i in 0..n {
            sim.restart(i);
        }
        let v = sim.random(10_000);
        sim.one(cmd(v), n)?;
    }
    Ok(())
}

// ---- Lab 4A. ----

/// Client `c`'s operations: appends of unique values to its own key, each followed by a read
/// (the lab's clients check that a read shows every append so far, in order).
fn append_get_ops(c: usize, count: usize) -> Vec<Op> {
    let key = format!("k{c}");
    (0..count)
        .flat_map(|j| {
            [
                Op::Append {
                    key: key.clone(),
                    value: format!("x {c} {j} y"),
                },
                Op::Get { key: key.clone() },
            ]
        })
        .collect()
}

/// Runs `clients` appending clients for `secs` seconds, then stops them; fails if one of
/// them completed nothing.
fn kv_generic(sim: &mut Sim, clients: usize, secs_: u64) -> Result<(), Failure> {
    let first = sim.clients();
    for c in 0..clients {
        sim.add_client(append_get_ops(c, 100_000));
    }
    sim.run_for(secs(secs_));
    sim.ok()?;
    for c in first..first + clients {
        sim.stop_client(c);
        if sim.client_results(c) == 0 {
            return sim.failed(
                "progress",
                format!("client {} completed nothing", c - first),
            );
        }
    }
    Ok(())
}

fn kv_concurrent(sim: &mut Sim) -> Result<(), Failure> {
    kv_generic(sim, 5, 15)
}

/// Raft thesis §6.3: the servers keep 3 sessions while a new client joins every half second for
/// 10 s, each appending 5 times to its own key and reading its predecessor's, over an
/// unreliable network.
/// Older sessions expire while their requests are being retried; a retry must then be refused,
/// never applied again (the run's linearizability check sees a second application), and the
/// refused operation stays unanswered in the history. The newest sessions, never expired, must
/// finish; at least one session must have expired, or the run exercised nothing.
fn kv_session_expiry(sim: &mut Sim) -> Result<(), Failure> {
    let first = sim.clients();
    let joining = 20;
    for c in 0..joining {
        // Each client appends to its own key and reads the one before it: a second
        // application of an expired append shows to that reader, and one writer per key keeps
        // the unanswered operations from multiplying the linearizability search.
        let ops = (0..5)
            .flat_map(|j| {
                [
                    Op::Append {
                        key: format!("k{c}"),
                        value: format!("{j};"),
                    },
                    get(&format!("k{}", c.max(1) - 1)),
                ]
            })
            .collect();
        sim.add_client(ops);
        sim.run_for(ms(500));
        sim.ok()?;
    }
    sim.run_for(secs(10));
    sim.ok()?;
    let clients = first..first + joining;
    if !clients.clone().any(|c| sim.client_expired(c)) {
        return sim.failed("sessions", "no session expired: nothing was exercised");
    }
    for c in first + joining - 3..first + joining {
        if sim.client_expired(c) || !sim.client_done(c) {
            return sim.failed(
                "progress",
                format!(
                    "client {} (one of the 3 newest sessions) did not finish",
                    c - first
                ),
            );
        }
    }
    Ok(())
}

/// A client that runs `ops` and stops; fails unless it finished within `limit`.
fn run_ops(sim: &mut Sim, ops: Vec<Op>, limit: Duration) -> Result<usize, Failure> {
    let c = sim.add_client(ops);
    let done = sim.run_until(limit, |s| s.client_done(c));
    sim.ok()?;
    if !done {
        return sim.failed(
            "progress",
            format!("client {c} did not finish within {limit:?}"),
        );
    }
    Ok(c)
}

fn get(key: &str) -> Op {
    Op::Get { key: key.into() }
}

fn put(key: &str, value: &str) -> Op {
    Op::Put {
        key: key.into(),
        value: value.into(),
    }
}

fn kv_one_partition(sim: &mut Sim) -> Result<(), Failure> {
    run_ops(sim, vec![put("1", "13")], secs(10))?;
    let leader = sim.check_one_leader()?;
    let n = sim.n();
    let p1: Vec<usize> = (0..3).map(|k| (leader + k) % n).collect();
    let p2: Vec<usize> = (3..5).map(|k| (leader + k) % n).collect();
    sim.partition(&[p1.clone(), p2.clone()]);
    let c1 = sim.add_client(vec![put("1", "14"), get("1")]);
    sim.restrict_client(c1, &p1);
    let a = sim.add_client(vec![put("1", "15")]);
    sim.restrict_client(a, &p2);
    let b = sim.add_client(vec![get("1")]);
    sim.restrict_client(b, &p2);
    let done = sim.run_until(secs(10), |s| s.client_done(c1));
    sim.ok()?;
    let want = crate::protocol::types::OpResult::Value(Some("14".into()));
    if !done || sim.results(c1).get(1) != Some(&want) {
        return sim.failed("majority side", format!("got {:?}", sim.results(c1)));
    }
    sim.run_for(secs(1));
    if sim.client_results(a) + sim.client_results(b) > 0 {
        return sim.failed("minority side", "an operation completed in the minority");
    }
    sim.heal();
    let both = sim.run_until(secs(10), |s| s.client_done(a) && s.client_done(b));
    sim.ok()?;
    if !both {
        return sim.failed("after heal", "the minority's operations did not complete");
    }
    let c = run_ops(sim, vec![get("1")], secs(10))?;
    let want = crate::protocol::types::OpResult::Value(Some("15".into()));
    if sim.results(c).first() != Some(&want) {
        return sim.failed("after heal", format!("get 1 returned {:?}", sim.results(c)));
    }
    Ok(())
}

/// Splits the servers at random, as the lab's partitioner does.
fn random_partition(sim: &mut Sim) {
    let n = sim.n();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for i in 0..n {
        if sim.random(2) == 0 {
            a.push(i);
        } else {
            b.push(i);
        }
    }
    sim.partition(&[a, b]);
}

/// Runs for `total` while the servers are partitioned at random every 1–1.2 s.
fn with_partitions(sim: &mut Sim, total: Duration) -> Result<(), Failure> {
    let until = sim.now() + total;
    while sim.now() < until {
        random_partition(sim);
        let pause = 1000 + sim.random(200);
        sim.run_for(ms(pause));
        sim.ok()?;
    }
    sim.heal();
    Ok(())
}

fn kv_many_partitions_many_clients(sim: &mut Sim) -> Result<(), Failure> {
    let clients: Vec<usize> = (0..5)
        .map(|c| sim.add_client(append_get_ops(c, 100_000)))
        .collect();
    with_partitions(sim, secs(15))?;
    sim.run_for(secs(2));
    sim.ok()?;
    for c in clients {
        sim.stop_client(c);
        if sim.client_results(c) == 0 {
            return sim.failed("progress", format!("client {c} completed nothing"));
        }
    }
    sim.check_elected_after_heal()?;
    Ok(())
}

/// The lab's linearizability workload: appends of unique values and reads, on keys shared by
/// all clients.
fn shared_key_ops(sim: &mut Sim, c: usize, keys: u64, count: usize) -> Vec<Op> {
    (0..count)
        .map(|j| {
            let key = sim.random(keys).to_string();
            if sim.random(1000) < 500 {
                Op::Append {
                    key,
                    value: format!("x {c} {j} y"),
                }
            } else {
                Op::Get { key }
            }
        })
        .collect()
}

fn kv_persist_partition_unreliable_linearizable(sim: &mut Sim) -> Result<(), Failure> {
    let n = sim.n();
    for _ in 0..3 {
        let first = sim.clients();
        for c in 0..15 {
            let ops = shared_key_ops(sim, c, 15, 10_000);
            sim.add_client(ops);
        }
        with_partitions(sim, secs(5))?;
        for c in first..first + 15 {
            sim.stop_client(c);
        }
        for i in 0..n {
            if sim.random(2) == 0 {
                sim.crash(i);
            } else {
                sim.crash_in_fsync(i);
            }
        }
        sim.run_for(ms(400));
        for i in 0..n {
            sim.restart(i);
        }
    }
    run_ops(sim, vec![get("0")], secs(10))?;
    Ok(())
}

fn kv_snapshot_size(sim: &mut Sim) -> Result<(), Failure> {
    let ops = (0..200)
        .map(|i| put("x", if i % 2 == 0 { "0" } else { "1" }))
        .collect();
    run_ops(sim, ops, secs(60))?;
    // The lab bounds the persisted state by 8 * maxraftstate (1000 bytes): a log compacted
    // every 10 entries and a snapshot of one key stay far below this.
    for i in 0..sim.n() {
        let bytes = sim.disk_bytes(i);
        if bytes > 8_000 {
            return sim.failed("persisted size", format!("S{i}'s disk holds {bytes} bytes"));
        }
    }
    Ok(())
}

fn kv_speed(sim: &mut Sim) -> Result<(), Failure> {
    sim.check_one_leader()?;
    let start = sim.now();
    let ops = (0..1000).map(|j| Op::Append {
        key: "x".into(),
        value: format!("x 0 {j} y"),
    });
    run_ops(sim, ops.collect(), secs(60))?;
    let per_op = (sim.now() - start) / 1000;
    // The lab: at least three operations per heartbeat interval.
    if per_op > ms(100) / 3 {
        return sim.failed(
            "speed",
            format!("{per_op:?} per operation, more than 33 ms"),
        );
    }
    Ok(())
}

fn kv_basic(sim: &mut Sim) -> Result<(), Failure> {
    kv_generic(sim, 1, 15)
}

fn kv_unreliable(sim: &mut Sim) -> Result<(), Failure> {
    kv_generic(sim, 5, 15)
}

// ---- The audit's bug. ----

fn wiped_follower(sim: &mut Sim) -> Result<(), Failure> {
    let n = sim.n();
    for v in 1..=5 {
        sim.one(cmd(v), n)?;
    }
    let leader = sim.check_one_leader()?;
    let wiped = (leader + 1) % n;
    sim.wipe_and_restart(wiped);
    // All n: the wiped follower must hold and commit the new command too.
    let index = sim.one(cmd(6), n)?;
    let caught_up = sim.run_until(secs(5), |s| {
        s.state(wiped).is_some_and(|st| st.commit_index >= index)
    });
    if !caught_up {
        let commit = sim.state(wiped).map_or(0, |s| s.commit_index);
        return sim.failed(
            "wiped follower catches up",
            format!(
                "S{wiped} is stuck at commit {commit} under the leader (index {index} committed)"
            ),
        );
    }
    Ok(())
}

// ---- Running one. ----

/// Runs `scenario` on `seed` (with `bug` injected, and every trace row kept if `full_trace`):
/// its assertions, the properties on every state, then linearizability of the history.
pub fn run(scenario: &Scenario, seed: u64, bug: Option<Bug>, full_trace: bool) -> Outcome {
    run_recorded(scenario, seed, bug, full_trace, &|_| {}).0
}

/// Runs `scenario` on `seed` as [`run`] does, recording every handler its nodes ran (as `node
/// --trace` does), and writes them as a model file (`sim::emit`) titled `title`. Recording
/// draws nothing from the run's generator, so the run is the one [`run`] makes.
pub fn emit_model(
    scenario: &Scenario,
    seed: u64,
    bug: Option<Bug>,
) -> (Outcome, Result<crate::sim::emit::Emitted, String>) {
    let (outcome, sim) = run_recorded(scenario, seed, bug, false, &|c| c.record_events = true);
    let Some(sim) = sim else {
        return (outcome, Err("the cluster never started".into()));
    };
    let mut title = format!("sim --scenario {} --seed {seed}", scenario.name);
    if let Some(b) = bug {
        let name = crate::sim::emit::bug_name(b).unwrap_or_else(|_| format!("{b:?}"));
        title.push_str(&format!(" --bug {name}"));
    }
    match outcome.failures.first() {
        Some(f) => title.push_str(&format!(": FAILED {}: {}", f.check, f.detail)),
        None => title.push_str(": every check passed"),
    }
    let emitted = crate::sim::emit::model_file(sim.config(), &title, &sim.events());
    (outcome, emitted)
}

/// Runs `scenario` on `seed` as [`run`] does, recording its last `steps` steps, and draws them
/// as a sequence diagram titled with the verdict. Recording labels datagrams but draws nothing
/// from the run's generator, so the run is the one [`run`] makes on the same seed.
pub fn draw(scenario: &Scenario, seed: u64, bug: Option<Bug>, steps: usize) -> (Outcome, Drawing) {
    let (outcome, sim) = run_recorded(scenario, seed, bug, false, &|c| c.diagram = Some(steps));
    let title = match outcome.failures.first() {
        Some(f) => format!("{} seed {seed}: {} violated", scenario.name, f.check),
        None => format!("{} seed {seed}: every check passed", scenario.name),
    };
    let mut ending = Ending {
        title: Some(title),
        lines: outcome.failures.iter().map(|f| f.detail.clone()).collect(),
        ..Ending::default()
    };
    let drawing = match sim.as_ref().and_then(|s| s.picture()) {
        Some(p) => p.draw(&ending),
        None => {
            ending.lines.push("the cluster never started".into());
            Picture::default().draw(&ending)
        }
    };
    (outcome, drawing)
}

/// [`run`], with what `record` turns on (a diagram, the events); the simulation too, unless
/// it could not be set up.
fn run_recorded(
    scenario: &Scenario,
    seed: u64,
    bug: Option<Bug>,
    full_trace: bool,
    record: &dyn Fn(&mut SimConfig),
) -> (Outcome, Option<Sim>) {
    let mut cfg = SimConfig::new(scenario.servers, seed);
    (scenario.configure)(&mut cfg);
    cfg.bug = bug;
    cfg.full_trace = full_trace;
    record(&mut cfg);
    let mut sim = match Sim::new(cfg) {
        Ok(sim) => sim,
        Err(e) => return (setup_failed(seed, e), None),
    };
    let _ = (scenario.run)(&mut sim);
    if sim.failure().is_none() {
        sim.check_now();
    }
    if sim.failure().is_none() {
        if let Some(why) = linearizability::check(sim.history()) {
            sim.fail(Failure::new("linearizability", why));
        }
    }
    let failures: Vec<Failure> = sim.failure().cloned().into_iter().collect();
    let mut text = summary(seed, &sim, &failures);
    if full_trace || !failures.is_empty() {
        text.push_str(&render_trace(&sim.trace()));
    }
    let outcome = Outcome {
        seed,
        failures,
        virtual_time: sim.now(),
        ops: sim.ops_done(),
        elected_after_heal: sim.elected_after_heal(),
        text,
    };
    (outcome, Some(sim))
}

fn setup_failed(seed: u64, e: String) -> Outcome {
    Outcome {
        seed,
        failures: vec![Failure::new("setup", e.clone())],
        virtual_time: Duration::ZERO,
        ops: 0,
        elected_after_heal: None,
        text: format!("seed {seed}: FAILED setup: {e}\n"),
    }
}

fn summary(seed: u64, sim: &Sim, failures: &[Failure]) -> String {
    let verdict = match failures.first() {
        None => "ok".to_string(),
        Some(f) => format!("FAILED {}: {}", f.check, f.detail),
    };
    let elected = sim
        .elected_after_heal()
        .map_or("no leader since".into(), |d| {
            format!("leader {:.3}s after", d.as_secs_f64())
        });
    format!(
        "seed {seed}: {verdict} ({:.3} virtual s, {} ops, {elected} the last heal at {:.3}s)\n",
        sim.now().as_secs_f64(),
        sim.ops_done(),
        sim.last_heal().as_secs_f64()
    )
}

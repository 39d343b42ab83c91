//! Local clusters of node processes on 127.0.0.1 (for `cluster`, `bench` and the tests): free
//! ports, the `node` binary, and starting, killing and reaping the processes; and the peers file
//! that lets `cluster --data DIR` start again on the same addresses.

use crate::net::wire;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// `n` distinct free UDP ports on 127.0.0.1 (bound to port 0 first, then released).
pub fn free_local_addrs(n: usize) -> Result<Vec<SocketAddr>, String> {
    let sockets = (0..n)
        .map(|_| UdpSocket::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot find a free port: {e}"))?;
    sockets
        .iter()
        .map(|s| s.local_addr().map_err(|e| format!("local_addr: {e}")))
        .collect()
}

/// The `--peers` argument naming `peers`, to pass to nodes and to print for clients.
pub fn peers_string(peers: &[SocketAddr]) -> String {
    peers
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The file in a `cluster --data` directory recording the nodes' addresses, as a `--peers`
/// string. The cluster id, and so every node's stored state, derives from those addresses: a
/// restart on other ports would find state "of another cluster" and refuse it.
pub const PEERS_FILE: &str = "peers";

/// The addresses of a cluster kept in `data`: those recorded in `data/peers` when it exists
/// (checked against `nodes` and `base_port`, where given), else `nodes` (default 3) new ones,
/// from `base_port` up or free ephemeral ports. Call [`save_peers`] once the choice is made.
pub fn cluster_peers(
    data: &Path,
    nodes: Option<usize>,
    base_port: Option<u16>,
) -> Result<Vec<SocketAddr>, String> {
    let file = data.join(PEERS_FILE);
    match std::fs::read_to_string(&file) {
        Ok(text) => {
            let peers = wire::parse_peers(text.trim())
                .map_err(|e| format!("{} is malformed ({e}); fix or remove it", file.display()))?;
            check_recorded(&file, &peers, nodes, base_port)?;
            Ok(peers)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if data.join("node0").exists() {
                return Err(format!(
                    "{} holds node data but no {PEERS_FILE} file, so its addresses are unknown: \
                     write them there (ADDR0,ADDR1,...) or use another directory",
                    data.display()
                ));
            }
            let n = nodes.unwrap_or(3);
            match base_port {
                Some(p) => port_range(p, n),
                None => free_local_addrs(n),
            }
        }
        Err(e) => Err(format!("cannot read {}: {e}", file.display())),
    }
}

/// Refuses `--nodes` or `--base-port` that disagree with the addresses recorded in `file`.
fn check_recorded(
    file: &Path,
    peers: &[SocketAddr],
    nodes: Option<usize>,
    base_port: Option<u16>,
) -> Result<(), String> {
    if let Some(n) = nodes.filter(|&n| n != peers.len()) {
        return Err(format!(
            "--nodes {n}, but {} records {} nodes (the cluster's size is fixed by its data)",
            file.display(),
            peers.len()
        ));
    }
    if let Some(p) = base_port {
        if port_range(p, peers.len())? != peers {
            return Err(format!(
                "--base-port {p}, but {} records {}: the data belongs to those addresses",
                file.display(),
                peers_string(peers)
            ));
        }
    }
    Ok(())
}

/// `n` addresses on 127.0.0.1 with ports `base`, `base + 1`, ... (all within 1..=65535).
pub fn port_range(base: u16, n: usize) -> Result<Vec<SocketAddr>, String> {
    let last = base as usize + n.saturating_sub(1);
    if base == 0 || last > u16::MAX as usize {
        return Err(format!(
            "--base-port {base} with {n} nodes needs ports {base}..={last}, outside 1..=65535"
        ));
    }
    Ok((0..n)
        .map(|i| SocketAddr::from((Ipv4Addr::LOCALHOST, base + i as u16)))
        .collect())
}

/// Records `peers` in `data/peers` (creating `data`): written to a temporary file, synced and
/// renamed, so that a crash never leaves a half-written file that would stop the next start.
pub fn save_peers(data: &Path, peers: &[SocketAddr]) -> Result<(), String> {
    std::fs::create_dir_all(data).map_err(|e| format!("cannot create {}: {e}", data.display()))?;
    let file = data.join(PEERS_FILE);
    let tmp = data.join(format!("{PEERS_FILE}.tmp"));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(format!("{}\n", peers_string(peers)).as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &file)
    };
    write().map_err(|e| format!("cannot write {}: {e}", file.display()))
}

/// Fails naming the first address of `peers` that cannot be bound now (another process holds
/// it), so a restart says which port is busy instead of a node dying on it.
pub fn check_ports_free(peers: &[SocketAddr]) -> Result<(), String> {
    for (i, addr) in peers.iter().enumerate() {
        UdpSocket::bind(addr)
            .map_err(|e| format!("node {i}'s address {addr} is not free ({e})"))?;
    }
    Ok(())
}

/// The path of a sibling binary (`node`, `client`) next to the running executable.
pub fn sibling_binary(name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let dir = exe
        .parent()
        .ok_or_else(|| "the executable has no directory".to_string())?;
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !path.exists() {
        return Err(format!(
            "{} not found: build it first (cargo build --release --bins)",
            path.display()
        ));
    }
    Ok(path)
}

/// The node flags `cluster` and `bench` pass on to the nodes they start.
#[derive(Clone, Debug, Default)]
pub struct NodeFlags {
    /// `--snapshot-after`.
    pub snapshot_after: u64,
    /// `--max-db-bytes`, when given (else the node's default).
    pub max_db_bytes: Option<u64>,
    /// `--max-sessions`, when given (else the node's default).
    pub max_sessions: Option<usize>,
    /// `--peer-key` and `--client-key`, when the keys are split.
    pub split_keys: Option<(PathBuf, PathBuf)>,
}

impl NodeFlags {
    /// The flags as arguments of `node`.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![
            "--snapshot-after".to_string(),
            self.snapshot_after.to_string(),
        ];
        if let Some(bytes) = self.max_db_bytes {
            args.extend(["--max-db-bytes".to_string(), bytes.to_string()]);
        }
        if let Some(n) = self.max_sessions {
            args.extend(["--max-sessions".to_string(), n.to_string()]);
        }
        if let Some((peer, client)) = &self.split_keys {
            args.extend([
                "--peer-key".to_string(),
                peer.display().to_string(),
                "--client-key".to_string(),
                client.display().to_string(),
            ]);
        }
        args
    }
}

/// A local cluster of node processes. Each child exits when its stdin closes, so the nodes die
/// with the process that started them even when it is killed; dropping this kills them too.
pub struct LocalCluster {
    /// The `node` executable each node runs.
    pub node_bin: PathBuf,
    /// Every node's address (free loopback ports), in id order.
    pub peers: Vec<SocketAddr>,
    /// The parent of the nodes' data directories (see [`Self::data_dir`]).
    pub data: PathBuf,
    /// The key file passed to every node, when the cluster runs keyed.
    pub key: Option<PathBuf>,
    /// More arguments for every node (e.g. `--snapshot-after`), so callers can tune the nodes
    /// without a field per flag.
    pub extra_args: Vec<String>,
    /// Where each node binds, when not at its peers address (see `node --bind`).
    pub binds: Option<Vec<SocketAddr>>,
    /// Discard the nodes' stderr (else they share ours).
    pub quiet: bool,
    /// Each node's process; `None` while it is not running (not started, killed or exited).
    pub children: Vec<Option<Child>>,
}

impl LocalCluster {
    /// A cluster of `n` nodes on free loopback ports, none of them started yet.
    pub fn new(
        node_bin: PathBuf,
        n: usize,
        data: &Path,
        key: Option<PathBuf>,
    ) -> Result<Self, String> {
        Ok(Self::with_peers(node_bin, free_local_addrs(n)?, data, key))
    }

    /// A cluster of nodes at `peers` (e.g. those a restart reuses), none of them started yet.
    pub fn with_peers(
        node_bin: PathBuf,
        peers: Vec<SocketAddr>,
        data: &Path,
        key: Option<PathBuf>,
    ) -> Self {
        let n = peers.len();
        LocalCluster {
            node_bin,
            peers,
            data: data.to_path_buf(),
            key,
            extra_args: Vec::new(),
            quiet: false,
            binds: None,
            children: (0..n).map(|_| None).collect(),
        }
    }

    /// Node `i`'s data directory, so that tests can inspect or damage its files.
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.data.join(format!("node{i}"))
    }

    /// Starts node `i`; again after a kill, it recovers from its data directory (and from its
    /// peers if the directory was emptied).
    pub fn start(&mut self, i: usize) -> Result<(), String> {
        self.start_node(i, false)
    }

    /// Starts node `i`, telling it, when `new_cluster`, that an empty directory may be new.
    fn start_node(&mut self, i: usize, new_cluster: bool) -> Result<(), String> {
        let mut cmd = Command::new(&self.node_bin);
        if new_cluster {
            cmd.args(["--initial-cluster-state", "auto"]);
        }
        cmd.arg("--id")
            .arg(i.to_string())
            .arg("--peers")
            .arg(peers_string(&self.peers))
            .arg("--data")
            .arg(self.data_dir(i))
            .arg("--exit-on-stdin-eof")
            .args(&self.extra_args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null());
        if let Some(binds) = &self.binds {
            cmd.arg("--bind").arg(binds[i].to_string());
        }
        if self.quiet {
            cmd.stderr(Stdio::null());
        }
        if let Some(key) = &self.key {
            cmd.arg("--key").arg(key);
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.node_bin.display()))?;
        self.children[i] = Some(child);
        Ok(())
    }

    /// Starts every node. When no node has a data directory with anything in it yet, the
    /// cluster is brand new: its nodes start with `--initial-cluster-state auto`, ask each other,
    /// and start as new together (a directory emptied later is recovered, never new).
    pub fn start_all(&mut self) -> Result<(), String> {
        let is_empty = |d: PathBuf| std::fs::read_dir(d).map_or(true, |mut e| e.next().is_none());
        let new_cluster = (0..self.peers.len()).all(|i| is_empty(self.data_dir(i)));
        (0..self.peers.len()).try_for_each(|i| self.start_node(i, new_cluster))
    }

    /// SIGKILL (no chance to clean up) and reap.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills every node, as dropping the cluster does.
    pub fn kill_all(&mut self) {
        (0..self.peers.len()).for_each(|i| self.kill(i));
    }

    /// Which children have exited, with their status (reaping them).
    pub fn exited(&mut self) -> Vec<(usize, std::process::ExitStatus)> {
        let mut out = Vec::new();
        for (i, slot) in self.children.iter_mut().enumerate() {
            if let Some(child) = slot {
                if let Ok(Some(status)) = child.try_wait() {
                    out.push((i, status));
                    *slot = None;
                }
            }
        }
        out
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("raft-peers-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn port_range_stays_within_the_port_space() {
        let r = port_range(65533, 3).unwrap();
        assert_eq!(
            peers_string(&r),
            "127.0.0.1:65533,127.0.0.1:65534,127.0.0.1:65535"
        );
        assert!(port_range(65534, 3).unwrap_err().contains("65534..=65536"));
        assert!(port_range(0, 1).is_err());
    }

    #[test]
    fn recorded_peers_come_back_and_disagreement_is_refused() {
        let dir = temp("roundtrip");
        let chosen = cluster_peers(&dir, Some(2), Some(7000)).unwrap();
        save_peers(&dir, &chosen).unwrap();
        assert_eq!(cluster_peers(&dir, None, None).unwrap(), chosen);
        assert_eq!(cluster_peers(&dir, Some(2), Some(7000)).unwrap(), chosen);
        assert!(cluster_peers(&dir, Some(3), None)
            .unwrap_err()
            .contains("records 2 nodes"));
        assert!(cluster_peers(&dir, None, Some(7001))
            .unwrap_err()
            .contains("--base-port 7001"));
        std::fs::write(dir.join(PEERS_FILE), "127.0.0.1:7000,127.0.0.1:7000").unwrap();
        assert!(cluster_peers(&dir, None, None)
            .unwrap_err()
            .contains("malformed"));
        std::fs::remove_file(dir.join(PEERS_FILE)).unwrap();
        std::fs::create_dir_all(dir.join("node0")).unwrap();
        assert!(cluster_peers(&dir, None, None)
            .unwrap_err()
            .contains("no peers file"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

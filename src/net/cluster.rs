//! Local clusters of node processes on 127.0.0.1 (for `cluster`, `bench` and the tests): free
//! ports, the `node` binary, and starting, killing and reaping the processes.

use std::net::{SocketAddr, UdpSocket};
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
        Ok(LocalCluster {
            node_bin,
            peers: free_local_addrs(n)?,
            data: data.to_path_buf(),
            key,
            extra_args: Vec::new(),
            quiet: false,
            binds: None,
            children: (0..n).map(|_| None).collect(),
        })
    }

    /// Node `i`'s data directory, so that tests can inspect or damage its files.
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.data.join(format!("node{i}"))
    }

    /// Starts node `i`; again after a kill, it recovers from its data directory.
    pub fn start(&mut self, i: usize) -> Result<(), String> {
        let mut cmd = Command::new(&self.node_bin);
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

    /// Starts every node.
    pub fn start_all(&mut self) -> Result<(), String> {
        (0..self.peers.len()).try_for_each(|i| self.start(i))
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

//! Durable storage of what the server actor `Save`s.
//!
//! ```text
//! "RAFTSTOR" | version u32 | node id u64 | cluster id u64 | payload length u64 | SHA-256 | payload
//! ```
//!
//! (integers little-endian; the SHA-256 covers the header fields and the payload; the payload is
//! the JSON of [`Storage`].) A save writes a temporary file, fsyncs it, renames it over the state
//! file and fsyncs the directory, so the file is always either the old or the new state. On start
//! a missing file means a fresh node; a present but torn, truncated, corrupted or foreign file is
//! an error naming the file: the node must not start empty and forget its votes and log.

use crate::server::Storage;
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"RAFTSTOR";
const VERSION: u32 = 1;
const HEADER_LEN: usize = 8 + 4 + 8 + 8 + 8;
const DIGEST_LEN: usize = 32;
pub const STATE_FILE: &str = "raft-state";

pub struct DurableStorage {
    dir: PathBuf,
    path: PathBuf,
    tmp: PathBuf,
    node: u64,
    cluster: u64,
}

impl DurableStorage {
    /// Opens (creating if needed) the data directory of node `node` of cluster `cluster`.
    pub fn open(dir: &Path, node: u64, cluster: u64) -> Result<Self, String> {
        fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create data directory {}: {e}", dir.display()))?;
        Ok(DurableStorage {
            dir: dir.to_path_buf(),
            path: dir.join(STATE_FILE),
            tmp: dir.join(format!("{STATE_FILE}.tmp")),
            node,
            cluster,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved state, `None` for a fresh node, or an error naming the file.
    pub fn load(&self) -> Result<Option<Storage>, String> {
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(format!(
                    "cannot read state file {}: {e}",
                    self.path.display()
                ))
            }
        };
        decode(&bytes, self.node, self.cluster)
            .map(Some)
            .map_err(|why| {
                format!(
                    "state file {} is unusable ({why}); refusing to start. Restore it from a \
                     backup, or remove the data directory to rejoin as a new empty server only if \
                     you know this loses no acknowledged data",
                    self.path.display()
                )
            })
    }

    /// Makes `storage` durable: temp file, fsync, rename, fsync the directory.
    pub fn save(&self, storage: &Storage) -> Result<(), String> {
        let bytes = encode(storage, self.node, self.cluster)?;
        let ctx = |what: &str, e: std::io::Error| format!("{what} {}: {e}", self.tmp.display());
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&self.tmp)
            .map_err(|e| ctx("cannot create", e))?;
        f.write_all(&bytes).map_err(|e| ctx("cannot write", e))?;
        f.sync_all().map_err(|e| ctx("cannot fsync", e))?;
        drop(f);
        fs::rename(&self.tmp, &self.path).map_err(|e| {
            format!(
                "cannot rename {} to {}: {e}",
                self.tmp.display(),
                self.path.display()
            )
        })?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| format!("cannot fsync directory {}: {e}", self.dir.display()))
    }
}

fn encode(storage: &Storage, node: u64, cluster: u64) -> Result<Vec<u8>, String> {
    let payload =
        serde_json::to_vec(storage).map_err(|e| format!("cannot encode the state: {e}"))?;
    let mut out = Vec::with_capacity(HEADER_LEN + DIGEST_LEN + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&node.to_le_bytes());
    out.extend_from_slice(&cluster.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    let digest = Sha256::new()
        .chain_update(&out)
        .chain_update(&payload)
        .finalize();
    out.extend_from_slice(&digest);
    out.extend_from_slice(&payload);
    Ok(out)
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

fn decode(bytes: &[u8], node: u64, cluster: u64) -> Result<Storage, String> {
    if bytes.len() < HEADER_LEN + DIGEST_LEN {
        return Err(format!(
            "truncated: {} bytes, header alone is {}",
            bytes.len(),
            HEADER_LEN + DIGEST_LEN
        ));
    }
    if &bytes[..8] != MAGIC {
        return Err("bad magic: not a raft state file".into());
    }
    let mut v = [0u8; 4];
    v.copy_from_slice(&bytes[8..12]);
    let version = u32::from_le_bytes(v);
    if version != VERSION {
        return Err(format!("format version {version}, expected {VERSION}"));
    }
    let file_node = le_u64(&bytes[12..20]);
    let file_cluster = le_u64(&bytes[20..28]);
    let len = le_u64(&bytes[28..36]);
    let body = &bytes[HEADER_LEN + DIGEST_LEN..];
    if len != body.len() as u64 {
        return Err(format!(
            "truncated or torn: header says {len} payload bytes, file has {}",
            body.len()
        ));
    }
    let digest = Sha256::new()
        .chain_update(&bytes[..HEADER_LEN])
        .chain_update(body)
        .finalize();
    if digest.as_slice() != &bytes[HEADER_LEN..HEADER_LEN + DIGEST_LEN] {
        return Err("checksum mismatch: the file is corrupted".into());
    }
    if file_node != node {
        return Err(format!(
            "it belongs to server {file_node}, not server {node}"
        ));
    }
    if file_cluster != cluster {
        return Err(format!(
            "it belongs to cluster {file_cluster:016x}, not {cluster:016x} (different --peers)"
        ));
    }
    serde_json::from_slice(body).map_err(|e| format!("undecodable payload: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::Log;

    #[test]
    fn round_trip_and_every_corruption_is_refused() {
        let dir = std::env::temp_dir().join(format!("raft-storage-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let st = DurableStorage::open(&dir, 1, 99).unwrap();
        assert_eq!(st.load().unwrap(), None);
        let storage = Storage {
            term: 3,
            voted_for: Some(2),
            log: Log::default(),
            snapshot: None,
        };
        st.save(&storage).unwrap();
        assert_eq!(st.load().unwrap(), Some(storage.clone()));
        let good = fs::read(st.path()).unwrap();
        for cut in 0..good.len() {
            fs::write(st.path(), &good[..cut]).unwrap();
            let err = st.load().unwrap_err();
            assert!(err.contains(&st.path().display().to_string()), "{err}");
        }
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            fs::write(st.path(), &bad).unwrap();
            assert!(st.load().is_err(), "flipping byte {i} went unnoticed");
        }
        fs::write(st.path(), &good).unwrap();
        assert!(DurableStorage::open(&dir, 2, 99).unwrap().load().is_err());
        assert!(DurableStorage::open(&dir, 1, 98).unwrap().load().is_err());
        let _ = fs::remove_dir_all(&dir);
    }
}

//! The datagram format of the UDP deployment.
//!
//! ```text
//! "RKV" | version (1 byte) | flags (1 byte, bit 0: MAC present) | JSON envelope | [HMAC-SHA256, 32 bytes]
//! ```
//!
//! The envelope names the cluster (a hash of the sorted peer list, so datagrams from another
//! cluster are refused), the sender (a server index `0..n`, or a client session id
//! `>= CLIENT_ID_MIN`), and a body: a protocol [`Msg`] handed unchanged to the actor, or a
//! runtime-level status query that never reaches the actor. With a key, the MAC covers every byte
//! before it; without a key no MAC is sent or accepted, and anyone who can reach the port can
//! forge messages (insecure: use only on a trusted network).

use crate::types::{Command, Msg};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;

pub const MAGIC: &[u8; 3] = b"RKV";
pub const WIRE_VERSION: u8 = 1;
const FLAG_MAC: u8 = 1;
const HEADER_LEN: usize = 5;
pub const MAC_LEN: usize = 32;
/// No datagram larger than this is sent or accepted.
pub const MAX_DATAGRAM: usize = 60 * 1024;
/// Largest client command (its JSON encoding) a server accepts: with
/// [`MAX_ENTRIES_PER_APPEND`] of them an AppendEntries still fits in [`MAX_DATAGRAM`].
pub const MAX_COMMAND_BYTES: usize = 2048;
/// Entries per AppendEntries: 24 × (2048 + per-entry overhead) + envelope < 60 KiB.
pub const MAX_ENTRIES_PER_APPEND: usize = 24;
/// Client session ids start here, so they never collide with server indexes.
pub const CLIENT_ID_MIN: u64 = 1_000_000;

type HmacSha256 = Hmac<Sha256>;

/// What a node reports about itself (the `status` query).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub id: u64,
    pub role: String,
    pub term: u64,
    pub leader: Option<u64>,
    pub voted_for: Option<u64>,
    pub commit_index: u64,
    pub last_applied: u64,
    /// Index of the last log entry (compacted entries included).
    pub log_len: u64,
    pub snapshot_index: u64,
    pub counters: Counters,
}

/// Datagrams dropped (by reason) and handled, since the node started.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    pub received: u64,
    pub sent: u64,
    pub malformed: u64,
    pub oversize: u64,
    pub wrong_version: u64,
    pub bad_mac: u64,
    pub wrong_cluster: u64,
    pub unknown_sender: u64,
    pub oversize_command: u64,
    pub oversize_out: u64,
    pub no_route: u64,
    pub send_errors: u64,
    pub saves: u64,
    /// Server messages not sent, or not delivered to the actor, because a later one of the same
    /// round (to or from the same server) carries everything they do.
    pub coalesced_out: u64,
    pub coalesced_in: u64,
}

impl Counters {
    pub fn count(&mut self, e: &DecodeError) {
        match e {
            DecodeError::Malformed(_) => self.malformed += 1,
            DecodeError::Oversize => self.oversize += 1,
            DecodeError::WrongVersion(_) => self.wrong_version += 1,
            DecodeError::BadMac => self.bad_mac += 1,
            DecodeError::WrongCluster(_) => self.wrong_cluster += 1,
        }
    }

    pub fn dropped(&self) -> u64 {
        self.malformed
            + self.oversize
            + self.wrong_version
            + self.bad_mac
            + self.wrong_cluster
            + self.unknown_sender
            + self.oversize_command
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Body {
    /// A protocol message, delivered to the actor as is.
    Raft(Msg),
    /// Runtime-level: "tell me your state"; answered by the runtime, not the actor.
    StatusRequest {
        nonce: u64,
    },
    StatusResponse {
        nonce: u64,
        status: NodeStatus,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub cluster: u64,
    pub from: u64,
    pub body: Body,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    Malformed(String),
    Oversize,
    WrongVersion(u8),
    BadMac,
    WrongCluster(u64),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Malformed(why) => write!(f, "malformed datagram: {why}"),
            DecodeError::Oversize => write!(f, "datagram over {MAX_DATAGRAM} bytes"),
            DecodeError::WrongVersion(v) => write!(f, "wire version {v}, expected {WIRE_VERSION}"),
            DecodeError::BadMac => write!(f, "missing or wrong MAC"),
            DecodeError::WrongCluster(c) => write!(f, "cluster id {c:016x} is not ours"),
        }
    }
}

/// The shared secret of a cluster (`--key FILE`).
#[derive(Clone)]
pub struct Key(Vec<u8>);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key(<{} bytes>)", self.0.len())
    }
}

impl Key {
    /// Reads a key file: its contents, surrounding whitespace trimmed, at least 16 bytes.
    pub fn from_file(path: &Path) -> Result<Key, String> {
        let bytes = std::fs::read(path)
            .map_err(|e| format!("cannot read key file {}: {e}", path.display()))?;
        let key = bytes.trim_ascii().to_vec();
        if key.len() < 16 {
            return Err(format!(
                "key file {} holds {} bytes; at least 16 are needed",
                path.display(),
                key.len()
            ));
        }
        Ok(Key(key))
    }

    pub fn from_bytes(bytes: &[u8]) -> Key {
        Key(bytes.to_vec())
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.0).expect("HMAC accepts keys of any length")
    }
}

/// Encodes an envelope; `None` if it would exceed [`MAX_DATAGRAM`].
pub fn encode(env: &Envelope, key: Option<&Key>) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(MAGIC);
    buf.push(WIRE_VERSION);
    buf.push(if key.is_some() { FLAG_MAC } else { 0 });
    serde_json::to_writer(&mut buf, env).ok()?;
    if let Some(key) = key {
        let mut mac = key.mac();
        mac.update(&buf);
        buf.extend_from_slice(&mac.finalize().into_bytes());
    }
    (buf.len() <= MAX_DATAGRAM).then_some(buf)
}

/// Checks and decodes a datagram. Never panics, whatever the bytes.
pub fn decode(bytes: &[u8], key: Option<&Key>, cluster: u64) -> Result<Envelope, DecodeError> {
    if bytes.len() > MAX_DATAGRAM {
        return Err(DecodeError::Oversize);
    }
    if bytes.len() < HEADER_LEN || &bytes[..3] != MAGIC {
        return Err(DecodeError::Malformed("bad header".into()));
    }
    if bytes[3] != WIRE_VERSION {
        return Err(DecodeError::WrongVersion(bytes[3]));
    }
    let has_mac = bytes[4] & FLAG_MAC != 0;
    if bytes[4] & !FLAG_MAC != 0 {
        return Err(DecodeError::Malformed("unknown flags".into()));
    }
    let payload = match (key, has_mac) {
        (Some(key), true) => {
            if bytes.len() < HEADER_LEN + MAC_LEN {
                return Err(DecodeError::BadMac);
            }
            let (signed, tag) = bytes.split_at(bytes.len() - MAC_LEN);
            let mut mac = key.mac();
            mac.update(signed);
            mac.verify_slice(tag).map_err(|_| DecodeError::BadMac)?;
            &signed[HEADER_LEN..]
        }
        // A keyed node refuses unsigned datagrams; an unkeyed one refuses signed ones (the
        // sender was configured with a key this node does not have).
        (Some(_), false) | (None, true) => return Err(DecodeError::BadMac),
        (None, false) => &bytes[HEADER_LEN..],
    };
    let env: Envelope =
        serde_json::from_slice(payload).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if env.cluster != cluster {
        return Err(DecodeError::WrongCluster(env.cluster));
    }
    Ok(env)
}

/// The size of a client command as it travels in a log entry.
pub fn command_size(command: &Command) -> usize {
    serde_json::to_vec(command).map_or(usize::MAX, |v| v.len())
}

/// 64-bit FNV-1a.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// The cluster id: a hash of the sorted peer list, so two clusters never accept each other's
/// datagrams (the order of `--peers`, which fixes the server ids, still has to agree).
pub fn cluster_id(peers: &[SocketAddr]) -> u64 {
    let mut names: Vec<String> = peers.iter().map(|p| p.to_string()).collect();
    names.sort();
    fnv1a(names.join(",").as_bytes())
}

/// Parses `ADDR0,ADDR1,...`; names are resolved once, here.
pub fn parse_peers(s: &str) -> Result<Vec<SocketAddr>, String> {
    let mut peers = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let addr = part
            .to_socket_addrs()
            .map_err(|e| format!("bad peer address {part:?}: {e}"))?
            .next()
            .ok_or_else(|| format!("peer address {part:?} resolves to nothing"))?;
        if peers.contains(&addr) {
            return Err(format!("peer address {addr} is listed twice"));
        }
        peers.push(addr);
    }
    if peers.is_empty() {
        return Err("--peers lists no address".into());
    }
    if peers.len() > 64 {
        return Err("at most 64 servers are supported".into());
    }
    Ok(peers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Envelope {
        Envelope {
            cluster: 7,
            from: 1,
            body: Body::StatusRequest { nonce: 3 },
        }
    }

    #[test]
    fn round_trip_and_rejections() {
        let key = Key::from_bytes(b"0123456789abcdef");
        let other = Key::from_bytes(b"fedcba9876543210");
        let signed = encode(&env(), Some(&key)).unwrap();
        assert_eq!(decode(&signed, Some(&key), 7), Ok(env()));
        assert_eq!(decode(&signed, Some(&other), 7), Err(DecodeError::BadMac));
        assert_eq!(decode(&signed, None, 7), Err(DecodeError::BadMac));
        assert_eq!(
            decode(&signed[..signed.len() - 1], Some(&key), 7),
            Err(DecodeError::BadMac)
        );
        let plain = encode(&env(), None).unwrap();
        assert_eq!(decode(&plain, None, 7), Ok(env()));
        assert_eq!(decode(&plain, Some(&key), 7), Err(DecodeError::BadMac));
        assert_eq!(decode(&plain, None, 8), Err(DecodeError::WrongCluster(7)));
        let mut v2 = plain.clone();
        v2[3] = 2;
        assert_eq!(decode(&v2, None, 7), Err(DecodeError::WrongVersion(2)));
        for cut in 0..plain.len() {
            assert!(decode(&plain[..cut], None, 7).is_err());
        }
        assert!(matches!(
            decode(&[0xff; 10], None, 7),
            Err(DecodeError::Malformed(_))
        ));
        assert_eq!(
            decode(&vec![0; MAX_DATAGRAM + 1], None, 7),
            Err(DecodeError::Oversize)
        );
    }
}

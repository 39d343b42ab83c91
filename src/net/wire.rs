//! The datagram format of the UDP deployment, and everything that must agree on it: encoding
//! and authentication, fragmentation and reassembly, the status query's types and counters, the
//! size limits, peer lists and the cluster id.
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
//!
//! A message whose encoding does not fit in one datagram ([`MAX_DATAGRAM`], e.g. an
//! InstallSnapshot of a large state machine) travels in fragments (flags bit 1):
//!
//! ```text
//! "RKV" | version | flags (bit 0: MAC, bit 1: fragment) | cluster u64 | from u64 | message id u64
//!       | FNV-1a of the whole envelope u64 | total length u32 | index u16 | count u16 | chunk
//!       | [HMAC-SHA256]
//! ```
//!
//! (Integers little-endian.) Each fragment is a datagram of its own, within [`MAX_DATAGRAM`],
//! MAC'd like any other; the chunks, in index order, are the JSON envelope. The receiver
//! ([`Reassembler`]) keeps partial messages per sender under strict bounds (total size at most
//! [`MAX_MESSAGE`], at most [`MAX_FRAGMENTS`] fragments, [`MAX_PARTIALS`] partial messages and
//! [`MAX_MESSAGE`] buffered bytes per sender, partials dropped when no new piece came for
//! [`FRAGMENT_TTL`]); a fragment that contradicts the others of its message drops the whole
//! partial message.
//!
//! Between servers (an InstallSnapshot of any size, Figure 13's chunks) the transfer is
//! acknowledged per fragment: the receiver answers each fragment with a
//! [`Body::FragmentAck`] naming how many of the message's fragments it holds from the first on,
//! and the sender (`net::node`) keeps a window of fragments in flight beyond that, resending
//! from the first unacknowledged one when no acknowledgement came for a while. A lost fragment
//! costs one resend, not the message. (Client replies, which are rarely fragmented, are not
//! acknowledged: a lost fragment loses the reply and the client retries.)

use crate::protocol::types::{Command, Msg};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;

/// The first bytes of every datagram: anything else reaching the port is refused at once.
pub const MAGIC: &[u8; 3] = b"RKV";
/// The format version after [`MAGIC`]: nodes of another format are refused, not misread.
pub const WIRE_VERSION: u8 = 1;
const FLAG_MAC: u8 = 1;
const FLAG_FRAGMENT: u8 = 2;
const HEADER_LEN: usize = 5;
/// Bytes of the HMAC-SHA256 tag that ends a datagram when the cluster has a key.
pub const MAC_LEN: usize = 32;
/// No datagram larger than this is sent or accepted: below UDP's 65,507-byte payload limit, with
/// room to spare.
pub const MAX_DATAGRAM: usize = 60 * 1024;
/// cluster | from | message id | digest | total | index | count.
const FRAGMENT_HEADER_LEN: usize = 8 + 8 + 8 + 8 + 4 + 2 + 2;
/// The most message bytes one fragment carries.
pub const MAX_CHUNK: usize = MAX_DATAGRAM - HEADER_LEN - FRAGMENT_HEADER_LEN - MAC_LEN;
/// No message (its JSON envelope) larger than this is sent or reassembled: 256 MiB, so a
/// snapshot of the default store quota (half of it) and its session table always fit.
pub const MAX_MESSAGE: usize = 256 << 20;
/// The most fragments of one message: enough for [`MAX_MESSAGE`] in full chunks.
pub const MAX_FRAGMENTS: usize = MAX_MESSAGE.div_ceil(MAX_CHUNK);
/// Partial messages kept per sender; beyond this the oldest is dropped.
pub const MAX_PARTIALS: usize = 4;
/// A partial message that gets no new piece for this long is dropped.
pub const FRAGMENT_TTL: std::time::Duration = std::time::Duration::from_secs(5);
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
    /// The node's server index, so a reply can be matched to the peer asked.
    pub id: u64,
    /// `leader`, `candidate` or `follower`: who to ask, and whether an election is on.
    pub role: String,
    /// The node's current term, to compare nodes and spot a stuck election.
    pub term: u64,
    /// The leader the node believes in, if any, as of its current term.
    pub leader: Option<u64>,
    /// Whom the node voted for in its current term (durable state, shown for diagnosis).
    pub voted_for: Option<u64>,
    /// Highest log index known committed: how far the cluster has agreed.
    pub commit_index: u64,
    /// Highest log index applied to the key/value store: how far reads reflect.
    pub last_applied: u64,
    /// Index of the last log entry (compacted entries included).
    pub log_len: u64,
    /// Last index folded into the snapshot (0 if none): how far the log was compacted.
    pub snapshot_index: u64,
    /// True while the node recovers from damaged storage: it neither votes nor stands for
    /// election until a leader has repaired its log.
    #[serde(default)]
    pub recovering: bool,
    /// What the node dropped and handled since it started, to diagnose a sick network or peer.
    pub counters: Counters,
}

/// Datagrams dropped (by reason) and handled, since the node started.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    /// Datagrams received, whatever became of them: the base the drops are a share of.
    pub received: u64,
    /// Datagrams the socket accepted for sending.
    pub sent: u64,
    /// Dropped: not a datagram of this format (bad header or flags, undecodable envelope).
    pub malformed: u64,
    /// Dropped: larger than [`MAX_DATAGRAM`], so nothing of it is even parsed.
    pub oversize: u64,
    /// Dropped: another [`WIRE_VERSION`], i.e. a node of another build.
    pub wrong_version: u64,
    /// Dropped: MAC missing or wrong (or present while this node has no key): forged, or a
    /// different `--key`.
    pub bad_mac: u64,
    /// Dropped: another cluster's id, i.e. a node started with different `--peers`.
    pub wrong_cluster: u64,
    /// Dropped: a server's message (or fragment) authenticated with the client key, which
    /// clients hold: only the peer key vouches for a server (`--peer-key`/`--client-key`).
    pub client_key_as_peer: u64,
    /// Dropped: a sender that may not send this (a server message from a non-peer or the wrong
    /// address, a client request under another session id, a reply sent to a server).
    pub unknown_sender: u64,
    /// Dropped: a client command over [`MAX_COMMAND_BYTES`], which could never be replicated.
    pub oversize_command: u64,
    /// Not sent: a message whose encoding exceeds [`MAX_MESSAGE`] even in fragments.
    pub oversize_out: u64,
    /// Not sent: a reply to a client session whose address is unknown (or forgotten).
    pub no_route: u64,
    /// Not sent: the socket refused the datagram.
    pub send_errors: u64,
    /// States made durable (one per round with a save): the fsyncs that group commit shares.
    pub saves: u64,
    /// Server messages not sent because a later one of the same round to the same server
    /// carries everything they do.
    pub coalesced_out: u64,
    /// Server messages not delivered to the actor because a later one of the same round from
    /// the same server carries everything they do.
    pub coalesced_in: u64,
    /// Fragment datagrams sent (each also counts in `sent`).
    pub fragments_out: u64,
    /// Fragment datagrams received (each also counts in `received`).
    pub fragments_in: u64,
    /// Messages sent in fragments because they did not fit in one datagram.
    pub fragmented_out: u64,
    /// Messages reassembled from fragments and handed on.
    pub reassembled: u64,
    /// Fragments dropped for bad fields (count 0 or too many, index out of range, empty chunk,
    /// lengths that cannot add up).
    pub frag_malformed: u64,
    /// Fragments dropped for a declared total over [`MAX_MESSAGE`].
    pub frag_oversize: u64,
    /// Fragments (or completed messages) dropped for contradicting their partial: count, total,
    /// digest, a repeated index with other bytes, a wrong length or digest, an undecodable
    /// envelope.
    pub frag_inconsistent: u64,
    /// Fragments dropped as exact duplicates of one already held (the network repeats).
    pub frag_duplicate: u64,
    /// Fragments dropped because their sender may not send fragments (clients, non-peers).
    pub frag_unknown_sender: u64,
    /// Partial messages dropped unfinished after [`FRAGMENT_TTL`] (a fragment was lost).
    pub frag_expired: u64,
    /// Partial messages dropped unfinished, pushed out by newer ones of the same sender.
    pub frag_evicted: u64,
    /// Fragment acknowledgements sent (one per fragment received from a server).
    pub frag_acks_out: u64,
    /// Fragments sent again because the receiver had not acknowledged them in time.
    pub frag_resent: u64,
    /// Fragmented messages to a server given up (no acknowledgement for a long while, or
    /// replaced by a newer message to that server before it was through).
    pub transfers_abandoned: u64,
    /// InstallSnapshot messages not sent because the same snapshot went to the same server
    /// moments before (it is still in flight or being installed).
    pub snapshot_throttled: u64,
}

impl Counters {
    /// Counts a datagram refused by [`decode_datagram`] under its reason's counter.
    pub fn count(&mut self, e: &DecodeError) {
        match e {
            DecodeError::Malformed(_) => self.malformed += 1,
            DecodeError::Oversize => self.oversize += 1,
            DecodeError::WrongVersion(_) => self.wrong_version += 1,
            DecodeError::BadMac => self.bad_mac += 1,
            DecodeError::WrongCluster(_) => self.wrong_cluster += 1,
        }
    }

    /// Received datagrams refused as bad or unauthorised, all such reasons together: the
    /// `drops` column of `status` (duplicate fragments and expired partials, which a lossy but
    /// honest network produces, are left out).
    pub fn dropped(&self) -> u64 {
        self.malformed
            + self.oversize
            + self.wrong_version
            + self.bad_mac
            + self.wrong_cluster
            + self.client_key_as_peer
            + self.unknown_sender
            + self.oversize_command
            + self.frag_malformed
            + self.frag_oversize
            + self.frag_inconsistent
            + self.frag_unknown_sender
    }
}

// A status response is rare and short-lived: not worth boxing for the size of the others.
#[allow(clippy::large_enum_variant)]
/// What an [`Envelope`] carries: a protocol message, or a runtime-level status exchange that
/// the actor never sees.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Body {
    /// A protocol message, delivered to the actor as is.
    Raft(Msg),
    /// Runtime-level: "tell me your state"; answered by the runtime, not the actor.
    StatusRequest {
        /// Echoed in the response, so a late answer to an earlier query is not taken for this
        /// one.
        nonce: u64,
    },
    /// Runtime-level: the answer to a [`Body::StatusRequest`].
    StatusResponse {
        /// The request's nonce.
        nonce: u64,
        /// The answering node's state and counters.
        status: NodeStatus,
    },
    /// Runtime-level, between servers: the receiver of a fragmented message holds its
    /// fragments `0..have` (all of them once `have` is their count), so the sender sends on
    /// from `have`.
    FragmentAck {
        /// The message's id, as its fragments carry it.
        msg_id: u64,
        /// How many of its fragments, from the first on, are held.
        have: u32,
    },
}

/// One message as it travels (JSON): who sent it in which cluster, and what it carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The sender's [`cluster_id`]: datagrams of another cluster are refused.
    pub cluster: u64,
    /// The sender: a server index `0..n`, or a client session id `>= CLIENT_ID_MIN`; checked
    /// against the source address and the message before the actor sees it.
    pub from: u64,
    /// The message itself.
    pub body: Body,
}

/// Why a datagram was refused: each reason has its own counter in [`Counters`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Not a datagram of this format; the text says what was wrong.
    Malformed(String),
    /// Larger than [`MAX_DATAGRAM`].
    Oversize,
    /// Another wire version (the one found).
    WrongVersion(u8),
    /// MAC missing, wrong, or present while this node has no key.
    BadMac,
    /// Another cluster's id (the one found).
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
    /// Reads a key file: its contents, surrounding whitespace trimmed. Refused, as ssh refuses
    /// a private key, when it is shorter than [`MIN_KEY_BYTES`] (guessable) or when group or
    /// others may read or write it (on Unix): whoever reads it can speak for the cluster.
    pub fn from_file(path: &Path) -> Result<Key, String> {
        let bytes = std::fs::read(path)
            .map_err(|e| format!("cannot read key file {}: {e}", path.display()))?;
        let key = bytes.trim_ascii().to_vec();
        if key.len() < MIN_KEY_BYTES {
            return Err(format!(
                "key file {} holds {} bytes; at least {MIN_KEY_BYTES} are needed \
                 (e.g. head -c 32 /dev/urandom | base64 > {0} && chmod 600 {0})",
                path.display(),
                key.len()
            ));
        }
        private_to_owner(path)?;
        Ok(Key(key))
    }

    /// A key from raw bytes, unchecked: for tests and tools that make their own keys.
    pub fn from_bytes(bytes: &[u8]) -> Key {
        Key(bytes.to_vec())
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.0).expect("HMAC accepts keys of any length")
    }
}

/// The shortest key file accepted: 32 bytes, the size of HMAC-SHA256's output.
pub const MIN_KEY_BYTES: usize = 32;

/// Refuses a key file that group or others may read or write.
#[cfg(unix)]
fn private_to_owner(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| format!("cannot read key file {}: {e}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "key file {0} is open to group or others (mode {1:o}); make it private: chmod 600 {0}",
            path.display(),
            mode & 0o777
        ));
    }
    Ok(())
}

/// Elsewhere file modes do not say who may read the key.
#[cfg(not(unix))]
fn private_to_owner(_: &Path) -> Result<(), String> {
    Ok(())
}

/// Encodes an envelope as one datagram (for clients and status queries, whose messages are
/// small); `None` if it would exceed [`MAX_DATAGRAM`].
pub fn encode(env: &Envelope, key: Option<&Key>) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(MAGIC);
    buf.push(WIRE_VERSION);
    buf.push(if key.is_some() { FLAG_MAC } else { 0 });
    serde_json::to_writer(&mut buf, env).ok()?;
    let buf = seal(buf, key);
    (buf.len() <= MAX_DATAGRAM).then_some(buf)
}

fn seal(mut buf: Vec<u8>, key: Option<&Key>) -> Vec<u8> {
    if let Some(key) = key {
        let mut mac = key.mac();
        mac.update(&buf);
        buf.extend_from_slice(&mac.finalize().into_bytes());
    }
    buf
}

/// Encodes an envelope as one datagram, or as fragments of the message `msg_id` (which should
/// not repeat between messages of this sender within [`FRAGMENT_TTL`]) when it does not fit in
/// one. `None` if its encoding exceeds [`MAX_MESSAGE`].
pub fn encode_message(env: &Envelope, key: Option<&Key>, msg_id: u64) -> Option<Vec<Vec<u8>>> {
    let json = serde_json::to_vec(env).ok()?;
    let mac_len = if key.is_some() { MAC_LEN } else { 0 };
    let flags = if key.is_some() { FLAG_MAC } else { 0 };
    if HEADER_LEN + json.len() + mac_len <= MAX_DATAGRAM {
        let mut buf = Vec::with_capacity(HEADER_LEN + json.len() + mac_len);
        buf.extend_from_slice(MAGIC);
        buf.push(WIRE_VERSION);
        buf.push(flags);
        buf.extend_from_slice(&json);
        return Some(vec![seal(buf, key)]);
    }
    if json.len() > MAX_MESSAGE {
        return None;
    }
    let digest = fnv1a(&json);
    let chunks: Vec<&[u8]> = json.chunks(MAX_CHUNK).collect();
    let count = chunks.len() as u16;
    let total = json.len() as u32;
    Some(
        chunks
            .iter()
            .enumerate()
            .map(|(i, chunk)| {
                let mut buf =
                    Vec::with_capacity(HEADER_LEN + FRAGMENT_HEADER_LEN + chunk.len() + mac_len);
                buf.extend_from_slice(MAGIC);
                buf.push(WIRE_VERSION);
                buf.push(flags | FLAG_FRAGMENT);
                buf.extend_from_slice(&env.cluster.to_le_bytes());
                buf.extend_from_slice(&env.from.to_le_bytes());
                buf.extend_from_slice(&msg_id.to_le_bytes());
                buf.extend_from_slice(&digest.to_le_bytes());
                buf.extend_from_slice(&total.to_le_bytes());
                buf.extend_from_slice(&(i as u16).to_le_bytes());
                buf.extend_from_slice(&count.to_le_bytes());
                buf.extend_from_slice(chunk);
                seal(buf, key)
            })
            .collect(),
    )
}

/// One piece of a fragmented message, authenticated and of our cluster, fields not yet checked
/// against each other (that is [`Reassembler::insert`]'s job).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// The sender (a server index): partial messages are kept per sender.
    pub from: u64,
    /// Which of the sender's messages this is a piece of.
    pub msg_id: u64,
    /// FNV-1a of the whole envelope, checked once all pieces are in.
    pub digest: u64,
    /// Bytes of the whole envelope, bounding what is buffered for it.
    pub total: u32,
    /// This piece's place, `0..count`.
    pub index: u16,
    /// How many pieces the message has.
    pub count: u16,
    /// This piece's bytes of the envelope.
    pub data: Vec<u8>,
}

/// A checked datagram: a whole message, or a fragment of one.
#[derive(Clone, Debug, PartialEq)]
pub enum Datagram {
    /// A message that fitted in one datagram (boxed: it is much larger than a fragment).
    Whole(Box<Envelope>),
    /// One piece of a larger message, for a [`Reassembler`].
    Fragment(Fragment),
}

/// Checks and decodes a datagram that must hold a whole message (fragments are refused as
/// malformed). Never panics, whatever the bytes.
pub fn decode(bytes: &[u8], key: Option<&Key>, cluster: u64) -> Result<Envelope, DecodeError> {
    match decode_datagram(bytes, key, cluster)? {
        Datagram::Whole(env) => Ok(*env),
        Datagram::Fragment(_) => Err(DecodeError::Malformed("unexpected fragment".into())),
    }
}

/// Decodes the JSON envelope of a reassembled message (its fragments were authenticated one by
/// one, so only the cluster is left to check).
pub fn decode_envelope(payload: &[u8], cluster: u64) -> Result<Envelope, DecodeError> {
    let env: Envelope =
        serde_json::from_slice(payload).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if env.cluster != cluster {
        return Err(DecodeError::WrongCluster(env.cluster));
    }
    if let Body::Raft(msg) = &env.body {
        if !msg.numbers_in_range() {
            return Err(DecodeError::Malformed(
                "a term or log index at or above 2^62".into(),
            ));
        }
    }
    Ok(env)
}

/// Which key vouched for a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trust {
    /// The peer key (or no key at all, on an unauthenticated cluster): it may come from a
    /// server.
    Peer,
    /// The client key only: it comes from a client, or anyone holding a client's key, and
    /// may not speak for a server.
    Client,
}

/// Checks and decodes a datagram: a whole message or a fragment. Never panics, whatever the bytes.
pub fn decode_datagram(
    bytes: &[u8],
    key: Option<&Key>,
    cluster: u64,
) -> Result<Datagram, DecodeError> {
    decode_trusted(bytes, key, key, cluster).map(|(d, _)| d)
}

/// Checks and decodes a datagram on a node with a peer key and a client key, saying which one
/// vouched for it: the peer key is tried first, then the client key (when it is another key).
pub fn decode_trusted(
    bytes: &[u8],
    peer: Option<&Key>,
    client: Option<&Key>,
    cluster: u64,
) -> Result<(Datagram, Trust), DecodeError> {
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
    let fragment = bytes[4] & FLAG_FRAGMENT != 0;
    if bytes[4] & !(FLAG_MAC | FLAG_FRAGMENT) != 0 {
        return Err(DecodeError::Malformed("unknown flags".into()));
    }
    let (payload, trust) = match (peer, has_mac) {
        (Some(peer), true) => {
            if bytes.len() < HEADER_LEN + MAC_LEN {
                return Err(DecodeError::BadMac);
            }
            let (signed, tag) = bytes.split_at(bytes.len() - MAC_LEN);
            let verifies = |key: &Key| {
                let mut mac = key.mac();
                mac.update(signed);
                mac.verify_slice(tag).is_ok()
            };
            let trust = if verifies(peer) {
                Trust::Peer
            } else if client.is_some_and(|c| c.0 != peer.0 && verifies(c)) {
                Trust::Client
            } else {
                return Err(DecodeError::BadMac);
            };
            (&signed[HEADER_LEN..], trust)
        }
        // A keyed node refuses unsigned datagrams; an unkeyed one refuses signed ones (the
        // sender was configured with a key this node does not have).
        (Some(_), false) | (None, true) => return Err(DecodeError::BadMac),
        (None, false) => (&bytes[HEADER_LEN..], Trust::Peer),
    };
    if !fragment {
        return decode_envelope(payload, cluster)
            .map(|env| (Datagram::Whole(Box::new(env)), trust));
    }
    if payload.len() < FRAGMENT_HEADER_LEN {
        return Err(DecodeError::Malformed("short fragment header".into()));
    }
    let (h, data) = payload.split_at(FRAGMENT_HEADER_LEN);
    let u64_at = |i: usize| u64::from_le_bytes(h[i..i + 8].try_into().expect("8 bytes"));
    let frag_cluster = u64_at(0);
    if frag_cluster != cluster {
        return Err(DecodeError::WrongCluster(frag_cluster));
    }
    let fragment = Fragment {
        from: u64_at(8),
        msg_id: u64_at(16),
        digest: u64_at(24),
        total: u32::from_le_bytes(h[32..36].try_into().expect("4 bytes")),
        index: u16::from_le_bytes(h[36..38].try_into().expect("2 bytes")),
        count: u16::from_le_bytes(h[38..40].try_into().expect("2 bytes")),
        data: data.to_vec(),
    };
    Ok((Datagram::Fragment(fragment), trust))
}

/// Why a fragment was not (yet) turned into a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FragmentOutcome {
    /// The last missing piece: the whole envelope's JSON, length and digest checked.
    Complete(Vec<u8>),
    /// Stored; more pieces are due.
    Pending,
    /// The same piece again, same bytes: ignored.
    Duplicate,
    /// Fields that cannot be right whatever the other pieces say.
    Malformed,
    /// A declared total over [`MAX_MESSAGE`].
    Oversize,
    /// Contradicts the partial message (which is dropped with it).
    Inconsistent,
}

#[derive(Debug)]
struct Partial {
    msg_id: u64,
    digest: u64,
    total: u32,
    chunks: Vec<Option<Vec<u8>>>,
    have: usize,
    /// Pieces held from the first on (what an acknowledgement reports).
    prefix: usize,
    bytes: usize,
    /// When the last new piece came.
    touched: std::time::Instant,
}

/// Reassembles fragmented messages, per sender, under the bounds of the module doc.
#[derive(Debug, Default)]
pub struct Reassembler {
    partials: std::collections::HashMap<u64, Vec<Partial>>,
    /// Partial messages dropped unfinished so far because they grew older than
    /// [`FRAGMENT_TTL`] (reported as `frag_expired`).
    pub expired: u64,
    /// Partial messages dropped unfinished so far to keep a sender within [`MAX_PARTIALS`] and
    /// [`MAX_MESSAGE`] bytes (reported as `frag_evicted`).
    pub evicted: u64,
    /// Per sender, its last [`MAX_PARTIALS`] completed messages (id, fragment count): a late
    /// or resent fragment of one is a duplicate, acknowledged as complete, not a new partial.
    completed: std::collections::HashMap<u64, std::collections::VecDeque<(u64, u16)>>,
}

impl Reassembler {
    /// An empty reassembler, holding nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Partial messages held (all senders).
    pub fn pending(&self) -> usize {
        self.partials.values().map(Vec::len).sum()
    }

    /// Drops partial messages older than [`FRAGMENT_TTL`].
    pub fn expire(&mut self, now: std::time::Instant) {
        let mut expired = 0;
        self.partials.retain(|_, list| {
            let before = list.len();
            list.retain(|p| now.saturating_duration_since(p.touched) < FRAGMENT_TTL);
            expired += (before - list.len()) as u64;
            !list.is_empty()
        });
        self.expired += expired;
    }

    /// How many fragments of `from`'s message `msg_id`, from the first on, are held (all of
    /// them when it was completed lately): what a [`Body::FragmentAck`] reports.
    pub fn held(&self, from: u64, msg_id: u64) -> Option<u32> {
        if let Some(&(_, count)) =
            (self.completed.get(&from)).and_then(|done| done.iter().find(|(id, _)| *id == msg_id))
        {
            return Some(u32::from(count));
        }
        let p = self
            .partials
            .get(&from)?
            .iter()
            .find(|p| p.msg_id == msg_id)?;
        Some(p.prefix as u32)
    }

    /// Takes a fragment (already authenticated, its `from` a sender allowed to fragment).
    pub fn insert(&mut self, frag: Fragment, now: std::time::Instant) -> FragmentOutcome {
        if let Some(refused) = refuse_fields(&frag) {
            return refused;
        }
        if (self.completed.get(&frag.from))
            .is_some_and(|done| done.iter().any(|(id, _)| *id == frag.msg_id))
        {
            return FragmentOutcome::Duplicate;
        }
        self.expire(now);
        let Some(pos) = self.partial_for(&frag, now) else {
            return FragmentOutcome::Inconsistent;
        };
        let list = self
            .partials
            .get_mut(&frag.from)
            .expect("the sender has partials");
        if let Some(refused) = refuse_piece(list, pos, &frag) {
            return refused;
        }
        self.make_room(&frag);
        let pos = self.partials[&frag.from]
            .iter()
            .position(|p| p.msg_id == frag.msg_id)
            .expect("this message's partial is kept");
        self.partials.get_mut(&frag.from).expect("kept")[pos].touched = now;
        let (from, msg_id, count) = (frag.from, frag.msg_id, frag.count);
        let outcome = self.insert_at(frag, pos);
        if matches!(outcome, FragmentOutcome::Complete(_)) {
            let done = self.completed.entry(from).or_default();
            if done.len() >= MAX_PARTIALS {
                done.pop_front();
            }
            done.push_back((msg_id, count));
        }
        outcome
    }

    /// The position of `frag`'s partial message among its sender's, started if new (the
    /// sender's oldest dropped beyond [`MAX_PARTIALS`]); `None` when `frag` contradicts it (count,
    /// total or digest), which drops it.
    fn partial_for(&mut self, frag: &Fragment, now: std::time::Instant) -> Option<usize> {
        let list = self.partials.entry(frag.from).or_default();
        if let Some(pos) = list.iter().position(|p| p.msg_id == frag.msg_id) {
            let p = &list[pos];
            if p.digest != frag.digest
                || p.total != frag.total
                || p.chunks.len() != frag.count as usize
            {
                list.remove(pos);
                return None;
            }
            return Some(pos);
        }
        while list.len() >= MAX_PARTIALS {
            list.remove(0);
            self.evicted += 1;
        }
        list.push(Partial {
            msg_id: frag.msg_id,
            digest: frag.digest,
            total: frag.total,
            chunks: vec![None; frag.count as usize],
            have: 0,
            prefix: 0,
            bytes: 0,
            touched: now,
        });
        Some(list.len() - 1)
    }

    /// Bounds the bytes buffered for `frag`'s sender: drops its oldest other partials first
    /// (`frag`'s alone stays within [`MAX_MESSAGE`], as its total does).
    fn make_room(&mut self, frag: &Fragment) {
        let list = self
            .partials
            .get_mut(&frag.from)
            .expect("the sender has partials");
        let len = frag.data.len();
        while list.iter().map(|p| p.bytes).sum::<usize>() + len > MAX_MESSAGE {
            let Some(oldest) = list.iter().position(|p| p.msg_id != frag.msg_id) else {
                break;
            };
            list.remove(oldest);
            self.evicted += 1;
        }
    }

    fn insert_at(&mut self, frag: Fragment, pos: usize) -> FragmentOutcome {
        let list = self
            .partials
            .get_mut(&frag.from)
            .expect("the sender has partials");
        let p = &mut list[pos];
        p.bytes += frag.data.len();
        p.have += 1;
        p.chunks[frag.index as usize] = Some(frag.data);
        while p.prefix < p.chunks.len() && p.chunks[p.prefix].is_some() {
            p.prefix += 1;
        }
        if p.have < p.chunks.len() {
            return FragmentOutcome::Pending;
        }
        let p = list.remove(pos);
        if list.is_empty() {
            self.partials.remove(&frag.from);
        }
        if p.bytes != p.total as usize {
            return FragmentOutcome::Inconsistent;
        }
        let mut whole = Vec::with_capacity(p.bytes);
        for chunk in p.chunks.into_iter().flatten() {
            whole.extend_from_slice(&chunk);
        }
        if fnv1a(&whole) != p.digest {
            return FragmentOutcome::Inconsistent;
        }
        FragmentOutcome::Complete(whole)
    }
}

/// Why `frag` cannot be right whatever the other pieces of its message say, if so: checked
/// before anything is buffered for it.
fn refuse_fields(frag: &Fragment) -> Option<FragmentOutcome> {
    let count = frag.count as usize;
    let total = frag.total as usize;
    if total > MAX_MESSAGE {
        return Some(FragmentOutcome::Oversize);
    }
    let malformed = count == 0
        || count > MAX_FRAGMENTS
        || frag.index as usize >= count
        || frag.data.is_empty()
        || frag.data.len() > MAX_CHUNK
        || frag.data.len() > total
        || total < count
        || total > count * MAX_CHUNK;
    malformed.then_some(FragmentOutcome::Malformed)
}

/// Why `frag` does not fit its partial message `list[pos]`, if so: its piece is already there
/// (the same bytes: a duplicate; other bytes: a contradiction), or the pieces would add up to
/// more than the total. A contradiction drops the partial.
fn refuse_piece(list: &mut Vec<Partial>, pos: usize, frag: &Fragment) -> Option<FragmentOutcome> {
    let p = &list[pos];
    match &p.chunks[frag.index as usize] {
        Some(old) if *old == frag.data => return Some(FragmentOutcome::Duplicate),
        Some(_) => {}
        None if p.bytes + frag.data.len() > frag.total as usize => {}
        None => return None,
    }
    list.remove(pos);
    Some(FragmentOutcome::Inconsistent)
}

/// The size of a client command as it travels in a log entry: what [`MAX_COMMAND_BYTES`]
/// limits.
pub fn command_size(command: &Command) -> usize {
    serde_json::to_vec(command).map_or(usize::MAX, |v| v.len())
}

/// 64-bit FNV-1a: a fast hash for the cluster id and fragment digests, which only guard
/// against mistakes (the MAC, not this, guards against forgery).
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
    use crate::protocol::types::{AppendOutcome, MAX_WIRE_NUMBER};

    fn env() -> Envelope {
        Envelope {
            cluster: 7,
            from: 1,
            body: Body::StatusRequest { nonce: 3 },
        }
    }

    /// With a peer key and a client key, the peer key is tried first and says "from a
    /// server"; the client key says "from a client"; a third key is refused. With one key for
    /// both (`--key`), everything counts as from a server, as before the keys were separated.
    #[test]
    fn the_key_that_vouches_for_a_datagram_is_named() {
        let peer = Key::from_bytes(b"peer-key-peer-key-peer-key-peer!");
        let client = Key::from_bytes(b"client-key-client-key-client-key");
        let stranger = Key::from_bytes(b"stranger-stranger-stranger-stran");
        let trust = |signer: &Key, peer_key: &Key, client_key: &Key| {
            let bytes = encode(&env(), Some(signer)).unwrap();
            decode_trusted(&bytes, Some(peer_key), Some(client_key), 7).map(|(_, t)| t)
        };
        assert_eq!(trust(&peer, &peer, &client), Ok(Trust::Peer));
        assert_eq!(trust(&client, &peer, &client), Ok(Trust::Client));
        assert_eq!(trust(&stranger, &peer, &client), Err(DecodeError::BadMac));
        assert_eq!(trust(&peer, &peer, &peer), Ok(Trust::Peer));
        let fragments = encode_message(&big_env(100_000), Some(&client), 1).unwrap();
        let got = decode_trusted(&fragments[0], Some(&peer), Some(&client), 7);
        assert!(matches!(got, Ok((Datagram::Fragment(_), Trust::Client))));
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

    #[test]
    fn terms_and_indexes_at_or_above_2_pow_62_are_malformed() {
        // A forged RequestVote of term 2^64 - 1 once moved every node to it; the next election
        // wrapped the term to 0.
        let vote = |term: u64, last_log_index: u64| Envelope {
            cluster: 7,
            from: 1,
            body: Body::Raft(Msg::RequestVote {
                term,
                last_log_index,
                last_log_term: 1,
            }),
        };
        let accepted = vote(MAX_WIRE_NUMBER - 1, 3);
        let bytes = encode(&accepted, None).unwrap();
        assert_eq!(decode(&bytes, None, 7), Ok(accepted));
        for forged in [
            vote(u64::MAX, 3),
            vote(MAX_WIRE_NUMBER, 3),
            vote(2, u64::MAX),
        ] {
            let bytes = encode(&forged, None).unwrap();
            let mut counters = Counters::default();
            let error = decode(&bytes, None, 7).unwrap_err();
            counters.count(&error);
            assert!(matches!(error, DecodeError::Malformed(_)), "{error:?}");
            assert_eq!(counters.malformed, 1);
        }
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_decode_without_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = decode_datagram(&bytes, None, 7);
            let mut framed = MAGIC.to_vec();
            framed.extend([WIRE_VERSION, 0]);
            framed.extend(&bytes);
            let _ = decode_datagram(&framed, None, 7);
        }

        #[test]
        fn a_message_is_accepted_exactly_when_its_numbers_are_in_range(
            term in proptest::num::u64::ANY,
            index in proptest::num::u64::ANY,
            small in 0..MAX_WIRE_NUMBER,
        ) {
            for msg in [
                Msg::AppendEntriesReply { term, outcome: AppendOutcome::Matched { match_index: index } },
                Msg::AppendEntriesReply { term: small, outcome: AppendOutcome::Matched { match_index: index } },
                Msg::InstallSnapshotReply { term: small, last_index: index },
            ] {
                let env = Envelope { cluster: 7, from: 1, body: Body::Raft(msg.clone()) };
                let decoded = decode(&encode(&env, None).unwrap(), None, 7);
                proptest::prop_assert_eq!(decoded.is_ok(), msg.numbers_in_range());
            }
        }
    }

    #[cfg(unix)]
    #[test]
    fn key_files_that_are_short_or_not_private_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("raft-key-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("key");
        let write = |text: &str, mode: u32| {
            std::fs::write(&file, text).unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        write("0123456789abcdef0123456789abcdef\n", 0o600);
        assert!(Key::from_file(&file).is_ok());
        write("aaaaaaaaaaaaaaaa", 0o600);
        let short = Key::from_file(&file).unwrap_err();
        assert!(short.contains("holds 16 bytes; at least 32"), "{short}");
        for mode in [0o666, 0o640, 0o604] {
            write("0123456789abcdef0123456789abcdef", mode);
            let open = Key::from_file(&file).unwrap_err();
            assert!(open.contains("chmod 600"), "{open}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn big_env(bytes: usize) -> Envelope {
        use crate::protocol::types::{KvStore, Snapshot};
        let mut state = KvStore::default();
        let mut i = 0;
        while state.data.len() * 1000 < bytes {
            state
                .data
                .insert(format!("k{i}"), format!("{i:08x}").repeat(125));
            i += 1;
        }
        Envelope {
            cluster: 7,
            from: 2,
            body: Body::Raft(Msg::InstallSnapshot {
                term: 3,
                snapshot: Snapshot {
                    last_index: 9,
                    last_term: 3,
                    state,
                },
            }),
        }
    }

    fn frags(env: &Envelope, key: Option<&Key>, id: u64) -> Vec<Fragment> {
        encode_message(env, key, id)
            .unwrap()
            .iter()
            .map(|d| {
                assert!(d.len() <= MAX_DATAGRAM);
                match decode_datagram(d, key, 7).unwrap() {
                    Datagram::Fragment(f) => f,
                    Datagram::Whole(_) => panic!("expected a fragment"),
                }
            })
            .collect()
    }

    fn complete(outcome: FragmentOutcome) -> Envelope {
        match outcome {
            FragmentOutcome::Complete(bytes) => decode_envelope(&bytes, 7).unwrap(),
            other => panic!("expected a complete message, got {other:?}"),
        }
    }

    #[test]
    fn small_messages_stay_whole() {
        let d = encode_message(&env(), None, 1).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0], encode(&env(), None).unwrap());
        assert_eq!(
            decode_datagram(&d[0], None, 7),
            Ok(Datagram::Whole(Box::new(env())))
        );
    }

    #[test]
    fn a_large_message_round_trips_in_fragments_signed_and_not() {
        let key = Key::from_bytes(b"0123456789abcdef");
        let big = big_env(300_000);
        assert!(encode(&big, Some(&key)).is_none());
        for k in [Some(&key), None] {
            let fs = frags(&big, k, 42);
            assert!(fs.len() >= 5, "{} fragments", fs.len());
            let mut r = Reassembler::new();
            let now = std::time::Instant::now();
            let last = fs.len() - 1;
            for f in &fs[..last] {
                assert_eq!(r.insert(f.clone(), now), FragmentOutcome::Pending);
            }
            assert_eq!(complete(r.insert(fs[last].clone(), now)), big);
            assert_eq!(r.pending(), 0);
        }
        // Fragments are authenticated one by one: another key, or none, refuses each.
        let other = Key::from_bytes(b"fedcba9876543210");
        for d in encode_message(&big, Some(&key), 1).unwrap() {
            assert_eq!(
                decode_datagram(&d, Some(&other), 7),
                Err(DecodeError::BadMac)
            );
            assert_eq!(decode_datagram(&d, None, 7), Err(DecodeError::BadMac));
            assert_eq!(
                decode_datagram(&d, Some(&key), 8),
                Err(DecodeError::WrongCluster(7))
            );
            assert!(matches!(
                decode(&d, Some(&key), 7),
                Err(DecodeError::Malformed(_))
            ));
            for cut in [0, 5, 20, 44, 45, d.len() - 1] {
                assert!(decode_datagram(&d[..cut], Some(&key), 7).is_err());
            }
        }
        // Whatever a signed-off sender puts in the header, no panic.
        let mut d = encode_message(&big, None, 1).unwrap().remove(0);
        for i in HEADER_LEN..HEADER_LEN + FRAGMENT_HEADER_LEN {
            d[i] = 0xff;
            if let Ok(Datagram::Fragment(f)) = decode_datagram(&d, None, 7) {
                let _ = Reassembler::new().insert(f, std::time::Instant::now());
            }
        }
    }

    #[test]
    fn out_of_order_and_duplicate_fragments() {
        let big = big_env(200_000);
        let mut fs = frags(&big, None, 5);
        fs.reverse();
        fs.swap(0, 1);
        let mut r = Reassembler::new();
        let now = std::time::Instant::now();
        let last = fs.len() - 1;
        // Received in the order [n-2, n-1, n-3, ..., 1, 0]: the acknowledged prefix stays 0
        // until fragment 0 is in.
        for f in &fs[..last] {
            assert_eq!(r.insert(f.clone(), now), FragmentOutcome::Pending);
            assert_eq!(r.insert(f.clone(), now), FragmentOutcome::Duplicate);
            assert_eq!(r.held(f.from, f.msg_id), Some(0));
        }
        // In order, the prefix follows each fragment.
        let mut in_order = Reassembler::new();
        let seq = frags(&big, None, 8);
        for (k, f) in seq[..seq.len() - 1].iter().enumerate() {
            in_order.insert(f.clone(), now);
            assert_eq!(in_order.held(f.from, f.msg_id), Some(k as u32 + 1));
        }
        assert_eq!(complete(r.insert(fs[last].clone(), now)), big);
        assert_eq!(r.held(fs[0].from, fs[0].msg_id), Some(fs.len() as u32));
        // A late or resent fragment of a delivered message is a duplicate, acknowledged whole,
        // and starts no partial.
        assert_eq!(r.insert(fs[0].clone(), now), FragmentOutcome::Duplicate);
        assert_eq!(r.pending(), 0);
        assert_eq!(r.held(fs[0].from, fs[0].msg_id), Some(fs.len() as u32));
        // A partial that gets no new piece expires; one that keeps getting pieces does not.
        let slow = frags(&big_env(200_000), None, 9);
        r.insert(slow[0].clone(), now);
        r.insert(slow[1].clone(), now + FRAGMENT_TTL / 2);
        r.expire(now + FRAGMENT_TTL);
        assert_eq!((r.pending(), r.expired), (1, 0));
        r.expire(now + FRAGMENT_TTL / 2 + FRAGMENT_TTL);
        assert_eq!((r.pending(), r.expired), (0, 1));
        // Interleaved messages of one sender reassemble independently.
        let other = big_env(150_000);
        let (a, b) = (frags(&big, None, 6), frags(&other, None, 7));
        let mut done = Vec::new();
        for i in 0..a.len().max(b.len()) {
            for f in [a.get(i), b.get(i)].into_iter().flatten() {
                if let FragmentOutcome::Complete(bytes) = r.insert(f.clone(), now) {
                    done.push(decode_envelope(&bytes, 7).unwrap());
                }
            }
        }
        done.sort_by_key(|e| serde_json::to_vec(e).unwrap().len());
        assert_eq!(done, vec![other, big]);
    }

    #[test]
    fn a_missing_fragment_delivers_nothing_and_the_partial_expires() {
        let big = big_env(200_000);
        let fs = frags(&big, None, 9);
        let mut r = Reassembler::new();
        let t0 = std::time::Instant::now();
        for (i, f) in fs.iter().enumerate() {
            if i != 1 {
                assert_eq!(r.insert(f.clone(), t0), FragmentOutcome::Pending);
            }
        }
        assert_eq!(r.pending(), 1);
        r.expire(t0 + FRAGMENT_TTL / 2);
        assert_eq!(r.pending(), 1);
        // The missing piece arriving too late starts over rather than completing.
        let late = t0 + FRAGMENT_TTL;
        assert_eq!(r.insert(fs[1].clone(), late), FragmentOutcome::Pending);
        assert_eq!(r.expired, 1);
        r.expire(late + FRAGMENT_TTL);
        assert_eq!((r.pending(), r.expired), (0, 2));
    }

    #[test]
    fn inconsistent_malformed_and_oversize_fragments_are_refused() {
        let big = big_env(200_000);
        let fs = frags(&big, None, 11);
        let now = std::time::Instant::now();
        let with = |f: &Fragment, change: &dyn Fn(&mut Fragment)| {
            let mut f = f.clone();
            change(&mut f);
            f
        };
        // Count, total or digest disagreeing with the partial: the partial is dropped.
        for change in [
            &(|f: &mut Fragment| f.count += 1) as &dyn Fn(&mut Fragment),
            &|f: &mut Fragment| f.total -= 1,
            &|f: &mut Fragment| f.digest ^= 1,
        ] {
            let mut r = Reassembler::new();
            assert_eq!(r.insert(fs[0].clone(), now), FragmentOutcome::Pending);
            assert_eq!(
                r.insert(with(&fs[1], change), now),
                FragmentOutcome::Inconsistent
            );
            assert_eq!(r.pending(), 0);
        }
        // A repeated index with other bytes.
        let mut r = Reassembler::new();
        assert_eq!(r.insert(fs[0].clone(), now), FragmentOutcome::Pending);
        let flipped = with(&fs[0], &|f| f.data[0] ^= 1);
        assert_eq!(r.insert(flipped, now), FragmentOutcome::Inconsistent);
        // Chunks that add up to more than the total, or whose bytes fail the digest.
        let mut r = Reassembler::new();
        let long = with(&fs[0], &|f| f.total = f.data.len() as u32 + 10);
        let long2 = with(&fs[1], &|f| f.total = fs[0].data.len() as u32 + 10);
        let long2 = Fragment { count: 2, ..long2 };
        let long = Fragment { count: 2, ..long };
        assert_eq!(r.insert(long, now), FragmentOutcome::Pending);
        assert_eq!(r.insert(long2, now), FragmentOutcome::Inconsistent);
        let mut r = Reassembler::new();
        let last = fs.len() - 1;
        for f in &fs[..last] {
            assert_eq!(r.insert(f.clone(), now), FragmentOutcome::Pending);
        }
        let corrupt = with(&fs[last], &|f| f.data[0] ^= 1);
        assert_eq!(r.insert(corrupt, now), FragmentOutcome::Inconsistent);
        // Fields that cannot be right on their own.
        let mut r = Reassembler::new();
        for bad in [
            with(&fs[0], &|f| f.count = 0),
            with(&fs[0], &|f| f.index = f.count),
            with(&fs[0], &|f| f.count = MAX_FRAGMENTS as u16 + 1),
            with(&fs[0], &|f| f.data.clear()),
            with(&fs[0], &|f| f.total = 1),
            with(&fs[0], &|f| {
                f.total = (f.count as usize * MAX_CHUNK + 1) as u32
            }),
        ] {
            assert_eq!(r.insert(bad, now), FragmentOutcome::Malformed);
        }
        assert_eq!(
            r.insert(with(&fs[0], &|f| f.total = MAX_MESSAGE as u32 + 1), now),
            FragmentOutcome::Oversize
        );
        assert_eq!(r.pending(), 0);
        // No message over MAX_MESSAGE is sent either.
        let huge = Envelope {
            cluster: 7,
            from: 1,
            body: Body::Raft(Msg::ClientRequest(Command {
                client: CLIENT_ID_MIN,
                request_id: 1,
                op: crate::protocol::types::Op::Put {
                    key: "k".into(),
                    value: "v".repeat(MAX_MESSAGE),
                },
            })),
        };
        assert!(encode_message(&huge, None, 1).is_none());
    }

    #[test]
    fn partials_per_sender_are_bounded() {
        let big = big_env(200_000);
        let mut r = Reassembler::new();
        let now = std::time::Instant::now();
        for id in 0..(MAX_PARTIALS as u64 + 3) {
            assert_eq!(
                r.insert(frags(&big, None, id)[0].clone(), now),
                FragmentOutcome::Pending
            );
        }
        assert_eq!((r.pending(), r.evicted), (MAX_PARTIALS, 3));
        // Another sender has its own allowance.
        let mut other = frags(&big, None, 0)[0].clone();
        other.from = 0;
        assert_eq!(r.insert(other, now), FragmentOutcome::Pending);
        assert_eq!(r.pending(), MAX_PARTIALS + 1);
    }
}

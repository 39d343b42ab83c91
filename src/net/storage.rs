//! Durable storage of what the server actor `Save`s: a small meta file written atomically, an
//! append-only log file of checksummed records, and beside it a file of sync marks, so that a
//! save costs two appends and two `fdatasync`s instead of a rewrite of the whole state.
//!
//! ```text
//! raft-meta      "RAFTMETA" | version u32 | node id u64 | cluster id u64 | payload length u64
//!                | SHA-256 (header fields and payload) | payload: JSON {generation, base_index,
//!                base_term, snapshot}
//! raft-log.<g>   "RAFTLOG\0" | version u32 | node id u64 | cluster id u64 | generation g u64
//!                | SHA-256 (of those fields), then records:
//!                length u32 | !length u32 | SHA-256 (length and payload) | payload: JSON {term,
//!                voted_for, start, entries}
//! raft-synced.<g> "RAFTSYNC" | version u32 | node id u64 | cluster id u64 | generation g u64
//!                | SHA-256 (of those fields), then marks: log file length u64 | the first 24
//!                bytes of SHA-256 (g, length)
//! ```
//!
//! (Integers little-endian.) Replaying a record sets the term and vote, deletes the log from index
//! `start` on (a no-op when `start` is just past the end) and appends `entries`, so one record is
//! one whole save: new entries, a conflict's truncation, and a term or vote change together. The
//! term and vote travel in the records rather than in the meta file because a save that changes
//! both them and the log (a follower's first AppendEntries of a new term) must land in one
//! write: split over two files, a crash between the two would recover a state no save produced.
//!
//! A save compares the new state with the copy of what is on disk that this module keeps:
//! - nothing changed: no I/O (what is asked for is already durable);
//! - the same snapshot boundary and snapshot: one record holding the entries from the first index
//!   where the old and new logs differ (every overlapping entry is compared, so a conflict that
//!   replaced a suffix is never mistaken for an append), appended and `fdatasync`ed; then a mark
//!   of the log's new length appended to the sync marks and `fdatasync`ed. The save returns
//!   (and anything depending on it may be sent) only after both;
//! - otherwise (the first save, compaction, a snapshot install, or once truncated entries and
//!   entry-less records outnumber the live entries and 4096): a rewrite. A new generation
//!   `raft-log.<g+1>` is written with one checkpoint record holding the whole log, fsynced,
//!   `raft-synced.<g+1>` with one mark of its length, fsynced, the directory fsynced; then the
//!   meta file naming generation g+1 is written to a temporary file,
//!   fsynced, renamed over `raft-meta`, and the directory fsynced; only then is `raft-log.<g>`
//!   deleted (with its marks). The rename is the commit point: a crash before it leaves the old
//!   meta and old log.
//!
//! Recovery (`load`): a directory with neither meta nor log file is a fresh node. A meta file
//! must be intact and name this node and cluster, and its generation's log and sync marks files
//! must exist with intact headers. The last intact mark says how far the log was synced before
//! any save that wrote it returned (Protocol-Aware Recovery's persist records, FAST '18): every
//! record up to there must be there, intact, ending exactly at the mark. A log shorter than its
//! mark (cut, even at a record boundary) or with a bad record before it is damage. Past the last
//! mark is a save that never returned, so nothing depending on it was sent: an intact record
//! there is kept (and marked), and from the first incomplete or failing one on, the rest is a
//! torn append and is cut off (the file truncated and fsynced). The last mark itself may be torn
//! (cut short or failing its checksum) and is cut off; any earlier bad mark is damage. A missing
//! meta file with a log that starts at index 1 (no snapshot was lost) is recovered from that log,
//! checked against its marks (without them, the log must be its checkpoint record alone: a
//! rewrite that crashed before its commit point).
//!
//! Anything else is damage (a bad checksum or length complement in the synced part, a log cut
//! short of its mark, bad meta, a missing log or marks file, a record whose start index does not
//! fit, a lost meta whose log continues a snapshot): the node may have voted or acknowledged
//! entries it no longer has, so it neither trusts what is left nor starts as new. The damaged
//! files are renamed `*.damaged`, a wiped state marked `recovering` is saved, and the server
//! recovers from its peers (`protocol::server::Recovery`: it neither votes nor stands until a
//! leader of a later term has repaired its log). The mark is a field of every record while it
//! recovers, so a crash during recovery restarts recovering again. A file of another node,
//! cluster or format version, or one the system will not let the node read, is not damage: the
//! node refuses to start and moves nothing.
//!
//! What no local check can tell: damage to the log and its marks that agrees (both cut back to
//! the same earlier save) looks like a node that crashed there; so does a sync that the disk
//! acknowledged and then lost on both files (a lying `fdatasync`).

use crate::net::world::{Disk, DiskFile, RealDisk};
use crate::protocol::log::Log;
use crate::protocol::server::Storage;
use crate::protocol::types::{Entry, LogIndex, Snapshot, Term};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

const META_MAGIC: &[u8; 8] = b"RAFTMETA";
const LOG_MAGIC: &[u8; 8] = b"RAFTLOG\0";
const SYNC_MAGIC: &[u8; 8] = b"RAFTSYNC";
/// 3: the sync marks file (`raft-synced.<g>`) came in.
const VERSION: u32 = 3;
/// magic | version | node | cluster | payload length (meta) or generation (log).
const HEADER_LEN: usize = 8 + 4 + 8 + 8 + 8;
const DIGEST_LEN: usize = 32;
/// length | !length | SHA-256.
const RECORD_HEADER_LEN: usize = 4 + 4 + DIGEST_LEN;
/// A sync mark: durable log length u64 | the first 24 bytes of SHA-256(generation, length).
const MARK_LEN: usize = 8 + 24;
/// Rewrite the log once dead weight (truncated entries, entry-less records) exceeds both the live
/// entries and this.
const GARBAGE_MIN: u64 = if cfg!(test) { 16 } else { 4096 };

/// The meta file's name in a data directory: its rename commits a rewrite, and it names the
/// log file in use.
pub const META_FILE: &str = "raft-meta";
/// Log files are `raft-log.<generation>`: a rewrite writes the next generation beside the
/// current one, so a crash mid-rewrite leaves the current one intact.
pub const LOG_FILE_PREFIX: &str = "raft-log.";
/// Sync marks files are `raft-synced.<generation>`, one beside each log file: each save appends
/// the length its log file was synced through, so a log cut short is told from a torn append.
pub const SYNC_FILE_PREFIX: &str = "raft-synced.";

#[derive(Serialize)]
struct MetaOut<'a> {
    generation: u64,
    base_index: LogIndex,
    base_term: Term,
    snapshot: Option<&'a Snapshot>,
}

#[derive(Deserialize)]
struct MetaIn {
    generation: u64,
    base_index: LogIndex,
    base_term: Term,
    snapshot: Option<Snapshot>,
}

#[derive(Serialize)]
struct RecordOut<'a> {
    term: Term,
    voted_for: Option<u64>,
    start: LogIndex,
    entries: Vec<&'a Entry>,
    /// Written only while the node recovers from damage (`Storage::recovering`).
    #[serde(skip_serializing_if = "is_false")]
    recovering: bool,
}

#[derive(Deserialize)]
struct RecordIn {
    term: Term,
    voted_for: Option<u64>,
    start: LogIndex,
    entries: Vec<Entry>,
    #[serde(default)]
    recovering: bool,
}

fn is_false(b: &bool) -> bool {
    !b
}

/// Starts the errors that are not damage: a file of another node, cluster or format (a
/// configuration mistake), or a file the system will not let us read (permissions, I/O). The
/// node refuses to start and moves nothing; `load` takes the mark off.
const NOT_DAMAGE: &str = "[not damage] ";

/// What is on disk: the state, and the log file that appends go to.
struct OnDisk<F> {
    storage: Storage,
    generation: u64,
    log: F,
    log_path: PathBuf,
    /// Bytes of the log file, all synced and marked.
    log_len: u64,
    /// This generation's sync marks file, open for appends.
    marks: F,
    /// Entries written to this generation's file, counting those truncated away since.
    written: u64,
    /// Records without entries (term or vote changes, pure truncations).
    bare_records: u64,
}

/// A node's durable state in its data directory (see the module docs): what makes its votes and
/// log survive a crash. Generic over the file system so that the simulator runs this same code
/// on a disk that can lose unsynced writes at a crash.
pub struct DurableStorage<D: Disk = RealDisk> {
    fs: D,
    dir: PathBuf,
    meta_path: PathBuf,
    meta_tmp: PathBuf,
    node: u64,
    cluster: u64,
    disk: Option<OnDisk<D::File>>,
    /// Bytes of a torn final record cut off by the last `load`.
    torn_bytes: u64,
    /// The log file the last `load` recovered the state from when the meta file was missing.
    recovered_without_meta: Option<PathBuf>,
    /// Why the last `load` found the state damaged (the node then recovers from its peers).
    damage: Option<String>,
}

enum Plan {
    Nothing,
    /// Append the new entries from this position of `entries` on.
    Append(usize),
    Rewrite,
}

impl DurableStorage<RealDisk> {
    /// Opens (creating if needed) the data directory of node `node` of cluster `cluster` on the
    /// real file system. Call [`load`](Self::load) before the first [`save`](Self::save).
    pub fn open(dir: &Path, node: u64, cluster: u64) -> Result<Self, String> {
        DurableStorage::open_on(RealDisk, dir, node, cluster)
    }
}

impl<D: Disk> DurableStorage<D> {
    /// Opens (creating if needed) the data directory `dir` on `fs`, as [`open`](Self::open)
    /// does on the real file system.
    pub fn open_on(fs: D, dir: &Path, node: u64, cluster: u64) -> Result<Self, String> {
        fs.create_dir_all(dir)
            .map_err(|e| format!("cannot create data directory {}: {e}", dir.display()))?;
        Ok(DurableStorage {
            fs,
            dir: dir.to_path_buf(),
            meta_path: dir.join(META_FILE),
            meta_tmp: dir.join(format!("{META_FILE}.tmp")),
            node,
            cluster,
            disk: None,
            torn_bytes: 0,
            recovered_without_meta: None,
            damage: None,
        })
    }

    /// The meta file's path, for messages and for tests that damage it.
    pub fn meta_path(&self) -> &Path {
        &self.meta_path
    }

    /// The current log file, once loaded or saved.
    pub fn log_path(&self) -> Option<&Path> {
        self.disk.as_ref().map(|d| d.log_path.as_path())
    }

    /// Bytes of a torn final log record that the last `load` cut off (0 if none).
    pub fn torn_bytes(&self) -> u64 {
        self.torn_bytes
    }

    /// The log file the last `load` recovered the whole state from, the meta file being
    /// missing (see [`load`](Self::load)).
    pub fn recovered_without_meta(&self) -> Option<&Path> {
        self.recovered_without_meta.as_deref()
    }

    fn log_path_for(&self, generation: u64) -> PathBuf {
        self.dir.join(format!("{LOG_FILE_PREFIX}{generation}"))
    }

    fn marks_path_for(&self, generation: u64) -> PathBuf {
        self.dir.join(format!("{SYNC_FILE_PREFIX}{generation}"))
    }

    /// Why the last `load` found the saved state damaged, if it did: it then returned a wiped,
    /// recovering state (`Storage::recovering`) and kept the damaged files as `*.damaged`.
    pub fn damage(&self) -> Option<&str> {
        self.damage.as_deref()
    }

    /// The saved state, or `None` for a fresh node. Damaged state (a file missing, cut short,
    /// failing its checksum, or not fitting the others) is never trusted in part nor taken for
    /// a fresh start: the damaged files are renamed `*.damaged`, and the node restarts wiped and
    /// recovering (`damage` says why), to be repaired from its peers. A file of another node,
    /// cluster or format is a configuration mistake: an error naming it, and nothing is moved.
    pub fn load(&mut self) -> Result<Option<Storage>, String> {
        self.disk = None;
        self.torn_bytes = 0;
        self.recovered_without_meta = None;
        self.damage = None;
        match self.load_files() {
            Err(why) if !why.contains(NOT_DAMAGE) => self.recover_from_damage(why),
            Err(why) => Err(format!(
                "{}; refusing to start (nothing was moved): check --id, --peers, --data-dir \
                 and the files' permissions",
                why.replace(NOT_DAMAGE, "")
            )),
            ok => ok,
        }
    }

    /// Moves every state file aside as `<name>.damaged` and saves a wiped, recovering state:
    /// a crash from here on restarts recovering again, never as a new server.
    fn recover_from_damage(&mut self, why: String) -> Result<Option<Storage>, String> {
        let mut names = vec![META_FILE.to_string()];
        names.extend(self.generation_files().into_iter().map(|(name, _)| name));
        for name in names {
            let from = self.dir.join(&name);
            let to = self.dir.join(format!("{name}.damaged"));
            match self.fs.rename(&from, &to) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(format!(
                        "{why}; and cannot move {} aside: {e}",
                        from.display()
                    ))
                }
            }
        }
        self.sync_dir()?;
        self.disk = None;
        self.torn_bytes = 0;
        self.recovered_without_meta = None;
        let wiped = Storage::wiped();
        self.rewrite(wiped.clone())?;
        self.damage = Some(why);
        Ok(Some(wiped))
    }

    fn load_files(&mut self) -> Result<Option<Storage>, String> {
        let meta_bytes = match self.fs.read(&self.meta_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return self.load_without_meta(),
            Err(e) => {
                return Err(format!(
                    "{NOT_DAMAGE}cannot read state file {}: {e}",
                    self.meta_path.display()
                ))
            }
        };
        let meta: MetaIn = decode_framed(&meta_bytes, META_MAGIC, VERSION, self.node, self.cluster)
            .and_then(|p| serde_json::from_slice(p).map_err(|e| format!("undecodable: {e}")))
            .map_err(|why| unusable(&self.meta_path, &why))?;
        let log_path = self.log_path_for(meta.generation);
        let bytes = self.fs.read(&log_path).map_err(|e| {
            let why = format!("cannot read it ({e}), yet {META_FILE} refers to it");
            match e.kind() {
                std::io::ErrorKind::NotFound => unusable(&log_path, &why),
                _ => format!("{NOT_DAMAGE}{}", unusable(&log_path, &why)),
            }
        })?;
        let marks_path = self.marks_path_for(meta.generation);
        let marks = match self.fs.read(&marks_path) {
            Ok(m) => read_marks(&m, self.node, self.cluster, meta.generation)
                .map_err(|why| unusable(&marks_path, &why))?,
            Err(e) => {
                let why = format!("cannot read it ({e}), yet {META_FILE} refers to it");
                return Err(match e.kind() {
                    std::io::ErrorKind::NotFound => unusable(&marks_path, &why),
                    _ => format!("{NOT_DAMAGE}{}", unusable(&marks_path, &why)),
                });
            }
        };
        let r = replay(
            &bytes,
            self.node,
            self.cluster,
            meta.generation,
            meta.base_index,
            marks.durable,
        )
        .map_err(|why| unusable(&log_path, &why))?;
        let (log, marks) = self.open_checked(meta.generation, &bytes, &r, &marks)?;
        let storage = Storage {
            term: r.term,
            voted_for: r.voted_for,
            log: Log {
                base_index: meta.base_index,
                base_term: meta.base_term,
                entries: r.entries.into(),
            },
            snapshot: meta.snapshot.map(std::sync::Arc::new),
            recovering: r.recovering,
            maybe_new: false, // Never kept: see `Storage::maybe_new`.
        };
        self.remove_other_logs(meta.generation);
        self.disk = Some(OnDisk {
            storage: storage.clone(),
            generation: meta.generation,
            log,
            log_path,
            log_len: r.valid_len as u64,
            marks,
            written: r.written,
            bare_records: r.bare_records,
        });
        Ok(Some(storage))
    }

    /// Opens generation `generation`'s log and marks files for appends once `load` has checked
    /// them: cuts a torn tail off each, and when the log holds intact records past its last
    /// mark (synced, but the mark after them was not), marks them, as they are part of the
    /// state the node goes on from.
    fn open_checked(
        &mut self,
        generation: u64,
        bytes: &[u8],
        r: &Replayed,
        marks: &Marks,
    ) -> Result<(D::File, D::File), String> {
        let log_path = self.log_path_for(generation);
        let marks_path = self.marks_path_for(generation);
        let ctx =
            |what: &str, path: &Path, e: std::io::Error| format!("{what} {}: {e}", path.display());
        let mut log =
            (self.fs.open_append(&log_path)).map_err(|e| ctx("cannot open", &log_path, e))?;
        if r.valid_len < bytes.len() {
            log.set_len(r.valid_len as u64)
                .map_err(|e| ctx("cannot cut the torn final record of", &log_path, e))?;
            log.sync_all()
                .map_err(|e| ctx("cannot fsync", &log_path, e))?;
            self.torn_bytes = (bytes.len() - r.valid_len) as u64;
        }
        let mut file =
            (self.fs.open_append(&marks_path)).map_err(|e| ctx("cannot open", &marks_path, e))?;
        if marks.valid_len < marks.file_len {
            file.set_len(marks.valid_len as u64)
                .map_err(|e| ctx("cannot cut the torn final mark of", &marks_path, e))?;
        }
        if marks.valid_len < marks.file_len || r.valid_len as u64 != marks.durable {
            file.append(&encode_mark(generation, r.valid_len as u64))
                .map_err(|e| ctx("cannot append to", &marks_path, e))?;
            file.sync_all()
                .map_err(|e| ctx("cannot fsync", &marks_path, e))?;
        }
        Ok((log, file))
    }

    /// `load` with no meta file. A fresh directory has no log file either. Otherwise the meta
    /// was lost (it is only ever replaced, by a rename), or the very first save crashed before
    /// naming its log; starting as a new empty server would then forget a vote and entries this
    /// node may have acknowledged (the audit's finding 6). The newest log generation holds the
    /// term, vote and entries of the last save made durable, or of one about to be (a rewrite
    /// that crashed before its rename: newer, never acknowledged, safe to adopt). When its
    /// checkpoint starts at index 1 there was no snapshot, so nothing else was in the meta: the
    /// state is recovered whole and a meta written again. Otherwise the snapshot it continues is
    /// lost with the meta: damage (`load` recovers from the peers).
    fn load_without_meta(&mut self) -> Result<Option<Storage>, String> {
        let Some(newest) = self.log_generations().into_iter().max() else {
            return Ok(None);
        };
        let path = self.log_path_for(newest);
        let lost = |why: String| {
            unusable(
                &self.meta_path,
                &format!("missing, and log file {} {why}", path.display()),
            )
        };
        let bytes = (self.fs.read(&path))
            .map_err(|e| format!("{NOT_DAMAGE}{}", lost(format!("cannot be read: {e}"))))?;
        // Its marks, when they are there, say how much of it was made durable. Without them (a
        // rewrite that crashed before its commit point, which writes them first) it must be its
        // checkpoint alone: appends come only after a commit.
        let durable = match self.fs.read(&self.marks_path_for(newest)) {
            Ok(m) => {
                read_marks(&m, self.node, self.cluster, newest)
                    .map_err(|why| lost(format!("has unusable sync marks ({why})")))?
                    .durable
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => {
                return Err(format!(
                    "{NOT_DAMAGE}{}",
                    lost(format!("has sync marks that cannot be read: {e}"))
                ))
            }
        };
        let r = replay(&bytes, self.node, self.cluster, newest, 0, durable).map_err(|why| {
            lost(format!(
                "cannot stand alone ({why}): the snapshot or entries it continues are lost"
            ))
        })?;
        if durable == 0 && (r.records > 1 || r.valid_len < bytes.len()) {
            return Err(lost(format!(
                "holds more than its checkpoint record ({} bytes), but its sync marks are \
                 missing too",
                bytes.len()
            )));
        }
        let storage = Storage {
            term: r.term,
            voted_for: r.voted_for,
            log: Log {
                base_index: 0,
                base_term: 0,
                entries: r.entries.into(),
            },
            snapshot: None,
            recovering: r.recovering,
            maybe_new: false, // Never kept: see `Storage::maybe_new`.
        };
        self.rewrite(storage.clone())?;
        let kept = self.disk.as_ref().map_or(0, |d| d.generation);
        self.remove_other_logs(kept);
        self.recovered_without_meta = Some(path);
        Ok(Some(storage))
    }

    /// Best effort: log files of other generations are left over from a rewrite that crashed
    /// before its meta rename, or whose old generation could not be deleted.
    fn remove_other_logs(&self, keep: u64) {
        for (name, g) in self.generation_files() {
            if g != keep {
                let _ = self.fs.remove_file(&self.dir.join(name));
            }
        }
    }

    /// The log and sync marks files in the directory, with their generations.
    fn generation_files(&self) -> Vec<(String, u64)> {
        let Ok(names) = self.fs.list_dir(&self.dir) else {
            return Vec::new();
        };
        names
            .into_iter()
            .filter_map(|name| {
                let g = [LOG_FILE_PREFIX, SYNC_FILE_PREFIX]
                    .iter()
                    .find_map(|prefix| name.strip_prefix(prefix)?.parse().ok())?;
                Some((name, g))
            })
            .collect()
    }

    fn log_generations(&self) -> Vec<u64> {
        let Ok(names) = self.fs.list_dir(&self.dir) else {
            return Vec::new();
        };
        names
            .iter()
            .filter_map(|name| name.strip_prefix(LOG_FILE_PREFIX)?.parse().ok())
            .collect()
    }

    /// Makes `storage` durable (see the module docs for how).
    pub fn save(&mut self, storage: Storage) -> Result<(), String> {
        match self.plan(&storage) {
            Plan::Nothing => {
                if let Some(d) = &mut self.disk {
                    d.storage = storage;
                }
                Ok(())
            }
            Plan::Append(common) => self.append(storage, common),
            Plan::Rewrite => self.rewrite(storage),
        }
    }

    fn plan(&self, new: &Storage) -> Plan {
        let Some(disk) = &self.disk else {
            return Plan::Rewrite;
        };
        let old = &disk.storage;
        if old.log.base_index != new.log.base_index
            || old.log.base_term != new.log.base_term
            || old.snapshot != new.snapshot
        {
            return Plan::Rewrite;
        }
        let (o, n) = (&old.log.entries, &new.log.entries);
        // Every overlapping entry: a conflict replaces a suffix, possibly with entries of the
        // same length, and nothing here may assume the caller obeys Log Matching. (The chunks
        // the saved copy shares with the new log are skipped whole.)
        let common = o
            .first_difference(n, 0, usize::MAX)
            .unwrap_or(o.len().min(n.len()));
        if common == o.len()
            && common == n.len()
            && old.term == new.term
            && old.voted_for == new.voted_for
            && old.recovering == new.recovering
        {
            return Plan::Nothing;
        }
        let appended = (n.len() - common) as u64;
        let written = disk.written + appended;
        let bare = disk.bare_records + u64::from(appended == 0);
        let live = n.len() as u64;
        if written.saturating_sub(live) + bare > live.max(GARBAGE_MIN) {
            return Plan::Rewrite;
        }
        Plan::Append(common)
    }

    fn append(&mut self, new: Storage, common: usize) -> Result<(), String> {
        let disk = self
            .disk
            .as_mut()
            .expect("an append follows a load or save");
        let entries: Vec<&Entry> = new.log.entries.iter().skip(common).collect();
        let record = encode_record(&RecordOut {
            term: new.term,
            voted_for: new.voted_for,
            start: new.log.base_index + 1 + common as LogIndex,
            entries: entries.clone(),
            recovering: new.recovering,
        })?;
        let path = &disk.log_path;
        let ctx = |what: &str, e: std::io::Error| format!("{what} {}: {e}", path.display());
        disk.log
            .append(&record)
            .map_err(|e| ctx("cannot append to", e))?;
        disk.log.sync_data().map_err(|e| ctx("cannot fsync", e))?;
        // Only now, the record durable, its mark: a crash between the two leaves a record past
        // the last mark, intact (kept) or torn (cut), never acknowledged either way.
        disk.log_len += record.len() as u64;
        let marks_ctx = |what: &str, e: std::io::Error| {
            format!("{what} the sync marks of {}: {e}", path.display())
        };
        (disk.marks)
            .append(&encode_mark(disk.generation, disk.log_len))
            .map_err(|e| marks_ctx("cannot append to", e))?;
        (disk.marks)
            .sync_data()
            .map_err(|e| marks_ctx("cannot fsync", e))?;
        disk.written += entries.len() as u64;
        disk.bare_records += u64::from(entries.is_empty());
        disk.storage = new;
        Ok(())
    }

    fn rewrite(&mut self, new: Storage) -> Result<(), String> {
        let generation = match &self.disk {
            Some(d) => d.generation + 1,
            None => self.log_generations().into_iter().max().unwrap_or(0) + 1,
        };
        let (log, log_path, log_len) = self.write_log_generation(generation, &new)?;
        let mut first_mark = sync_header(self.node, self.cluster, generation);
        first_mark.extend_from_slice(&encode_mark(generation, log_len));
        let marks = write_synced(&self.fs, &self.marks_path_for(generation), &first_mark)?;
        // The new files' directory entries must be durable before the meta names them.
        self.sync_dir()?;
        self.replace_meta(generation, &new)?;

        // Committed: the previous generation is garbage now.
        if let Some(old) = self.disk.take() {
            drop(old.log);
            drop(old.marks);
            let _ = self.fs.remove_file(&old.log_path);
            let _ = self.fs.remove_file(&self.marks_path_for(old.generation));
        }
        self.disk = Some(OnDisk {
            written: new.log.entries.len() as u64,
            storage: new,
            generation,
            log,
            log_path,
            log_len,
            marks,
            bare_records: 0,
        });
        Ok(())
    }

    /// Writes and fsyncs log file `generation`: its header and one checkpoint record holding the
    /// whole of `new`'s log. Returns it open for appends, with its path and length.
    fn write_log_generation(
        &self,
        generation: u64,
        new: &Storage,
    ) -> Result<(D::File, PathBuf, u64), String> {
        let log_path = self.log_path_for(generation);
        let mut bytes = log_header(self.node, self.cluster, generation);
        bytes.extend_from_slice(&encode_record(&RecordOut {
            term: new.term,
            voted_for: new.voted_for,
            start: new.log.base_index + 1,
            entries: new.log.entries.iter().collect(),
            recovering: new.recovering,
        })?);
        let log = write_synced(&self.fs, &log_path, &bytes)?;
        Ok((log, log_path, bytes.len() as u64))
    }

    /// Points the meta file at `generation` (with `new`'s snapshot boundary): written to a
    /// temporary file, fsynced, renamed over the meta file, the directory fsynced. The rename
    /// is the commit point of a rewrite.
    fn replace_meta(&self, generation: u64, new: &Storage) -> Result<(), String> {
        let meta = encode_framed(
            &serde_json::to_vec(&MetaOut {
                generation,
                base_index: new.log.base_index,
                base_term: new.log.base_term,
                snapshot: new.snapshot.as_deref(),
            })
            .map_err(|e| format!("cannot encode the state: {e}"))?,
            META_MAGIC,
            VERSION,
            self.node,
            self.cluster,
        );
        let tmp = &self.meta_tmp;
        drop(write_synced(&self.fs, tmp, &meta)?);
        self.fs.rename(tmp, &self.meta_path).map_err(|e| {
            format!(
                "cannot rename {} to {}: {e}",
                tmp.display(),
                self.meta_path.display()
            )
        })?;
        self.sync_dir()
    }

    fn sync_dir(&self) -> Result<(), String> {
        self.fs
            .sync_dir(&self.dir)
            .map_err(|e| format!("cannot fsync directory {}: {e}", self.dir.display()))
    }
}

/// Creates (or truncates) `path`, writes `bytes` and fsyncs them; returns the file, still open.
fn write_synced<D: Disk>(fs: &D, path: &Path, bytes: &[u8]) -> Result<D::File, String> {
    let ctx = |what: &str, e: std::io::Error| format!("{what} {}: {e}", path.display());
    let mut f = fs.create(path).map_err(|e| ctx("cannot create", e))?;
    f.append(bytes).map_err(|e| ctx("cannot write", e))?;
    f.sync_all().map_err(|e| ctx("cannot fsync", e))?;
    Ok(f)
}

fn unusable(path: &Path, why: &str) -> String {
    format!("state file {} is unusable ({why})", path.display())
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

fn header(magic: &[u8; 8], version: u32, node: u64, cluster: u64, last: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + DIGEST_LEN);
    out.extend_from_slice(magic);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&node.to_le_bytes());
    out.extend_from_slice(&cluster.to_le_bytes());
    out.extend_from_slice(&last.to_le_bytes());
    out
}

/// Checks magic, version and (after the checksum) node and cluster of a header; returns its last
/// field (payload length or generation).
fn check_header(
    bytes: &[u8],
    magic: &[u8; 8],
    version: u32,
    node: u64,
    cluster: u64,
    body: &[u8],
) -> Result<u64, String> {
    if &bytes[..8] != magic {
        return Err("bad magic: not a file of this kind".into());
    }
    // The checksum first: a version, node or cluster that differs in a file that checks out
    // is a configuration mistake; in one that does not, it is damage.
    let digest = Sha256::new()
        .chain_update(&bytes[..HEADER_LEN])
        .chain_update(body)
        .finalize();
    if digest.as_slice() != &bytes[HEADER_LEN..HEADER_LEN + DIGEST_LEN] {
        return Err("checksum mismatch: the file is corrupted".into());
    }
    let file_version = le_u32(&bytes[8..12]);
    if file_version != version {
        return Err(format!(
            "{NOT_DAMAGE}format version {file_version}, expected {version}"
        ));
    }
    let (file_node, file_cluster) = (le_u64(&bytes[12..20]), le_u64(&bytes[20..28]));
    if file_node != node {
        return Err(format!(
            "{NOT_DAMAGE}it belongs to server {file_node}, not server {node}"
        ));
    }
    if file_cluster != cluster {
        return Err(format!(
            "{NOT_DAMAGE}it belongs to cluster {file_cluster:016x}, not {cluster:016x} (different \
             --peers)"
        ));
    }
    Ok(le_u64(&bytes[28..36]))
}

/// header (last field: payload length) | SHA-256 of header and payload | payload.
fn encode_framed(
    payload: &[u8],
    magic: &[u8; 8],
    version: u32,
    node: u64,
    cluster: u64,
) -> Vec<u8> {
    let mut out = header(magic, version, node, cluster, payload.len() as u64);
    let digest = Sha256::new()
        .chain_update(&out)
        .chain_update(payload)
        .finalize();
    out.extend_from_slice(&digest);
    out.extend_from_slice(payload);
    out
}

fn decode_framed<'a>(
    bytes: &'a [u8],
    magic: &[u8; 8],
    version: u32,
    node: u64,
    cluster: u64,
) -> Result<&'a [u8], String> {
    if bytes.len() < HEADER_LEN + DIGEST_LEN {
        return Err(format!(
            "truncated: {} bytes, header alone is {}",
            bytes.len(),
            HEADER_LEN + DIGEST_LEN
        ));
    }
    let body = &bytes[HEADER_LEN + DIGEST_LEN..];
    let len = le_u64(&bytes[28..36]);
    if &bytes[..8] == magic && len != body.len() as u64 {
        return Err(format!(
            "truncated or torn: header says {len} payload bytes, file has {}",
            body.len()
        ));
    }
    check_header(bytes, magic, version, node, cluster, body)?;
    Ok(body)
}

fn log_header(node: u64, cluster: u64, generation: u64) -> Vec<u8> {
    generation_header(LOG_MAGIC, node, cluster, generation)
}

fn sync_header(node: u64, cluster: u64, generation: u64) -> Vec<u8> {
    generation_header(SYNC_MAGIC, node, cluster, generation)
}

/// The header of a log or sync marks file: its fields and their SHA-256.
fn generation_header(magic: &[u8; 8], node: u64, cluster: u64, generation: u64) -> Vec<u8> {
    let mut out = header(magic, VERSION, node, cluster, generation);
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    out
}

/// The mark a save appends once its log record is synced: the log file's length then.
fn encode_mark(generation: u64, log_len: u64) -> [u8; MARK_LEN] {
    let mut out = [0u8; MARK_LEN];
    out[..8].copy_from_slice(&log_len.to_le_bytes());
    let digest = Sha256::new()
        .chain_update(generation.to_le_bytes())
        .chain_update(log_len.to_le_bytes())
        .finalize();
    out[8..].copy_from_slice(&digest[..MARK_LEN - 8]);
    out
}

/// What a sync marks file says.
struct Marks {
    /// The log file's length at its last intact mark: every byte before it was synced before
    /// any save that wrote it returned.
    durable: u64,
    /// Bytes up to the end of the last intact mark.
    valid_len: usize,
    /// The file's length.
    file_len: usize,
}

/// Reads a sync marks file. Its last mark may be torn (cut short, or failing its checksum: the
/// save it marks never returned, so nothing depends on it); any other bad mark, or marks that
/// go backwards, are damage.
fn read_marks(bytes: &[u8], node: u64, cluster: u64, generation: u64) -> Result<Marks, String> {
    let head = check_generation_header(bytes, SYNC_MAGIC, node, cluster, generation)?;
    let mut marks = Marks {
        durable: 0,
        valid_len: head,
        file_len: bytes.len(),
    };
    let mut pos = head;
    while pos + MARK_LEN <= bytes.len() {
        let len = le_u64(&bytes[pos..pos + 8]);
        let last = pos + MARK_LEN == bytes.len();
        if bytes[pos..pos + MARK_LEN] != encode_mark(generation, len) {
            if last {
                break;
            }
            return Err(format!("corrupted sync mark at byte {pos}"));
        }
        if len < marks.durable {
            return Err(format!(
                "the sync mark at byte {pos} says {len} bytes, after one that said {}",
                marks.durable
            ));
        }
        marks.durable = len;
        pos += MARK_LEN;
        marks.valid_len = pos;
    }
    if marks.valid_len == head {
        return Err("truncated: no sync mark after the header".into());
    }
    Ok(marks)
}

fn encode_record(record: &RecordOut) -> Result<Vec<u8>, String> {
    let payload =
        serde_json::to_vec(record).map_err(|e| format!("cannot encode the state: {e}"))?;
    let len = u32::try_from(payload.len())
        .map_err(|_| format!("a save of {} bytes is too large", payload.len()))?;
    let mut out = Vec::with_capacity(RECORD_HEADER_LEN + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    let digest = Sha256::new()
        .chain_update(len.to_le_bytes())
        .chain_update(&payload)
        .finalize();
    out.extend_from_slice(&digest);
    out.extend_from_slice(&payload);
    Ok(out)
}

struct Replayed {
    term: Term,
    voted_for: Option<u64>,
    recovering: bool,
    entries: Vec<Entry>,
    /// Bytes up to the end of the last complete record.
    valid_len: usize,
    /// Records replayed, the checkpoint included.
    records: u64,
    written: u64,
    bare_records: u64,
}

impl Replayed {
    /// Replays one record found at byte `pos`: it must start within the log replayed so far
    /// (the checkpoint record, `first`, exactly at `base_index + 1`).
    fn apply(
        &mut self,
        rec: RecordIn,
        base_index: LogIndex,
        pos: usize,
        first: bool,
    ) -> Result<(), String> {
        let last = base_index + self.entries.len() as LogIndex;
        let fits = if first {
            rec.start == base_index + 1
        } else {
            rec.start > base_index && rec.start <= last + 1
        };
        if !fits {
            return Err(format!(
                "the record at byte {pos} starts at index {}, but the log holds {}..={last}",
                rec.start,
                base_index + 1
            ));
        }
        self.entries.truncate((rec.start - base_index - 1) as usize);
        self.written += rec.entries.len() as u64;
        self.bare_records += u64::from(rec.entries.is_empty() && !first);
        self.entries.extend(rec.entries);
        self.term = rec.term;
        self.voted_for = rec.voted_for;
        self.recovering = rec.recovering;
        Ok(())
    }
}

/// Replays a log file whose saves were synced through byte `durable` (see the module docs for
/// what is refused and what is cut off).
fn replay(
    bytes: &[u8],
    node: u64,
    cluster: u64,
    generation: u64,
    base_index: LogIndex,
    durable: u64,
) -> Result<Replayed, String> {
    let head = check_generation_header(bytes, LOG_MAGIC, node, cluster, generation)?;
    let mut r = Replayed {
        term: 0,
        voted_for: None,
        recovering: false,
        entries: Vec::new(),
        valid_len: head,
        records: 0,
        written: 0,
        bare_records: 0,
    };
    let mut pos = head;
    while pos < bytes.len() {
        let first = pos == head;
        let was_synced = (pos as u64) < durable;
        let (rec, len) = match read_record(&bytes[pos..], pos) {
            Ok(Some(found)) => found,
            // Past the last mark: a torn append, whose save never returned.
            Ok(None) | Err(_) if !was_synced && !first => break,
            Ok(None) if first => {
                return Err(format!(
                    "truncated: the checkpoint record at byte {pos} is incomplete"
                ))
            }
            Ok(None) => {
                return Err(format!(
                    "cut short: it ends inside the record at byte {pos}, yet its saves were \
                     synced through byte {durable}"
                ))
            }
            Err(why) => return Err(why),
        };
        if was_synced && (pos + len) as u64 > durable {
            return Err(format!(
                "its sync marks say byte {durable}, inside the record at byte {pos}"
            ));
        }
        r.apply(rec, base_index, pos, first)?;
        pos += len;
        r.valid_len = pos;
        r.records += 1;
    }
    if r.valid_len == head {
        return Err("truncated: no checkpoint record after the header".into());
    }
    if (r.valid_len as u64) < durable {
        return Err(format!(
            "cut short: {} bytes of records, yet its saves were synced through byte {durable}",
            r.valid_len
        ));
    }
    Ok(r)
}

/// Checks a log or sync marks file's header names this node, cluster and `generation`; returns
/// its length (where the records start).
fn check_generation_header(
    bytes: &[u8],
    magic: &[u8; 8],
    node: u64,
    cluster: u64,
    generation: u64,
) -> Result<usize, String> {
    let head = HEADER_LEN + DIGEST_LEN;
    if bytes.len() < head {
        return Err(format!(
            "truncated: {} bytes, header alone is {head}",
            bytes.len()
        ));
    }
    let file_generation = check_header(bytes, magic, VERSION, node, cluster, &[])?;
    if file_generation != generation {
        return Err(format!(
            "it is generation {file_generation}, {META_FILE} expects {generation}"
        ));
    }
    Ok(head)
}

/// Reads the record at byte `pos` of a log file (`rest` is the file from there on): the record
/// and its length in bytes, `None` when the file ends inside it, or an error when it is bad.
fn read_record(rest: &[u8], pos: usize) -> Result<Option<(RecordIn, usize)>, String> {
    if rest.len() < 8 {
        return Ok(None);
    }
    let len = le_u32(&rest[..4]);
    if le_u32(&rest[4..8]) != !len {
        return Err(format!(
            "corrupted record header at byte {pos}: length and its complement disagree"
        ));
    }
    let end = RECORD_HEADER_LEN + len as usize;
    if rest.len() < end {
        return Ok(None);
    }
    let payload = &rest[RECORD_HEADER_LEN..end];
    let digest = Sha256::new()
        .chain_update(&rest[..4])
        .chain_update(payload)
        .finalize();
    if digest.as_slice() != &rest[8..RECORD_HEADER_LEN] {
        return Err(format!(
            "checksum mismatch in the record at byte {pos}: the file is corrupted"
        ));
    }
    let rec: RecordIn = serde_json::from_slice(payload)
        .map_err(|e| format!("undecodable record at byte {pos}: {e}"))?;
    Ok(Some((rec, end)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::types::{Command, KvStore, Op};
    use std::fs;

    fn temp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("raft-storage-test-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn entry(term: Term, n: u64) -> Entry {
        Entry {
            term,
            command: std::sync::Arc::new(Command {
                client: 1000,
                request_id: n,
                op: Op::Put {
                    key: format!("k{n}"),
                    value: "v".into(),
                },
            }),
        }
    }

    fn storage(term: Term, voted_for: Option<u64>, entries: Vec<Entry>) -> Storage {
        Storage {
            term,
            voted_for,
            log: Log {
                base_index: 0,
                base_term: 0,
                entries: entries.into(),
            },
            snapshot: None,
            recovering: false,
            maybe_new: false,
        }
    }

    /// Saves `s`, then checks a fresh instance loads exactly it.
    fn save_and_check(st: &mut DurableStorage, dir: &Path, s: &Storage) {
        st.save(s.clone()).unwrap();
        let mut again = DurableStorage::open(dir, 1, 99).unwrap();
        assert_eq!(again.load().unwrap().as_ref(), Some(s));
        assert_eq!(again.torn_bytes(), 0);
    }

    /// Loads a copy of `dir` in which the file `name` holds `bytes` (None: is gone). The load
    /// must find the state damaged, move the state files aside, and return a wiped, recovering
    /// state, saved so that a restart recovers again. Returns why it was damaged.
    fn damage_reason(dir: &Path, name: &str, bytes: Option<&[u8]>) -> String {
        static COPIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COPIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let copy = temp(&format!("damaged-copy-{n}"));
        fs::create_dir_all(&copy).unwrap();
        for f in fs::read_dir(dir).unwrap() {
            let f = f.unwrap();
            fs::copy(f.path(), copy.join(f.file_name())).unwrap();
        }
        match bytes {
            Some(b) => fs::write(copy.join(name), b).unwrap(),
            None => fs::remove_file(copy.join(name)).unwrap(),
        }
        let mut st = DurableStorage::open(&copy, 1, 99).unwrap();
        assert_eq!(st.load().unwrap(), Some(Storage::wiped()));
        let why = st.damage().expect("the damage is reported").to_string();
        if bytes.is_some() {
            assert!(copy.join(format!("{name}.damaged")).exists(), "{why}");
        }
        let mut again = DurableStorage::open(&copy, 1, 99).unwrap();
        assert_eq!(again.load().unwrap(), Some(Storage::wiped()), "{why}");
        assert!(again.damage().is_none(), "recovering, not damaged again");
        let _ = fs::remove_dir_all(&copy);
        why
    }

    fn file_name(path: &Path) -> String {
        path.file_name().unwrap().to_string_lossy().into_owned()
    }

    /// Every corruption of the meta file is found; the node then recovers from its peers
    /// (`damage_reason`) instead of trusting what is left. Another node's or cluster's files
    /// are refused.
    #[test]
    fn meta_round_trip_and_every_corruption_is_found() {
        let dir = temp("meta");
        let mut st = DurableStorage::open(&dir, 1, 99).unwrap();
        assert_eq!(st.load().unwrap(), None);
        let s = storage(3, Some(2), vec![entry(1, 1)]);
        save_and_check(&mut st, &dir, &s);
        let meta = st.meta_path().to_path_buf();
        let good = fs::read(&meta).unwrap();
        for cut in 0..good.len() {
            let err = damage_reason(&dir, META_FILE, Some(&good[..cut]));
            assert!(
                err.contains(META_FILE) && err.contains("truncated"),
                "{err}"
            );
        }
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            let err = damage_reason(&dir, META_FILE, Some(&bad));
            assert!(err.contains(META_FILE), "flipping byte {i}: {err}");
        }
        for (node, cluster) in [(2, 99), (1, 98)] {
            let err = DurableStorage::open(&dir, node, cluster)
                .unwrap()
                .load()
                .unwrap_err();
            assert!(
                err.contains("belongs to") && err.contains("refusing"),
                "{err}"
            );
            assert!(!err.contains(NOT_DAMAGE), "{err}");
            assert_eq!(fs::read(&meta).unwrap(), good, "nothing is moved");
        }
        assert_eq!(
            DurableStorage::open(&dir, 1, 99).unwrap().load().unwrap(),
            Some(s)
        );
        // A meta file naming a log file that is gone.
        let log = file_name(st.log_path().unwrap());
        let err = damage_reason(&dir, &log, None);
        assert!(err.contains(LOG_FILE_PREFIX), "{err}");
        let _ = fs::remove_dir_all(&dir);
    }

    /// A log of a checkpoint and three appended records.
    fn three_appends(dir: &Path) -> (DurableStorage, Vec<Storage>, Vec<u64>) {
        let mut st = DurableStorage::open(dir, 1, 99).unwrap();
        assert_eq!(st.load().unwrap(), None);
        let mut states = vec![storage(1, Some(1), vec![entry(1, 1)])];
        states.push(storage(1, Some(1), vec![entry(1, 1), entry(1, 2)]));
        states.push(storage(
            2,
            None,
            vec![entry(1, 1), entry(1, 2), entry(2, 3)],
        ));
        states.push(storage(
            2,
            None,
            vec![
                entry(1, 1),
                entry(1, 2),
                entry(2, 3),
                entry(2, 4),
                entry(2, 5),
            ],
        ));
        let mut ends = Vec::new();
        for s in &states {
            save_and_check(&mut st, dir, s);
            ends.push(fs::metadata(st.log_path().unwrap()).unwrap().len());
        }
        (st, states, ends)
    }

    /// Every save of `three_appends` returned, so its marks cover the whole log: any cut of it,
    /// at a record boundary too (finding 6: acknowledged records cut away), and any flipped
    /// byte is damage.
    #[test]
    fn a_log_cut_anywhere_in_what_was_synced_is_damage() {
        let dir = temp("cut");
        let (st, _, ends) = three_appends(&dir);
        let log = st.log_path().unwrap().to_path_buf();
        let name = file_name(&log);
        let good = fs::read(&log).unwrap();
        assert_eq!(good.len() as u64, ends[3]);
        for cut in 0..good.len() {
            let err = damage_reason(&dir, &name, Some(&good[..cut]));
            assert!(err.contains(&name), "cut {cut}: {err}");
            if ends.contains(&(cut as u64)) {
                assert!(err.contains("cut short"), "cut {cut}: {err}");
            }
        }
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            let err = damage_reason(&dir, &name, Some(&bad));
            assert!(
                err.contains(&name),
                "flipping byte {i} went unnoticed: {err}"
            );
        }
        // A middle record's byte flipped is damage, however the tail looks.
        let mid = (ends[1] + ends[2]) as usize / 2;
        let mut bad = good.clone();
        bad[mid] ^= 0x40;
        let err = damage_reason(&dir, &name, Some(&bad[..good.len() - 3]));
        assert!(err.contains("checksum mismatch"), "{err}");
        let _ = fs::remove_dir_all(&dir);
    }

    /// A crash between a record's fsync and its mark's, or inside the record's write: the
    /// record past the last mark is kept when intact (and marked then), cut off when torn,
    /// whatever the tear looks like; a torn last mark is cut off too. The save never returned,
    /// so nothing was acknowledged on either.
    #[test]
    fn a_torn_append_past_the_last_mark_is_cut_off() {
        let dir = temp("torn");
        let (mut st, mut states, ends) = three_appends(&dir);
        let log = st.log_path().unwrap().to_path_buf();
        let marks = dir.join(format!(
            "{SYNC_FILE_PREFIX}{}",
            &file_name(&log)[LOG_FILE_PREFIX.len()..]
        ));
        let marks3 = fs::read(&marks).unwrap();
        let mut four = states[3].clone();
        four.log.entries.push(entry(3, 6));
        four.term = 3;
        st.save(four.clone()).unwrap();
        states.push(four);
        let good = fs::read(&log).unwrap();
        let end4 = good.len();
        let mut torn = vec![];
        for cut in ends[3] as usize..=end4 {
            torn.push(good[..cut].to_vec());
        }
        // A complete record that fails its checksum: a tear inside it.
        let mut flipped = good.clone();
        flipped[end4 - 2] ^= 0x10;
        torn.push(flipped);
        for (n, bytes) in torn.iter().enumerate() {
            fs::write(&log, bytes).unwrap();
            fs::write(&marks, &marks3).unwrap();
            let mut st = DurableStorage::open(&dir, 1, 99).unwrap();
            let kept = if bytes == &good { 4 } else { 3 };
            assert_eq!(st.load().unwrap().as_ref(), Some(&states[kept]), "case {n}");
            assert_eq!(st.damage(), None);
            let left = if kept == 4 { end4 } else { ends[3] as usize };
            assert_eq!(st.torn_bytes(), (bytes.len() - left) as u64, "case {n}");
            assert_eq!(fs::metadata(&log).unwrap().len(), left as u64);
            // What is kept is marked now: a later cut of it is damage; appends go on.
            if kept == 4 {
                let err = damage_reason(&dir, &file_name(&log), Some(&good[..ends[3] as usize]));
                assert!(err.contains("cut short"), "{err}");
            }
            let mut more = states[kept].clone();
            more.log.entries.push(entry(7, 70));
            save_and_check(&mut st, &dir, &more);
        }
        // The last mark torn (cut short or flipped): the one before it holds; the log is intact.
        fs::write(&log, &good[..ends[3] as usize]).unwrap();
        for cut in [marks3.len() - 1, marks3.len() - MARK_LEN, marks3.len() - 5] {
            fs::write(&marks, &marks3[..cut]).unwrap();
            let mut st = DurableStorage::open(&dir, 1, 99).unwrap();
            assert_eq!(
                st.load().unwrap().as_ref(),
                Some(&states[3]),
                "mark cut {cut}"
            );
        }
        let mut bad = marks3.clone();
        *bad.last_mut().unwrap() ^= 1;
        fs::write(&marks, &bad).unwrap();
        assert_eq!(
            DurableStorage::open(&dir, 1, 99)
                .unwrap()
                .load()
                .unwrap()
                .as_ref(),
            Some(&states[3])
        );
        // An earlier mark flipped, or the marks file gone: damage.
        let mut bad = marks3.clone();
        bad[marks3.len() - MARK_LEN - 1] ^= 1;
        let err = damage_reason(&dir, &file_name(&marks), Some(&bad));
        assert!(err.contains("corrupted sync mark"), "{err}");
        let err = damage_reason(&dir, &file_name(&marks), None);
        assert!(err.contains(SYNC_FILE_PREFIX), "{err}");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn append_truncate_append_and_term_changes_round_trip() {
        let dir = temp("truncate");
        let mut st = DurableStorage::open(&dir, 1, 99).unwrap();
        assert_eq!(st.load().unwrap(), None);
        let mut s = storage(1, None, vec![]);
        save_and_check(&mut st, &dir, &s);
        let gen = st.log_path().unwrap().to_path_buf();
        for n in 1..=5 {
            s.log.entries.push(entry(1, n));
            save_and_check(&mut st, &dir, &s);
        }
        // A conflict: the suffix from index 4 replaced by entries of a later term, same length.
        s.term = 2;
        s.voted_for = Some(0);
        s.log.entries.truncate(3);
        s.log.entries.push(entry(2, 40));
        s.log.entries.push(entry(2, 50));
        save_and_check(&mut st, &dir, &s);
        // Same terms, different commands: still a difference.
        s.log.entries.truncate(4);
        s.log.entries.push(entry(2, 51));
        save_and_check(&mut st, &dir, &s);
        // A pure truncation, then appends again; then a vote alone; then nothing at all.
        s.log.entries.truncate(2);
        save_and_check(&mut st, &dir, &s);
        s.log.entries.push(entry(2, 30));
        save_and_check(&mut st, &dir, &s);
        s.voted_for = None;
        s.term = 3;
        save_and_check(&mut st, &dir, &s);
        let len = fs::metadata(&gen).unwrap().len();
        save_and_check(&mut st, &dir, &s);
        assert_eq!(fs::metadata(&gen).unwrap().len(), len, "a no-op save wrote");
        // All of it by appends to the first generation.
        assert_eq!(st.log_path().unwrap(), gen);
        assert!(!dir.join(format!("{LOG_FILE_PREFIX}2")).exists());
        let _ = fs::remove_dir_all(&dir);
    }

    /// Finding 6 of the audit: a missing meta file used to start the node as a new empty
    /// server. With no snapshot the log file holds the whole state, which comes back (vote
    /// included); with a snapshot, what the meta held is gone: damage, recovered from peers.
    #[test]
    fn a_lost_meta_file_is_recovered_from_the_log_or_from_the_peers() {
        let dir = temp("nometa");
        let mut st = DurableStorage::open(&dir, 1, 99).unwrap();
        assert_eq!(st.load().unwrap(), None, "a fresh directory starts empty");
        let mut s = storage(3, Some(2), (1..=5).map(|n| entry(1, n)).collect());
        st.save(s.clone()).unwrap();
        s.log.entries.push(entry(3, 6));
        st.save(s.clone()).unwrap();
        fs::remove_file(dir.join(META_FILE)).unwrap();
        let mut again = DurableStorage::open(&dir, 1, 99).unwrap();
        assert_eq!(again.load().unwrap().as_ref(), Some(&s));
        assert!(again.recovered_without_meta().is_some());
        assert!(
            dir.join(META_FILE).exists(),
            "the meta file is written again"
        );
        s.log.entries.push(entry(3, 7));
        save_and_check(&mut again, &dir, &s);

        s.log.compact_through(4, 1);
        s.snapshot = Some(std::sync::Arc::new(Snapshot {
            last_index: 4,
            last_term: 1,
            state: KvStore::default(),
        }));
        save_and_check(&mut again, &dir, &s);
        let why = damage_reason(&dir, META_FILE, None);
        assert!(why.contains("missing") && why.contains("lost"), "{why}");
        // Recovery is marked in the records: a wiped, recovering state round-trips, and so
        // does the repair that clears the mark.
        let dir = temp("recovering");
        let mut st = DurableStorage::open(&dir, 1, 99).unwrap();
        assert_eq!(st.load().unwrap(), None);
        let mut r = Storage::wiped();
        save_and_check(&mut st, &dir, &r);
        r.term = 4;
        r.log.entries.push(entry(2, 1));
        save_and_check(&mut st, &dir, &r);
        r.recovering = false;
        r.voted_for = Some(0);
        save_and_check(&mut st, &dir, &r);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn compaction_and_snapshot_install_round_trip() {
        let dir = temp("compact");
        let mut st = DurableStorage::open(&dir, 1, 99).unwrap();
        assert_eq!(st.load().unwrap(), None);
        let mut s = storage(1, Some(1), (1..=6).map(|n| entry(1, n)).collect());
        save_and_check(&mut st, &dir, &s);
        let first = st.log_path().unwrap().to_path_buf();
        let mut kv = KvStore::default();
        kv.data.insert("k".into(), "v".into());
        s.log.compact_through(4, 1);
        s.snapshot = Some(std::sync::Arc::new(Snapshot {
            last_index: 4,
            last_term: 1,
            state: kv.clone(),
        }));
        save_and_check(&mut st, &dir, &s);
        assert_ne!(st.log_path().unwrap(), first);
        assert!(!first.exists(), "the old generation was kept");
        s.log.entries.push(entry(2, 7));
        s.term = 2;
        save_and_check(&mut st, &dir, &s);
        // A snapshot install that discards the whole log.
        s.log.reset_to(10, 2);
        s.snapshot = Some(std::sync::Arc::new(Snapshot {
            last_index: 10,
            last_term: 2,
            state: kv,
        }));
        save_and_check(&mut st, &dir, &s);
        s.log.entries.push(entry(2, 11));
        save_and_check(&mut st, &dir, &s);
        // A leftover generation from a rewrite that crashed before its meta rename is ignored
        // and removed.
        let stray = dir.join(format!("{LOG_FILE_PREFIX}99"));
        fs::write(&stray, b"junk").unwrap();
        save_and_check(&mut st, &dir, &s);
        assert!(!stray.exists());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn garbage_from_truncations_triggers_a_rewrite() {
        let dir = temp("garbage");
        let mut st = DurableStorage::open(&dir, 1, 99).unwrap();
        assert_eq!(st.load().unwrap(), None);
        let mut s = storage(1, None, vec![entry(1, 0)]);
        st.save(s.clone()).unwrap();
        let first = st.log_path().unwrap().to_path_buf();
        for n in 1..=GARBAGE_MIN + 2 {
            s.log.entries.truncate(0);
            s.log.entries.push(entry(1, n));
            st.save(s.clone()).unwrap();
        }
        assert_ne!(st.log_path().unwrap(), first);
        save_and_check(&mut st, &dir, &s);
        let _ = fs::remove_dir_all(&dir);
    }
}

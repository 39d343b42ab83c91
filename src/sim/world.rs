//! The virtual world a simulated node runs in: a clock that reads virtual time, a network
//! endpoint that hands the node what the simulated network delivered, and an in-memory disk that
//! keeps what was written apart from what was synced, so a crash can lose or tear the rest.
//! Everything is shared with the simulator through `Rc`: one thread, one run, no locks.

use crate::net::driver::Rng;
use crate::net::world::{Clock, Disk, DiskFile, Network};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Virtual time shared by every node of a run: a fixed origin plus the simulator's current
/// virtual offset. Only differences of instants reach a decision, so the origin (read once from
/// the real clock) never changes what a run does.
#[derive(Clone)]
pub struct SimClock {
    origin: Instant,
    now: Rc<Cell<Duration>>,
    seed: u64,
}

impl SimClock {
    /// A clock at virtual time 0; `seed` is the run's, from which every generator derives.
    pub fn new(seed: u64) -> SimClock {
        VIRTUAL_NOW.set(Duration::ZERO);
        SimClock {
            origin: Instant::now(),
            now: Rc::new(Cell::new(Duration::ZERO)),
            seed,
        }
    }

    /// The virtual time elapsed since the run began.
    pub fn elapsed(&self) -> Duration {
        self.now.get()
    }

    /// Moves virtual time to `t` (the simulator's next event).
    pub fn set(&self, t: Duration) {
        self.now.set(t);
        VIRTUAL_NOW.set(t);
    }

    /// The virtual offset of an instant of this clock.
    pub fn offset(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.origin)
    }
}

thread_local! {
    /// The virtual time of the run on this thread, for log lines (`sim` stamps them with it,
    /// so a seed's log is the same on every machine). A run is one thread's.
    static VIRTUAL_NOW: Cell<Duration> = const { Cell::new(Duration::ZERO) };
}

/// The virtual time of the simulated run on this thread (zero outside one).
pub fn virtual_now() -> Duration {
    VIRTUAL_NOW.get()
}

impl Clock for SimClock {
    fn now(&self) -> Instant {
        self.origin + self.now.get()
    }
    fn rng(&self, salt: u64) -> Rng {
        Rng::from_seed(self.seed ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }
}

/// What the simulated network has delivered to one endpoint, and what it has sent.
#[derive(Default)]
pub struct Mailbox {
    /// Datagrams that arrived and wait to be read, in arrival order.
    pub inbox: VecDeque<(SocketAddr, Vec<u8>)>,
    /// Datagrams sent since the simulator last collected them: (destination, bytes).
    pub outbox: Vec<(SocketAddr, Vec<u8>)>,
}

/// A node's network endpoint: reads what the simulator put in its mailbox, never waits (the
/// simulator calls the node only when something is due), and queues sends for the simulator.
pub struct SimNet {
    mailbox: Rc<RefCell<Mailbox>>,
}

impl SimNet {
    /// An endpoint over `mailbox`, which the simulator keeps a handle to.
    pub fn new(mailbox: Rc<RefCell<Mailbox>>) -> SimNet {
        SimNet { mailbox }
    }
}

impl Network for SimNet {
    fn send_to(&mut self, bytes: &[u8], to: SocketAddr) -> io::Result<()> {
        self.mailbox.borrow_mut().outbox.push((to, bytes.to_vec()));
        Ok(())
    }

    fn recv_from(
        &mut self,
        buf: &mut [u8],
        _wait: Option<Duration>,
    ) -> io::Result<Option<(usize, SocketAddr)>> {
        let Some((from, bytes)) = self.mailbox.borrow_mut().inbox.pop_front() else {
            return Ok(None);
        };
        let len = bytes.len().min(buf.len());
        buf[..len].copy_from_slice(&bytes[..len]);
        Ok(Some((len, from)))
    }
}

/// One file's contents: what is written, and what a crash is sure to keep. Files change only
/// by appends and truncations, so a sync copies only what changed since the last one (from
/// `dirty_from` on): copying whole files per fsync made long runs quadratic.
#[derive(Clone, Default)]
struct Inode {
    data: Vec<u8>,
    synced: Vec<u8>,
    /// The first offset written or truncated since the last sync.
    dirty_from: usize,
}

impl Inode {
    fn sync(&mut self) {
        self.synced.truncate(self.dirty_from);
        self.synced.extend_from_slice(&self.data[self.dirty_from..]);
        self.dirty_from = self.data.len();
    }

    /// After a crash: the synced contents, then maybe a prefix of what was only appended.
    fn crash(&mut self, rng: &mut Rng) {
        let appended_only = self.dirty_from == self.synced.len();
        let extra = self.data.len().saturating_sub(self.dirty_from);
        let keep = if appended_only && extra > 0 && rng.next_u64().is_multiple_of(2) {
            (rng.next_u64() % (extra as u64 + 1)) as usize
        } else {
            0
        };
        let mut data = self.synced.clone();
        if keep > 0 {
            data.extend_from_slice(&self.data[self.dirty_from..self.dirty_from + keep]);
        }
        self.data = data;
        self.dirty_from = self.synced.len();
    }
}

#[derive(Default)]
struct DiskState {
    inodes: BTreeMap<u64, Inode>,
    /// The directory as the node sees it.
    names: BTreeMap<PathBuf, u64>,
    /// The directory as a crash leaves it: what the last directory fsync made durable.
    durable_names: BTreeMap<PathBuf, u64>,
    next_inode: u64,
    syncs: u64,
    /// Power fails at the next fsync: it returns an error and nothing more is made durable.
    fail_next_sync: bool,
}

/// An in-memory disk with fsync semantics: writes are volatile until their file is synced, and
/// creations, renames and removals until their directory is. [`crash`](SimDisk::crash) keeps
/// only the durable part (plus, maybe, a torn prefix of what followed it); `wipe` loses all.
#[derive(Clone, Default)]
pub struct SimDisk(Rc<RefCell<DiskState>>);

/// A file of a [`SimDisk`], open for appending.
pub struct SimFile {
    disk: SimDisk,
    inode: u64,
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(ErrorKind::NotFound, format!("{} not found", path.display()))
}

fn power_loss() -> io::Error {
    io::Error::other("simulated power loss during fsync")
}

impl SimDisk {
    /// How many fsyncs (of files and directories) the disk has done: the simulator charges
    /// each one its latency.
    pub fn syncs(&self) -> u64 {
        self.0.borrow().syncs
    }

    /// Makes the next fsync fail as a power loss would: the node stops there, before sending
    /// anything that depended on it, and [`crash`](Self::crash) then decides what survived.
    pub fn fail_next_sync(&self) {
        self.0.borrow_mut().fail_next_sync = true;
    }

    /// A crash: the directory reverts to its last synced state, and each file to its synced
    /// contents followed by a random prefix (maybe empty, maybe all) of what was appended after
    /// them: a torn write. Files no longer named are gone.
    pub fn crash(&self, rng: &mut Rng) {
        let mut d = self.0.borrow_mut();
        d.fail_next_sync = false;
        d.names = d.durable_names.clone();
        let live: Vec<u64> = d.names.values().copied().collect();
        d.inodes.retain(|id, _| live.contains(id));
        for inode in d.inodes.values_mut() {
            inode.crash(rng);
        }
    }

    /// Bytes in the files the directory names.
    pub fn bytes(&self) -> usize {
        let d = self.0.borrow();
        d.names.values().map(|id| d.inodes[id].data.len()).sum()
    }

    /// Loses everything, as a replaced disk or a deleted data directory does.
    pub fn wipe(&self) {
        *self.0.borrow_mut() = DiskState::default();
    }

    fn sync(&self, inode: Option<u64>) -> io::Result<()> {
        let mut d = self.0.borrow_mut();
        if d.fail_next_sync {
            return Err(power_loss());
        }
        d.syncs += 1;
        match inode {
            Some(id) => {
                if let Some(f) = d.inodes.get_mut(&id) {
                    f.sync();
                }
            }
            None => d.durable_names = d.names.clone(),
        }
        Ok(())
    }
}

impl Disk for SimDisk {
    type File = SimFile;

    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let d = self.0.borrow();
        let id = d.names.get(path).ok_or_else(|| not_found(path))?;
        Ok(d.inodes[id].data.clone())
    }
    fn open_append(&self, path: &Path) -> io::Result<SimFile> {
        let inode = *self
            .0
            .borrow()
            .names
            .get(path)
            .ok_or_else(|| not_found(path))?;
        Ok(SimFile {
            disk: self.clone(),
            inode,
        })
    }
    fn create(&self, path: &Path) -> io::Result<SimFile> {
        let mut d = self.0.borrow_mut();
        let inode = match d.names.get(path) {
            Some(&id) => id,
            None => {
                d.next_inode += 1;
                let id = d.next_inode;
                d.names.insert(path.to_path_buf(), id);
                id
            }
        };
        let f = d.inodes.entry(inode).or_default();
        f.data.clear();
        f.dirty_from = 0;
        Ok(SimFile {
            disk: self.clone(),
            inode,
        })
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut d = self.0.borrow_mut();
        d.names
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| not_found(path))
    }
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let d = self.0.borrow();
        Ok(d.names
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
            .collect())
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut d = self.0.borrow_mut();
        let id = d.names.remove(from).ok_or_else(|| not_found(from))?;
        d.names.insert(to.to_path_buf(), id);
        Ok(())
    }
    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        self.sync(None)
    }
}

impl SimFile {
    fn with<T>(&self, f: impl FnOnce(&mut Inode) -> T) -> io::Result<T> {
        let mut d = self.disk.0.borrow_mut();
        let inode = d
            .inodes
            .get_mut(&self.inode)
            .ok_or_else(|| io::Error::other("file lost in a crash"))?;
        Ok(f(inode))
    }
}

impl DiskFile for SimFile {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.with(|f| {
            f.dirty_from = f.dirty_from.min(f.data.len());
            f.data.extend_from_slice(bytes)
        })
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.with(|f| {
            f.data.resize(len as usize, 0);
            f.dirty_from = f.dirty_from.min(f.data.len());
        })
    }
    fn sync_all(&mut self) -> io::Result<()> {
        self.disk.sync(Some(self.inode))
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.disk.sync(Some(self.inode))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_keeps_synced_data_and_at_most_a_prefix_of_the_rest() {
        let disk = SimDisk::default();
        let dir = Path::new("/d");
        let mut f = disk.create(&dir.join("a")).unwrap();
        f.append(b"hello").unwrap();
        f.sync_data().unwrap();
        disk.sync_dir(dir).unwrap();
        f.append(b" world").unwrap();
        let mut g = disk.create(&dir.join("b")).unwrap();
        g.append(b"unsynced name").unwrap();
        g.sync_all().unwrap();
        let mut rng = Rng::from_seed(7);
        disk.crash(&mut rng);
        let a = disk.read(&dir.join("a")).unwrap();
        assert!(a.starts_with(b"hello") && b"hello world".starts_with(&a[..]));
        // Its directory entry was never synced: the file is gone.
        assert_eq!(
            disk.read(&dir.join("b")).unwrap_err().kind(),
            ErrorKind::NotFound
        );
        disk.wipe();
        assert!(disk.list_dir(dir).unwrap().is_empty());
    }

    #[test]
    fn a_power_loss_fails_the_sync_and_the_write_may_tear() {
        let disk = SimDisk::default();
        let path = Path::new("/d/a");
        let mut f = disk.create(path).unwrap();
        f.sync_all().unwrap();
        disk.sync_dir(Path::new("/d")).unwrap();
        f.append(b"0123456789").unwrap();
        disk.fail_next_sync();
        assert!(f.sync_data().is_err());
        let mut torn = false;
        for seed in 0..20 {
            let d2 = SimDisk::default();
            let mut f2 = d2.create(path).unwrap();
            f2.sync_all().unwrap();
            d2.sync_dir(Path::new("/d")).unwrap();
            f2.append(b"0123456789").unwrap();
            d2.crash(&mut Rng::from_seed(seed));
            let len = d2.read(path).unwrap().len();
            torn |= len > 0 && len < 10;
        }
        assert!(torn, "no seed tore the unsynced write");
    }
}

//! The world a node runs in: its clock (and the entropy it draws from), its network and its
//! disk. The node loop ([`Node`](super::node::Node)) and durable storage reach the outside only
//! through these traits, so the `node` binary plugs in the real ones (std `Instant`, a
//! `UdpSocket`, files with fsync) and the deterministic simulator plugs in virtual ones: one
//! loop, run both for real and under simulation, rather than a second copy that could drift.

use crate::net::driver::Rng;
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Seek, SeekFrom, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

/// Time and entropy. A simulated clock returns a fixed origin plus virtual time, so every
/// duration the loop computes is virtual and a run depends only on its seed.
pub trait Clock {
    /// The current time.
    fn now(&self) -> Instant;
    /// A generator for timer jitter and message ids; `salt` tells apart several drawn at once.
    fn rng(&self, salt: u64) -> Rng;
}

/// The real clock: `Instant::now`, and generators seeded from the time and process id.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn rng(&self, salt: u64) -> Rng {
        Rng::seeded(salt)
    }
}

/// A datagram network: what the node loop needs of a UDP socket.
pub trait Network {
    /// Sends one datagram (best effort, as UDP).
    fn send_to(&mut self, bytes: &[u8], to: SocketAddr) -> io::Result<()>;
    /// The next datagram into `buf`: waits up to `wait`, or with `None` only takes one already
    /// queued. `Ok(None)` when none came; an error is the socket's (e.g. an ICMP report).
    fn recv_from(
        &mut self,
        buf: &mut [u8],
        wait: Option<Duration>,
    ) -> io::Result<Option<(usize, SocketAddr)>>;
}

/// A real UDP socket; remembers whether it is in non-blocking mode so that draining a queue of
/// 512 datagrams does not cost 1024 extra system calls.
pub struct UdpNet {
    socket: UdpSocket,
    nonblocking: bool,
}

impl UdpNet {
    /// Wraps a bound socket (in blocking mode, as `UdpSocket::bind` returns it).
    pub fn new(socket: UdpSocket) -> UdpNet {
        UdpNet {
            socket,
            nonblocking: false,
        }
    }

    /// The socket, e.g. to set its buffer sizes.
    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    fn set_nonblocking(&mut self, on: bool) -> io::Result<()> {
        if self.nonblocking != on {
            self.socket.set_nonblocking(on)?;
            self.nonblocking = on;
        }
        Ok(())
    }
}

impl Network for UdpNet {
    fn send_to(&mut self, bytes: &[u8], to: SocketAddr) -> io::Result<()> {
        self.socket.send_to(bytes, to).map(|_| ())
    }

    fn recv_from(
        &mut self,
        buf: &mut [u8],
        wait: Option<Duration>,
    ) -> io::Result<Option<(usize, SocketAddr)>> {
        match wait {
            Some(wait) => {
                self.set_nonblocking(false)?;
                self.socket.set_read_timeout(Some(wait))?;
            }
            None => self.set_nonblocking(true)?,
        }
        match self.socket.recv_from(buf) {
            Ok(got) => Ok(Some(got)),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A directory of files with fsync: what durable storage needs of a file system. A simulated
/// disk keeps what was written apart from what was synced, so a crash can lose or tear the rest.
pub trait Disk {
    /// An open file that appends.
    type File: DiskFile;
    /// Creates `dir` and its parents if missing.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// A whole file's contents; `ErrorKind::NotFound` when there is none.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Opens an existing file for appending at its end.
    fn open_append(&self, path: &Path) -> io::Result<Self::File>;
    /// Creates (or truncates) a file, open for appending.
    fn create(&self, path: &Path) -> io::Result<Self::File>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// The names of the entries of `dir`.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Renames `from` over `to` (atomically, as POSIX rename).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes `dir`'s entries (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// A file open for appending.
pub trait DiskFile {
    /// Appends `bytes` at the end.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Cuts the file to `len` bytes; appends continue from the new end.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    /// Makes the contents and metadata durable (fsync).
    fn sync_all(&mut self) -> io::Result<()>;
    /// Makes the contents durable (fdatasync).
    fn sync_data(&mut self) -> io::Result<()>;
}

/// The real file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealDisk;

impl Disk for RealDisk {
    type File = File;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }
    fn open_append(&self, path: &Path) -> io::Result<File> {
        let mut f = OpenOptions::new().write(true).open(path)?;
        f.seek(SeekFrom::End(0))?;
        Ok(f)
    }
    fn create(&self, path: &Path) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        Ok(fs::read_dir(dir)?
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect())
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

impl DiskFile for File {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_all(bytes)
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        File::set_len(self, len)?;
        self.seek(SeekFrom::End(0)).map(|_| ())
    }
    fn sync_all(&mut self) -> io::Result<()> {
        File::sync_all(self)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        File::sync_data(self)
    }
}

//! Restored files written by host threads (`tree-reader.write-file`).
//!
//! A restore of many small files spends most of its time in per-file system calls (create,
//! write, chmod, chown, utimes). The addon walks the tree on one thread; with `write-file`
//! the host creates each file on that thread (so the file exists before its directory's
//! metadata is set), reads its content from the repository, and hands the descriptor, the
//! bytes and the metadata to a few writer threads. Memory stays bounded: at most
//! [`QUEUE_BYTES`] of content waits in the queue, and files larger than [`INLINE_MAX`] are
//! written on the calling thread.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use rustix::fs::{Gid, Mode, Timespec, Timestamps, Uid};

/// Writer threads per tree being restored.
const THREADS: usize = 3;
/// Content bytes waiting for the writers, at most.
const QUEUE_BYTES: usize = 64 << 20;
/// Files larger than this are written by the calling thread.
pub(crate) const INLINE_MAX: u64 = 4 << 20;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Metadata to apply once the content is written.
#[derive(Debug, Clone, Default)]
pub(crate) struct Attributes {
    pub mode: Option<u32>,
    pub owner: Option<(u32, u32)>,
    pub mtime: Option<Timespec>,
    pub atime: Option<Timespec>,
    /// Whether this process may change owners.
    pub privileged: bool,
}

/// One file to finish.
pub(crate) struct WriteJob {
    pub file: OwnedFd,
    pub path: String,
    pub content: Vec<u8>,
    pub attrs: Attributes,
}

#[derive(Default)]
struct State {
    /// Jobs queued or being written, and their content bytes.
    pending: usize,
    bytes: usize,
    /// The first content write that failed: fails the restore.
    failure: Option<String>,
    /// Metadata that could not be set: warnings.
    warnings: Vec<(String, String)>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

/// The writer threads of one tree reader; joined on drop, after the queue is empty.
pub(crate) struct FileWriter {
    sender: Option<SyncSender<WriteJob>>,
    threads: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl FileWriter {
    pub fn start() -> std::io::Result<FileWriter> {
        let (sender, receiver) = std::sync::mpsc::sync_channel::<WriteJob>(1024);
        let receiver = Arc::new(Mutex::new(receiver));
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        let mut threads = Vec::with_capacity(THREADS);
        for _ in 0..THREADS {
            let receiver = receiver.clone();
            let shared = shared.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("stowaway-write".into())
                    .spawn(move || work(&receiver, &shared))?,
            );
        }
        Ok(FileWriter {
            sender: Some(sender),
            threads,
            shared,
        })
    }

    /// The first failure so far, if any.
    pub fn failure(&self) -> Option<String> {
        lock(&self.shared.state).failure.clone()
    }

    /// Queues a file; waits while the queue holds too many bytes.
    pub fn queue(&self, job: WriteJob) -> Result<(), String> {
        let size = job.content.len();
        {
            let mut state = self.wait_while(|s| {
                s.pending > 0 && s.bytes + size > QUEUE_BYTES && s.failure.is_none()
            });
            if let Some(failure) = &state.failure {
                return Err(failure.clone());
            }
            state.pending += 1;
            state.bytes += size;
        }
        let sent = self
            .sender
            .as_ref()
            .map(|sender| sender.send(job).is_ok())
            .unwrap_or(false);
        if !sent {
            let mut state = lock(&self.shared.state);
            state.pending -= 1;
            state.bytes -= size;
            return Err("the file writers stopped".into());
        }
        Ok(())
    }

    /// Waits until every queued file is written; the warnings so far, or the first failure.
    pub fn finish(&self) -> Result<Vec<(String, String)>, String> {
        let mut state = self.wait_while(|s| s.pending > 0);
        if let Some(failure) = &state.failure {
            return Err(failure.clone());
        }
        Ok(std::mem::take(&mut state.warnings))
    }

    /// The state, once `busy` is false.
    fn wait_while(&self, busy: impl FnMut(&mut State) -> bool) -> MutexGuard<'_, State> {
        self.shared
            .changed
            .wait_while(lock(&self.shared.state), busy)
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for FileWriter {
    fn drop(&mut self) {
        // Closing the channel ends the threads once the queue is empty.
        self.sender.take();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn work(receiver: &Mutex<Receiver<WriteJob>>, shared: &Shared) {
    loop {
        let job = match lock(receiver).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        let size = job.content.len();
        let outcome = write(&job);
        let mut state = lock(&shared.state);
        match outcome {
            Ok(None) => {}
            Ok(Some(warning)) => state.warnings.push((job.path.clone(), warning)),
            Err(failure) => {
                state.failure.get_or_insert(failure);
            }
        }
        state.pending -= 1;
        state.bytes -= size;
        drop(state);
        shared.changed.notify_all();
    }
}

/// Writes a job's content, then its metadata. `Err` for the content (the restore fails),
/// `Ok(Some(..))` for metadata that could not be set (a warning).
fn write(job: &WriteJob) -> Result<Option<String>, String> {
    write_all(&job.file, &job.content).map_err(|e| format!("cannot write {}: {e}", job.path))?;
    Ok(apply(&job.file, &job.attrs).err())
}

/// Writes all of `data` to `file`.
pub(crate) fn write_all(file: &OwnedFd, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        match rustix::io::write(file, data) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Why [`pump`] stopped.
#[derive(Debug)]
pub(crate) enum CopyError {
    Read(std::io::Error),
    Write(std::io::Error),
}

thread_local! {
    /// The read buffer of [`pump`], kept per thread: backups and restores pump once per
    /// file, and a fresh 1 MiB buffer each time costs an mmap, page faults and an munmap.
    static PUMP_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Feeds everything `reader` yields to `sink`, 1 MiB at a time; returns the number of bytes.
pub(crate) fn pump(
    reader: &mut impl Read,
    sink: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> Result<u64, CopyError> {
    PUMP_BUFFER.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            buf.resize(1 << 20, 0);
            pump_with(reader, &mut buf, sink)
        }
        // Re-entered from inside a sink: use a buffer of its own.
        Err(_) => pump_with(reader, &mut vec![0u8; 1 << 20], sink),
    })
}

fn pump_with(
    reader: &mut impl Read,
    buf: &mut [u8],
    mut sink: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> Result<u64, CopyError> {
    let mut total = 0u64;
    loop {
        let n = match reader.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        sink(&buf[..n]).map_err(CopyError::Write)?;
        total += n as u64;
    }
}

/// Sets owner, mode and times on a file the restore created (so owner and mode are the
/// process's and 0600 until now). A change of owner the process may not make is ignored,
/// as `volumes.set-attributes` does.
pub(crate) fn apply(file: &OwnedFd, attrs: &Attributes) -> Result<(), String> {
    if let Some((uid, gid)) = attrs.owner
        && attrs.privileged
    {
        match rustix::fs::fchown(file, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid))) {
            Ok(()) | Err(rustix::io::Errno::PERM) => {}
            Err(e) => return Err(format!("cannot set the owner: {e}")),
        }
    }
    if let Some(mode) = attrs.mode {
        rustix::fs::fchmod(file, Mode::from_raw_mode(mode & 0o7777))
            .map_err(|e| format!("cannot set the mode: {e}"))?;
    }
    if attrs.mtime.is_some() || attrs.atime.is_some() {
        let keep = Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_OMIT,
        };
        let times = Timestamps {
            last_access: attrs.atime.unwrap_or(keep),
            last_modification: attrs.mtime.unwrap_or(keep),
        };
        rustix::fs::futimens(file, &times).map_err(|e| format!("cannot set the times: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn create(dir: &std::path::Path, name: &str) -> OwnedFd {
        std::fs::File::create_new(dir.join(name))
            .expect("create")
            .into()
    }

    #[test]
    fn queued_files_are_written_with_their_metadata() {
        let dir = tempfile::tempdir().expect("tempdir");
        let writer = FileWriter::start().expect("start");
        for i in 0..50u32 {
            let name = format!("f{i}");
            writer
                .queue(WriteJob {
                    file: create(dir.path(), &name),
                    path: name,
                    content: vec![i as u8; 1000 + i as usize],
                    attrs: Attributes {
                        mode: Some(0o640),
                        mtime: Some(Timespec {
                            tv_sec: 1_000_000 + i64::from(i),
                            tv_nsec: 0,
                        }),
                        ..Attributes::default()
                    },
                })
                .expect("queue");
        }
        assert_eq!(writer.finish().expect("finish"), vec![]);
        for i in 0..50u32 {
            let path = dir.path().join(format!("f{i}"));
            assert_eq!(
                std::fs::read(&path).expect("read"),
                vec![i as u8; 1000 + i as usize]
            );
            let meta = std::fs::metadata(&path).expect("stat");
            assert_eq!(meta.mode() & 0o7777, 0o640);
            assert_eq!(meta.mtime(), 1_000_000 + i64::from(i));
        }
    }

    #[test]
    fn a_failed_write_fails_the_rest() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("ro"), b"").expect("write");
        let read_only: OwnedFd = std::fs::File::open(dir.path().join("ro"))
            .expect("open")
            .into();
        let writer = FileWriter::start().expect("start");
        writer
            .queue(WriteJob {
                file: read_only,
                path: "ro".into(),
                content: b"data".to_vec(),
                attrs: Attributes::default(),
            })
            .expect("queue");
        let err = writer.finish().expect_err("the write fails");
        assert!(err.starts_with("cannot write ro: "), "{err}");
        assert_eq!(writer.failure(), Some(err.clone()));
        let again = writer.queue(WriteJob {
            file: create(dir.path(), "later"),
            path: "later".into(),
            content: vec![1],
            attrs: Attributes::default(),
        });
        assert_eq!(again, Err(err));
    }
}

//! Component resources of the `host` interface: writers for backup, readers for restore, and
//! the `wasi:io` streams that carry their bytes.
//!
//! Bytes written by the addon reach the repository's chunker straight from the stream's
//! `write` (one copy out of guest memory, done by wasmtime); the repository hashes, compresses,
//! encrypts and uploads them on its own threads.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::{Bytes, BytesMut};
use stowaway_repository::{FileDecision, StreamWriter, TreeReader, TreeWriter};
use wasmtime::component::Resource;
use wasmtime_wasi::p2::{
    DynInputStream, DynOutputStream, InputStream, OutputStream, Pollable, StreamError, StreamResult,
};

use crate::bindings::stowaway::addon::host;
use crate::bindings::stowaway::addon::types::{AddonError, Attributes, ComponentInfo, Entry};
use crate::bindings::stowaway::addon::volumes::MetadataUpdate;
use crate::file_writer::{CopyError, FileWriter, WriteJob};
use crate::job::{HostError, JobState, ProgressSink};
use crate::volumes::GrantedVolume;

/// Bytes the addon may write per `check-write` permit.
const WRITE_PERMIT: usize = 1024 * 1024;
/// Largest read served to the addon at once.
const READ_MAX: usize = 1024 * 1024;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The repository writer of a stream component, shared with its output stream or with a
/// host-side copy; `None` once finished.
pub(crate) type SharedStreamWriter = Arc<Mutex<Option<StreamWriter>>>;

/// A stream component being written.
pub struct StreamWriterHandle {
    name: String,
    writer: SharedStreamWriter,
    output_taken: bool,
    host_error: HostError,
}

impl StreamWriterHandle {
    /// Hands the component's content to a host-side copy (`exec` child output), which takes
    /// the place of the addon's output stream.
    pub(crate) fn take_for_copy(&mut self) -> Result<(String, SharedStreamWriter), AddonError> {
        take_output(
            &mut self.output_taken,
            &format!("component {:?}", self.name),
        )?;
        Ok((self.name.clone(), self.writer.clone()))
    }

    pub(crate) fn new(name: String, writer: StreamWriter, host_error: HostError) -> Self {
        StreamWriterHandle {
            name,
            writer: Arc::new(Mutex::new(Some(writer))),
            output_taken: false,
            host_error,
        }
    }
}

/// Where the bytes of an `output-stream` go: the repository writer of a stream component or
/// of one file of a tree. `None` from `write` means the target is closed (finished).
pub(crate) trait ContentTarget: Send + Sync + 'static {
    fn write(&self, data: &[u8]) -> Option<stowaway_repository::Result<()>>;
    fn is_open(&self) -> bool;
}

impl ContentTarget for Mutex<Option<StreamWriter>> {
    fn write(&self, data: &[u8]) -> Option<stowaway_repository::Result<()>> {
        lock(self).as_mut().map(|writer| writer.write(data))
    }

    fn is_open(&self) -> bool {
        lock(self).is_some()
    }
}

/// The content of the file currently open on a tree writer.
struct OpenFile {
    slot: Arc<Mutex<TreeSlot>>,
    closed: Arc<AtomicBool>,
}

impl ContentTarget for OpenFile {
    fn write(&self, data: &[u8]) -> Option<stowaway_repository::Result<()>> {
        if self.closed.load(Ordering::Relaxed) {
            return None;
        }
        lock(&self.slot)
            .writer
            .as_mut()
            .map(|writer| writer.write_content(data))
    }

    fn is_open(&self) -> bool {
        !self.closed.load(Ordering::Relaxed)
    }
}

/// An `output-stream` feeding a repository writer.
struct RepoSink<T: ContentTarget> {
    target: Arc<T>,
    host_error: HostError,
}

#[async_trait::async_trait]
impl<T: ContentTarget> Pollable for RepoSink<T> {
    async fn ready(&mut self) {}
}

impl<T: ContentTarget> OutputStream for RepoSink<T> {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        match self.target.write(&bytes) {
            None => Err(StreamError::Closed),
            Some(Ok(())) => Ok(()),
            Some(Err(err)) => {
                self.host_error
                    .record(format!("writing to the repository: {err}"));
                Err(StreamError::LastOperationFailed(wasmtime::format_err!(
                    "{err}"
                )))
            }
        }
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        if self.target.is_open() {
            Ok(WRITE_PERMIT)
        } else {
            Err(StreamError::Closed)
        }
    }
}

/// Marks an output as taken; the second call is refused.
fn take_output(taken: &mut bool, what: &str) -> Result<(), AddonError> {
    if std::mem::replace(taken, true) {
        return Err(AddonError::InvalidParameter(format!(
            "the output of {what} was already taken"
        )));
    }
    Ok(())
}

impl host::HostStreamWriter for JobState {
    fn output(
        &mut self,
        this: Resource<StreamWriterHandle>,
    ) -> wasmtime::Result<Result<Resource<DynOutputStream>, AddonError>> {
        let handle = self.table.get_mut(&this)?;
        if let Err(err) = take_output(
            &mut handle.output_taken,
            &format!("component {:?}", handle.name),
        ) {
            return Ok(Err(err));
        }
        let sink: DynOutputStream = Box::new(RepoSink {
            target: handle.writer.clone(),
            host_error: handle.host_error.clone(),
        });
        Ok(Ok(self.table.push(sink)?))
    }

    fn finish(
        &mut self,
        this: Resource<StreamWriterHandle>,
        attributes: Attributes,
    ) -> wasmtime::Result<Result<ComponentInfo, AddonError>> {
        let handle = self.table.delete(this)?;
        let Some(writer) = lock(&handle.writer).take() else {
            return Ok(Err(AddonError::Internal(format!(
                "component {:?} is already finished",
                handle.name
            ))));
        };
        match writer.finish(attributes) {
            Ok(record) => Ok(Ok(self.finished_component(record))),
            Err(err) => Ok(Err(
                self.host_failure(&format!("finishing component {}", handle.name), err)
            )),
        }
    }

    fn drop(&mut self, rep: Resource<StreamWriterHandle>) -> wasmtime::Result<()> {
        let handle = self.table.delete(rep)?;
        if lock(&handle.writer).take().is_some() {
            tracing::debug!(component = %handle.name, "stream component dropped without finish; it is not recorded");
        }
        Ok(())
    }
}

/// The tree writer and whether a file is open on it.
struct TreeSlot {
    writer: Option<TreeWriter>,
    open_file: Option<Arc<AtomicBool>>,
}

/// A tree component being written.
pub struct TreeWriterHandle {
    name: String,
    slot: Arc<Mutex<TreeSlot>>,
    host_error: HostError,
}

impl TreeWriterHandle {
    pub(crate) fn new(name: String, writer: TreeWriter, host_error: HostError) -> Self {
        TreeWriterHandle {
            name,
            slot: Arc::new(Mutex::new(TreeSlot {
                writer: Some(writer),
                open_file: None,
            })),
            host_error,
        }
    }
}

/// The content of one file being written into a tree.
pub struct FileContentHandle {
    path: String,
    slot: Arc<Mutex<TreeSlot>>,
    closed: Arc<AtomicBool>,
    output_taken: bool,
    host_error: HostError,
}

impl host::HostTreeWriter for JobState {
    fn add(
        &mut self,
        this: Resource<TreeWriterHandle>,
        entry: Entry,
    ) -> wasmtime::Result<Result<(), AddonError>> {
        let handle = self.table.get(&this)?;
        let mut slot = lock(&handle.slot);
        if let Err(err) = no_open_file(&slot) {
            return Ok(Err(err));
        }
        let Some(writer) = slot.writer.as_mut() else {
            return Ok(Err(AddonError::Internal("tree is finished".into())));
        };
        let entry = match crate::entry::from_wit(entry) {
            Ok(entry) => entry,
            Err(err) => return Ok(Err(err)),
        };
        Ok(writer.add(entry).map_err(crate::entry::entry_error))
    }

    fn add_file(
        &mut self,
        this: Resource<TreeWriterHandle>,
        entry: Entry,
    ) -> wasmtime::Result<Result<Option<Resource<FileContentHandle>>, AddonError>> {
        let handle = self.table.get(&this)?;
        let slot_arc = handle.slot.clone();
        let host_error = handle.host_error.clone();
        let mut slot = lock(&slot_arc);
        if let Err(err) = no_open_file(&slot) {
            return Ok(Err(err));
        }
        let Some(writer) = slot.writer.as_mut() else {
            return Ok(Err(AddonError::Internal("tree is finished".into())));
        };
        let path = entry.path.clone();
        let entry = match crate::entry::from_wit(entry) {
            Ok(entry) => entry,
            Err(err) => return Ok(Err(err)),
        };
        match writer.add_file(entry) {
            Err(err) => Ok(Err(crate::entry::entry_error(err))),
            Ok(FileDecision::Unchanged) => Ok(Ok(None)),
            Ok(FileDecision::NeedContent) => {
                let closed = Arc::new(AtomicBool::new(false));
                slot.open_file = Some(closed.clone());
                drop(slot);
                let content = FileContentHandle {
                    path,
                    slot: slot_arc,
                    closed,
                    output_taken: false,
                    host_error,
                };
                Ok(Ok(Some(self.table.push(content)?)))
            }
        }
    }

    fn finish(
        &mut self,
        this: Resource<TreeWriterHandle>,
        attributes: Attributes,
    ) -> wasmtime::Result<Result<ComponentInfo, AddonError>> {
        let handle = self.table.delete(this)?;
        let mut slot = lock(&handle.slot);
        if let Err(err) = no_open_file(&slot) {
            return Ok(Err(err));
        }
        let Some(writer) = slot.writer.take() else {
            return Ok(Err(AddonError::Internal("tree is finished".into())));
        };
        drop(slot);
        match writer.finish(attributes) {
            Ok(record) => Ok(Ok(self.finished_component(record))),
            Err(err) => Ok(Err(
                self.host_failure(&format!("finishing component {}", handle.name), err)
            )),
        }
    }

    fn drop(&mut self, rep: Resource<TreeWriterHandle>) -> wasmtime::Result<()> {
        let handle = self.table.delete(rep)?;
        if lock(&handle.slot).writer.take().is_some() {
            tracing::debug!(component = %handle.name, "tree component dropped without finish; it is not recorded");
        }
        Ok(())
    }
}

fn no_open_file(slot: &TreeSlot) -> Result<(), AddonError> {
    match &slot.open_file {
        Some(_) => Err(AddonError::InvalidParameter(
            "finish (or drop) the open file-content before adding the next entry".into(),
        )),
        None => Ok(()),
    }
}

impl host::HostFileContent for JobState {
    fn output(
        &mut self,
        this: Resource<FileContentHandle>,
    ) -> wasmtime::Result<Result<Resource<DynOutputStream>, AddonError>> {
        let handle = self.table.get_mut(&this)?;
        if let Err(err) = take_output(&mut handle.output_taken, &format!("file {:?}", handle.path))
        {
            return Ok(Err(err));
        }
        let sink: DynOutputStream = Box::new(RepoSink {
            target: Arc::new(OpenFile {
                slot: handle.slot.clone(),
                closed: handle.closed.clone(),
            }),
            host_error: handle.host_error.clone(),
        });
        Ok(Ok(self.table.push(sink)?))
    }

    fn finish(
        &mut self,
        this: Resource<FileContentHandle>,
        changed: bool,
    ) -> wasmtime::Result<Result<u64, AddonError>> {
        let handle = self.table.delete(this)?;
        handle.closed.store(true, Ordering::Relaxed);
        let mut slot = lock(&handle.slot);
        slot.open_file = None;
        let Some(writer) = slot.writer.as_mut() else {
            return Ok(Err(AddonError::Internal("tree is finished".into())));
        };
        Ok(writer
            .finish_file(changed)
            .map_err(crate::entry::entry_error))
    }

    fn copy_from(
        &mut self,
        this: Resource<FileContentHandle>,
        volume: String,
        path: String,
    ) -> wasmtime::Result<Result<u64, AddonError>> {
        let granted = match crate::volumes::find_volume(&self.volumes, &volume) {
            Ok(granted) => granted,
            Err(err) => return Ok(Err(err)),
        };
        let file = match granted.open_file(&path) {
            Ok(file) => file,
            Err(err) => return Ok(Err(err)),
        };
        let handle = self.table.get_mut(&this)?;
        if let Err(err) = take_output(&mut handle.output_taken, &format!("file {:?}", handle.path))
        {
            return Ok(Err(err));
        }
        let target = OpenFile {
            slot: handle.slot.clone(),
            closed: handle.closed.clone(),
        };
        let host_error = handle.host_error.clone();
        let mut reader = std::fs::File::from(file);
        let copied = crate::file_writer::pump(&mut reader, |data| match target.write(data) {
            Some(Ok(())) => Ok(()),
            None => Err(std::io::Error::other(
                "the file content is already finished",
            )),
            Some(Err(err)) => Err(std::io::Error::other(err.to_string())),
        });
        Ok(match copied {
            Ok(bytes) => Ok(bytes),
            Err(CopyError::Read(e)) => {
                Err(AddonError::Io(format!("cannot read {volume}:{path}: {e}")))
            }
            Err(CopyError::Write(e)) => {
                let message = format!("storing {volume}:{path} in the repository: {e}");
                host_error.record(message.clone());
                Err(AddonError::Internal(message))
            }
        })
    }

    fn drop(&mut self, rep: Resource<FileContentHandle>) -> wasmtime::Result<()> {
        let handle = self.table.delete(rep)?;
        if !handle.closed.swap(true, Ordering::Relaxed) {
            let mut slot = lock(&handle.slot);
            slot.open_file = None;
            if let Some(writer) = slot.writer.as_mut() {
                writer.discard_file();
            }
        }
        Ok(())
    }
}

/// An `input-stream` over a blocking reader (a stream component being restored).
pub(crate) struct ReaderStream<R> {
    reader: R,
    host_error: HostError,
    progress: Option<Arc<dyn ProgressSink>>,
}

impl<R> ReaderStream<R> {
    pub(crate) fn new(
        reader: R,
        host_error: HostError,
        progress: Option<Arc<dyn ProgressSink>>,
    ) -> Self {
        ReaderStream {
            reader,
            host_error,
            progress,
        }
    }
}

#[async_trait::async_trait]
impl<R: Read + Send + 'static> Pollable for ReaderStream<R> {
    async fn ready(&mut self) {}
}

impl<R: Read + Send + 'static> InputStream for ReaderStream<R> {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        read_some(
            &mut self.reader,
            size,
            &self.host_error,
            self.progress.as_deref(),
        )
    }
}

/// Reads up to `size` bytes (at least one, or end of stream as `Closed`).
fn read_some(
    reader: &mut impl Read,
    size: usize,
    host_error: &HostError,
    progress: Option<&dyn ProgressSink>,
) -> StreamResult<Bytes> {
    let mut buf = BytesMut::zeroed(size.clamp(1, READ_MAX));
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Err(StreamError::Closed),
            Ok(n) => {
                if let Some(progress) = progress {
                    progress.transferred(n as u64);
                }
                buf.truncate(n);
                return Ok(buf.freeze());
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => {
                host_error.record(format!("reading from the repository: {err}"));
                return Err(StreamError::LastOperationFailed(wasmtime::format_err!(
                    "{err}"
                )));
            }
        }
    }
}

/// The reader of a tree and the number of the entry it is on.
struct TreeCursor {
    reader: TreeReader,
    entry_no: u64,
    current_is_file: bool,
    /// Content size of the current entry (regular files).
    current_size: u64,
}

/// The entries of a tree component being restored.
pub struct TreeReaderHandle {
    cursor: Arc<Mutex<TreeCursor>>,
    host_error: HostError,
    progress: Option<Arc<dyn ProgressSink>>,
    /// Writer threads of `write-file`, started by its first call.
    writer: Option<FileWriter>,
}

impl TreeReaderHandle {
    /// `write-file`: creates the current file in `volume` and queues (or, when large, does)
    /// the writing of its content and metadata.
    fn write_file(
        &mut self,
        volume: &GrantedVolume,
        path: &str,
        attrs: &MetadataUpdate,
    ) -> Result<u64, AddonError> {
        if let Some(failure) = self.writer.as_ref().and_then(FileWriter::failure) {
            return Err(AddonError::Io(failure));
        }
        let mut cursor = lock(&self.cursor);
        if !cursor.current_is_file {
            return Err(AddonError::InvalidParameter(
                "write-file() is only available right after next() returned a regular file".into(),
            ));
        }
        let size = cursor.current_size;
        let file = volume.create_file(path)?;
        let writer = match &mut self.writer {
            Some(writer) => writer,
            slot => slot.insert(FileWriter::start().map_err(|e| {
                AddonError::Internal(format!("cannot start the file writers: {e}"))
            })?),
        };
        let read_failed = |err: std::io::Error, host_error: &HostError| {
            host_error.record(format!("reading from the repository: {err}"));
            AddonError::Io(format!("reading {path} from the repository: {err}"))
        };
        let mut content = cursor
            .reader
            .content()
            .map_err(|e| read_failed(std::io::Error::other(e.to_string()), &self.host_error))?;
        let (bytes, written) = if size > crate::file_writer::INLINE_MAX {
            // Large files stream through the calling thread; only their metadata is queued.
            let written = crate::file_writer::pump(&mut content, |data| {
                crate::file_writer::write_all(&file, data)
            })
            .map_err(|e| match e {
                CopyError::Read(e) => read_failed(e, &self.host_error),
                CopyError::Write(e) => AddonError::Io(format!("cannot write {path}: {e}")),
            })?;
            (Vec::new(), written)
        } else {
            let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            content
                .read_to_end(&mut bytes)
                .map_err(|e| read_failed(e, &self.host_error))?;
            let written = bytes.len() as u64;
            (bytes, written)
        };
        drop(cursor);
        if let Some(progress) = &self.progress {
            progress.transferred(written);
        }
        writer
            .queue(WriteJob {
                file,
                path: path.to_owned(),
                content: bytes,
                attrs: volume.file_attributes(attrs),
            })
            .map_err(AddonError::Io)?;
        Ok(written)
    }
}

impl TreeReaderHandle {
    pub(crate) fn new(
        reader: TreeReader,
        host_error: HostError,
        progress: Option<Arc<dyn ProgressSink>>,
    ) -> Self {
        TreeReaderHandle {
            cursor: Arc::new(Mutex::new(TreeCursor {
                reader,
                entry_no: 0,
                current_is_file: false,
                current_size: 0,
            })),
            host_error,
            progress,
            writer: None,
        }
    }
}

/// The `input-stream` of the content of one file of a tree; closed once the reader moved on.
struct TreeContentStream {
    cursor: Arc<Mutex<TreeCursor>>,
    entry_no: u64,
    host_error: HostError,
    progress: Option<Arc<dyn ProgressSink>>,
}

#[async_trait::async_trait]
impl Pollable for TreeContentStream {
    async fn ready(&mut self) {}
}

impl InputStream for TreeContentStream {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        let mut cursor = lock(&self.cursor);
        if cursor.entry_no != self.entry_no {
            return Err(StreamError::Closed);
        }
        let mut content = cursor.reader.content().map_err(|err| {
            self.host_error
                .record(format!("reading from the repository: {err}"));
            StreamError::LastOperationFailed(wasmtime::format_err!("{err}"))
        })?;
        read_some(
            &mut content,
            size,
            &self.host_error,
            self.progress.as_deref(),
        )
    }
}

impl host::HostTreeReader for JobState {
    fn next(
        &mut self,
        this: Resource<TreeReaderHandle>,
    ) -> wasmtime::Result<Result<Option<Entry>, AddonError>> {
        let handle = self.table.get(&this)?;
        let host_error = handle.host_error.clone();
        let mut cursor = lock(&handle.cursor);
        cursor.entry_no += 1;
        match cursor.reader.next_entry() {
            Ok(Some(entry)) => {
                cursor.current_is_file = crate::entry::is_file(&entry);
                cursor.current_size = entry.size;
                Ok(Ok(Some(crate::entry::to_wit(entry))))
            }
            Ok(None) => {
                cursor.current_is_file = false;
                Ok(Ok(None))
            }
            Err(err) => {
                cursor.current_is_file = false;
                Ok(Err(crate::entry::read_error(err, &host_error)))
            }
        }
    }

    fn content(
        &mut self,
        this: Resource<TreeReaderHandle>,
    ) -> wasmtime::Result<Result<Resource<DynInputStream>, AddonError>> {
        let handle = self.table.get(&this)?;
        let cursor = lock(&handle.cursor);
        if !cursor.current_is_file {
            return Ok(Err(AddonError::InvalidParameter(
                "content() is only available right after next() returned a regular file".into(),
            )));
        }
        let stream: DynInputStream = Box::new(TreeContentStream {
            cursor: handle.cursor.clone(),
            entry_no: cursor.entry_no,
            host_error: handle.host_error.clone(),
            progress: handle.progress.clone(),
        });
        drop(cursor);
        Ok(Ok(self.table.push(stream)?))
    }

    fn write_file(
        &mut self,
        this: Resource<TreeReaderHandle>,
        volume: String,
        path: String,
        attrs: MetadataUpdate,
    ) -> wasmtime::Result<Result<u64, AddonError>> {
        let granted = match crate::volumes::find_writable(&self.volumes, &volume) {
            Ok(granted) => granted,
            Err(err) => return Ok(Err(err)),
        };
        let handle = self.table.get_mut(&this)?;
        Ok(handle.write_file(granted, &path, &attrs))
    }

    fn finish_writes(
        &mut self,
        this: Resource<TreeReaderHandle>,
    ) -> wasmtime::Result<Result<Vec<(String, String)>, AddonError>> {
        let handle = self.table.get(&this)?;
        Ok(match &handle.writer {
            None => Ok(Vec::new()),
            Some(writer) => writer.finish().map_err(AddonError::Io),
        })
    }

    fn drop(&mut self, rep: Resource<TreeReaderHandle>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

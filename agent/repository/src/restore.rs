//! The read path: [`StreamReader`] and [`TreeReader`], synchronous for the caller, with
//! blobs prefetched, decrypted and verified on the repository's runtime.

mod prefetch;

pub(crate) use prefetch::{BlobStream, fetch_all, read_tree_closure};
mod stream_reader;
mod tree_reader;

pub use stream_reader::StreamReader;
pub use tree_reader::{ContentReader, TreeReader};

use crate::error::{Error, Result};
use crate::repository::Repository;
use crate::snapshot::{ComponentKind, ComponentRecord};

impl Repository {
    /// Opens a stream component for reading. Requires the index to be loaded.
    pub fn open_stream(&self, component: &ComponentRecord) -> Result<StreamReader> {
        if component.kind != ComponentKind::Stream {
            return Err(Error::Usage(format!(
                "component {:?} is not a stream",
                component.name
            )));
        }
        StreamReader::open(self, component)
    }

    /// Opens a tree component for reading. Requires the index to be loaded.
    pub fn open_tree(&self, component: &ComponentRecord) -> Result<TreeReader> {
        if component.kind != ComponentKind::Tree {
            return Err(Error::Usage(format!(
                "component {:?} is not a tree",
                component.name
            )));
        }
        TreeReader::open(self, component)
    }
}

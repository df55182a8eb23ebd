//! The process-wide wasmtime engine, its linker and the epoch ticker.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine};

use crate::addon::Addon;
use crate::cache::ComponentCache;
use crate::error::{Error, Result};
use crate::job::JobState;

/// How often the epoch advances; deadlines and cancellation are checked at this rate.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Settings of the runtime.
#[derive(Debug, Clone, Default)]
pub struct RuntimeOptions {
    /// Where compiled components are cached; `None` uses the default location
    /// (`$STOWAWAY_CACHE_DIR/addons` or `~/.cache/stowaway/addons`).
    pub cache_dir: Option<PathBuf>,
    /// Compile every time, never touching the disk cache.
    pub no_cache: bool,
}

/// The addon runtime: one wasmtime engine per process, shared by every job.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub engine: Engine,
    pub linker: Linker<JobState>,
    pub cache: Option<ComponentCache>,
    stop: Arc<AtomicBool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Runtime {
    /// Creates the engine (Cranelift, epoch interruption) and links WASI plus the host
    /// interfaces of every supported line.
    pub fn new(options: RuntimeOptions) -> Result<Self> {
        let setup = |reason: String| Error::Setup {
            addon: "runtime".into(),
            reason,
        };
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        let engine =
            Engine::new(&config).map_err(|e| setup(format!("creating the engine: {e}")))?;

        let mut linker: Linker<JobState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| setup(format!("linking WASI: {e}")))?;
        use crate::bindings::stowaway::addon as v0_1;
        v0_1::types::add_to_linker::<_, HasSelf<JobState>>(&mut linker, |s| s)
            .and_then(|()| v0_1::host::add_to_linker::<_, HasSelf<JobState>>(&mut linker, |s| s))
            .and_then(|()| v0_1::volumes::add_to_linker::<_, HasSelf<JobState>>(&mut linker, |s| s))
            .and_then(|()| v0_1::exec::add_to_linker::<_, HasSelf<JobState>>(&mut linker, |s| s))
            .map_err(|e| setup(format!("linking the host interface: {e}")))?;

        let cache = if options.no_cache {
            None
        } else {
            options
                .cache_dir
                .or_else(ComponentCache::default_dir)
                .and_then(|dir| ComponentCache::open(&dir))
        };

        let stop = Arc::new(AtomicBool::new(false));
        let ticker_engine = engine.clone();
        let ticker_stop = stop.clone();
        std::thread::Builder::new()
            .name("stowaway-epoch".into())
            .spawn(move || {
                while !ticker_stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    ticker_engine.increment_epoch();
                }
            })
            .map_err(|e| setup(format!("starting the epoch ticker: {e}")))?;

        Ok(Runtime {
            inner: Arc::new(Inner {
                engine,
                linker,
                cache,
                stop,
            }),
        })
    }

    /// Compiles (or loads from the cache) an addon component and asks it to describe itself.
    /// `origin` names it in messages (a built-in name or a file path).
    pub fn load(&self, wasm: &[u8], origin: &str) -> Result<Addon> {
        Addon::load(self, wasm, origin)
    }
}

//! Fault injection for tests (feature `test-support`): an [`ObjectStore`] wrapper that fails
//! or delays a seeded fraction of requests.
//!
//! ```
//! # async fn example() {
//! use stowaway_storage::{Storage, faults::FaultConfig};
//! let config: FaultConfig = "fail=0.2,lose=0.1,delay_ms=1,seed=7".parse().unwrap();
//! let (storage, counters) = Storage::memory().with_faults(config);
//! storage.put("k", bytes::Bytes::from_static(b"v")).await.unwrap(); // retried as needed
//! assert!(counters.requests() >= 1);
//! # }
//! ```
//!
//! Three kinds of faults, each drawn per request from one seeded generator:
//! - `fail`: the request fails before it reaches the store (nothing happened);
//! - `lose`: the request reaches the store and succeeds, but its response is lost and the
//!   caller sees a failure (the write did happen);
//! - `delay`: the request is delayed by `delay_ms` first.
//!
//! Injected failures are `object_store::Error::Generic` errors, which [`crate::Storage`]
//! classifies as transient and retries. For black-box CLI tests, a build with `test-support`
//! wraps every store opened by [`crate::Storage::from_config`] when the environment variable
//! `STOWAWAY_TEST_FAULTS` holds a configuration (`fail=0.1,delay_ms=5,seed=1`).

use std::ops::Range;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result, UploadPart,
};

/// The environment variable read by [`crate::Storage::from_config`] in `test-support` builds.
pub const FAULTS_ENV: &str = "STOWAWAY_TEST_FAULTS";

/// What to inject; parse it from `fail=0.1,lose=0.05,delay=0.5,delay_ms=5,seed=1` (all
/// fields optional).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultConfig {
    /// Fraction of requests that fail without reaching the store.
    pub fail: f64,
    /// Fraction of requests that reach the store but whose response is lost.
    pub lose: f64,
    /// Fraction of requests delayed by `delay`.
    pub delay_fraction: f64,
    /// How long a delayed request waits.
    pub delay: Duration,
    /// Seed of the random generator.
    pub seed: u64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            fail: 0.0,
            lose: 0.0,
            delay_fraction: 0.0,
            delay: Duration::ZERO,
            seed: 0,
        }
    }
}

impl FromStr for FaultConfig {
    type Err = String;

    /// Parses `key=value` pairs separated by `,`: `fail`, `lose`, `delay` (fractions 0..=1),
    /// `delay_ms`, `seed`. `delay_ms` without `delay` delays every request.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut config = FaultConfig::default();
        let mut fraction_given = false;
        for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("fault option {pair:?}: expected key=value"))?;
            let fraction = || -> Result<f64, String> {
                value
                    .parse::<f64>()
                    .ok()
                    .filter(|f| (0.0..=1.0).contains(f))
                    .ok_or_else(|| format!("fault option {key}={value}: expected 0..1"))
            };
            let number = || -> Result<u64, String> {
                value
                    .parse::<u64>()
                    .map_err(|_| format!("fault option {key}={value}: expected a number"))
            };
            match key.trim() {
                "fail" => config.fail = fraction()?,
                "lose" => config.lose = fraction()?,
                "delay" => {
                    config.delay_fraction = fraction()?;
                    fraction_given = true;
                }
                "delay_ms" => config.delay = Duration::from_millis(number()?),
                "seed" => config.seed = number()?,
                other => return Err(format!("unknown fault option {other}")),
            }
        }
        if !fraction_given && !config.delay.is_zero() {
            config.delay_fraction = 1.0;
        }
        Ok(config)
    }
}

/// Counts of requests and injected faults; clones share the counts.
#[derive(Debug, Clone, Default)]
pub struct FaultCounters(Arc<Counts>);

#[derive(Debug, Default)]
struct Counts {
    requests: AtomicU64,
    failed: AtomicU64,
    lost: AtomicU64,
    delayed: AtomicU64,
}

impl FaultCounters {
    /// Requests seen.
    pub fn requests(&self) -> u64 {
        self.0.requests.load(Ordering::Relaxed)
    }
    /// Requests failed before reaching the store.
    pub fn failed(&self) -> u64 {
        self.0.failed.load(Ordering::Relaxed)
    }
    /// Requests whose response was lost after the store handled them.
    pub fn lost(&self) -> u64 {
        self.0.lost.load(Ordering::Relaxed)
    }
    /// Requests delayed.
    pub fn delayed(&self) -> u64 {
        self.0.delayed.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    None,
    Fail,
    Lose,
}

/// The fault-injecting [`ObjectStore`] wrapper.
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    config: FaultConfig,
    rng: Arc<Mutex<fastrand::Rng>>,
    counters: FaultCounters,
}

impl std::fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

impl FaultyStore {
    /// Wraps `inner`; returns the store and its counters.
    pub fn new(inner: Arc<dyn ObjectStore>, config: FaultConfig) -> (FaultyStore, FaultCounters) {
        let counters = FaultCounters::default();
        let store = FaultyStore {
            inner,
            config,
            rng: Arc::new(Mutex::new(fastrand::Rng::with_seed(config.seed))),
            counters: counters.clone(),
        };
        (store, counters)
    }

    /// Draws the fault of one request and sleeps if it is delayed.
    async fn draw(&self) -> Fault {
        draw(&self.rng, &self.config, &self.counters).await
    }
}

async fn draw(rng: &Mutex<fastrand::Rng>, config: &FaultConfig, counters: &FaultCounters) -> Fault {
    let (fault, delayed) = {
        let mut rng = match rng.lock() {
            Ok(rng) => rng,
            Err(poisoned) => poisoned.into_inner(),
        };
        let r = rng.f64();
        let fault = if r < config.fail {
            Fault::Fail
        } else if r < config.fail + config.lose {
            Fault::Lose
        } else {
            Fault::None
        };
        (fault, rng.f64() < config.delay_fraction)
    };
    counters.0.requests.fetch_add(1, Ordering::Relaxed);
    if delayed {
        counters.0.delayed.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(config.delay).await;
    }
    match fault {
        Fault::Fail => counters.0.failed.fetch_add(1, Ordering::Relaxed),
        Fault::Lose => counters.0.lost.fetch_add(1, Ordering::Relaxed),
        Fault::None => 0,
    };
    fault
}

fn injected(what: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: "FaultyStore",
        source: format!("injected fault: {what}").into(),
    }
}

/// Applies a drawn fault around an operation.
async fn around<T>(fault: Fault, op: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    match fault {
        Fault::Fail => Err(injected("request failed")),
        Fault::Lose => {
            op.await?;
            Err(injected("response lost"))
        }
        Fault::None => op.await,
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let fault = self.draw().await;
        around(fault, self.inner.put_opts(location, payload, opts)).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let fault = self.draw().await;
        let upload = around(fault, self.inner.put_multipart_opts(location, opts)).await?;
        Ok(Box::new(FaultyUpload {
            inner: upload,
            config: self.config,
            rng: Arc::clone(&self.rng),
            counters: self.counters.clone(),
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let fault = self.draw().await;
        around(fault, self.inner.get_opts(location, options)).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let fault = self.draw().await;
        around(fault, self.inner.get_ranges(location, ranges)).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let inner = Arc::clone(&self.inner);
        let rng = Arc::clone(&self.rng);
        let config = self.config;
        let counters = self.counters.clone();
        locations
            .then(move |location| {
                let inner = Arc::clone(&inner);
                let rng = Arc::clone(&rng);
                let counters = counters.clone();
                async move {
                    let location = location?;
                    let fault = draw(&rng, &config, &counters).await;
                    let one = futures::stream::once(async move { Ok(location) }).boxed();
                    around(fault, async move {
                        let mut results = inner.delete_stream(one);
                        match results.next().await {
                            Some(result) => result,
                            None => Err(injected("delete returned nothing")),
                        }
                    })
                    .await
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let inner = Arc::clone(&self.inner);
        let rng = Arc::clone(&self.rng);
        let config = self.config;
        let counters = self.counters.clone();
        let prefix = prefix.cloned();
        async move {
            match draw(&rng, &config, &counters).await {
                Fault::None => inner.list(prefix.as_ref()),
                // A listing has no side effect: a lost response is a failure.
                Fault::Fail | Fault::Lose => {
                    futures::stream::once(async { Err(injected("list failed")) }).boxed()
                }
            }
        }
        .into_stream()
        .flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let fault = self.draw().await;
        around(fault, self.inner.list_with_delimiter(prefix)).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        let fault = self.draw().await;
        around(fault, self.inner.copy_opts(from, to, options)).await
    }
}

/// A multipart upload whose parts and completion are subject to faults.
#[derive(Debug)]
struct FaultyUpload {
    inner: Box<dyn MultipartUpload>,
    config: FaultConfig,
    rng: Arc<Mutex<fastrand::Rng>>,
    counters: FaultCounters,
}

#[async_trait]
impl MultipartUpload for FaultyUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let part = self.inner.put_part(data);
        let rng = Arc::clone(&self.rng);
        let config = self.config;
        let counters = self.counters.clone();
        async move {
            let fault = draw(&rng, &config, &counters).await;
            around(fault, part).await
        }
        .boxed()
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let fault = draw(&self.rng, &self.config, &self.counters).await;
        around(fault, self.inner.complete()).await
    }

    async fn abort(&mut self) -> Result<()> {
        self.inner.abort().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fault_configurations() {
        let c: FaultConfig = "fail=0.1,delay_ms=5,seed=1".parse().expect("parse");
        assert_eq!(c.fail, 0.1);
        assert_eq!(c.delay, Duration::from_millis(5));
        assert_eq!(c.delay_fraction, 1.0);
        assert_eq!(c.seed, 1);
        let c: FaultConfig = "lose=0.5, delay=0.25, delay_ms=2".parse().expect("parse");
        assert_eq!((c.lose, c.delay_fraction), (0.5, 0.25));
        assert_eq!(
            "fail=2".parse::<FaultConfig>().expect_err("range"),
            "fault option fail=2: expected 0..1"
        );
        assert_eq!(
            "boom=1".parse::<FaultConfig>().expect_err("unknown"),
            "unknown fault option boom"
        );
    }

    #[tokio::test]
    async fn same_seed_same_faults() {
        let run = |seed| async move {
            let config = FaultConfig {
                fail: 0.3,
                lose: 0.2,
                seed,
                ..FaultConfig::default()
            };
            let inner = Arc::new(object_store::memory::InMemory::new());
            let (store, counters) = FaultyStore::new(inner, config);
            let mut outcomes = Vec::new();
            for i in 0..50 {
                let path = Path::from(format!("k{i}"));
                let r = store
                    .put_opts(&path, PutPayload::from_static(b"x"), PutOptions::default())
                    .await;
                outcomes.push(r.is_ok());
            }
            (outcomes, counters.failed(), counters.lost())
        };
        let (a, failed, lost) = run(3).await;
        let (b, _, _) = run(3).await;
        assert_eq!(a, b);
        assert!(failed > 5 && lost > 2, "failed {failed}, lost {lost}");
        let (c, _, _) = run(4).await;
        assert_ne!(a, c);
    }
}

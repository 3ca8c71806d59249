//! Fault injection, a testing aid: an OpenDAL layer that makes a share of
//! storage requests fail with transient errors, delays them, and cuts
//! transfers mid-way, so that tests can show that retries recover and that
//! a backup that gives up leaves a consistent repository.
//!
//! It is enabled by the environment variable `CAIRN_FAULTS`, a comma-separated
//! list of settings:
//!
//! - `fail=P`: each request fails, before it reaches the storage, with
//!   probability P (0 to 1), with an error marked transient;
//! - `delay_ms=N`: each request first waits a random 0 to N milliseconds;
//! - `cut=P`: with probability P an upload is cut before it is committed
//!   (nothing becomes visible at its path), and a download breaks in the
//!   middle of its first chunk (the retry resumes at the offset reached);
//! - `outage_after=N`: after N requests every request fails, as in an
//!   outage that outlasts the retries;
//! - `seed=N`: seed of the pseudo-random choices (default 0);
//! - `log=PATH`: appends one line per injected fault to PATH.
//!
//! The layer sits below the retry layer (see `OpendalBackend`), so every
//! injected fault goes through the same retries as a real one.

use std::fmt::Debug;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opendal::raw::oio;
use opendal::raw::*;
use opendal::{Buffer, BytesRange, Capability, ErrorKind, Metadata, OperationContext};

use crate::error::{Error, Result};

/// The environment variable that enables fault injection.
pub const ENV: &str = "CAIRN_FAULTS";

/// What to inject, as parsed from `CAIRN_FAULTS`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultConfig {
    pub fail: f64,
    pub delay_ms: u64,
    pub cut: f64,
    pub outage_after: Option<u64>,
    pub seed: u64,
    pub log: Option<PathBuf>,
}

impl FaultConfig {
    /// Parses `fail=0.2,delay_ms=50,cut=0.05,seed=7,log=/tmp/faults`.
    pub fn parse(spec: &str) -> Result<FaultConfig> {
        let bad = |what: &str| Error::InvalidArgument(format!("{ENV}={spec:?}: {what}"));
        let mut c = FaultConfig::default();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| bad(&format!("{item:?} is not KEY=VALUE")))?;
            let prob = |v: &str| -> Result<f64> {
                match v.parse::<f64>() {
                    Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
                    _ => Err(bad(&format!("{k} must be a probability from 0 to 1"))),
                }
            };
            match k.trim() {
                "fail" => c.fail = prob(v)?,
                "cut" => c.cut = prob(v)?,
                "delay_ms" => {
                    c.delay_ms = v
                        .parse()
                        .map_err(|_| bad("delay_ms must be a whole number"))?
                }
                "seed" => c.seed = v.parse().map_err(|_| bad("seed must be a whole number"))?,
                "outage_after" => {
                    c.outage_after = Some(
                        v.parse()
                            .map_err(|_| bad("outage_after must be a whole number"))?,
                    )
                }
                "log" => c.log = Some(PathBuf::from(v)),
                other => {
                    return Err(bad(&format!(
                    "unknown setting {other:?} (use fail, delay_ms, cut, outage_after, seed, log)"
                )))
                }
            }
        }
        Ok(c)
    }

    /// The configuration in `CAIRN_FAULTS`, if set and not empty.
    pub fn from_env() -> Result<Option<FaultConfig>> {
        match std::env::var(ENV) {
            Ok(s) if !s.trim().is_empty() => FaultConfig::parse(&s).map(Some),
            _ => Ok(None),
        }
    }
}

/// Shared state: configuration, the pseudo-random sequence and the log.
#[derive(Debug)]
struct State {
    cfg: FaultConfig,
    counter: AtomicU64,
    requests: AtomicU64,
    injected: AtomicU64,
    log: Mutex<Option<std::fs::File>>,
}

impl State {
    /// A pseudo-random number in [0, 1) (SplitMix64 over a counter).
    fn roll(&self) -> f64 {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut z = self
            .cfg
            .seed
            .wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&self, p: f64) -> bool {
        p > 0.0 && self.roll() < p
    }

    fn record(&self, what: &str, op: &'static str, path: &str) -> opendal::Error {
        let n = self.injected.fetch_add(1, Ordering::Relaxed) + 1;
        if let Ok(mut guard) = self.log.lock() {
            if let Some(f) = guard.as_mut() {
                let _ = writeln!(f, "{n} {what} {op} {path}");
            }
        }
        opendal::Error::new(ErrorKind::Unexpected, format!("injected {what} ({ENV})"))
            .with_operation(op)
            .with_context("path", path)
            .set_temporary()
    }

    /// Waits the configured delay, then maybe fails the request.
    async fn before(&self, op: &'static str, path: &str) -> opendal::Result<()> {
        if self.cfg.delay_ms > 0 {
            let ms = (self.roll() * (self.cfg.delay_ms + 1) as f64) as u64;
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        if self.cfg.outage_after.is_some_and(|after| n >= after) {
            return Err(self.record("outage", op, path));
        }
        if self.chance(self.cfg.fail) {
            return Err(self.record("failure", op, path));
        }
        Ok(())
    }
}

/// The layer. Insert it below `RetryLayer`.
#[derive(Debug, Clone)]
pub struct FaultLayer {
    state: Arc<State>,
}

impl FaultLayer {
    pub fn new(cfg: FaultConfig) -> FaultLayer {
        let log = cfg.log.as_ref().and_then(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .ok()
        });
        FaultLayer {
            state: Arc::new(State {
                cfg,
                counter: AtomicU64::new(0),
                requests: AtomicU64::new(0),
                injected: AtomicU64::new(0),
                log: Mutex::new(log),
            }),
        }
    }
}

impl opendal::raw::Layer for FaultLayer {
    fn apply_service(&self, inner: Servicer) -> Servicer {
        Arc::new(FaultService {
            inner,
            state: self.state.clone(),
        })
    }
}

#[derive(Debug)]
struct FaultService {
    inner: Servicer,
    state: Arc<State>,
}

impl Service for FaultService {
    type Reader = FaultReader;
    type Writer = FaultWriter;
    type Lister = FaultLister;
    type Deleter = FaultDeleter;
    type Copier = oio::Copier;
    type Composer = oio::Composer;

    fn info(&self) -> ServiceInfo {
        self.inner.info()
    }

    fn capability(&self) -> Capability {
        self.inner.capability()
    }

    async fn create_dir(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpCreateDir,
    ) -> opendal::Result<RpCreateDir> {
        self.state.before("create_dir", path).await?;
        self.inner.create_dir(ctx, path, args).await
    }

    async fn stat(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpStat,
    ) -> opendal::Result<RpStat> {
        self.state.before("stat", path).await?;
        self.inner.stat(ctx, path, args).await
    }

    fn read(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpRead,
    ) -> opendal::Result<FaultReader> {
        Ok(FaultReader {
            inner: self.inner.read(ctx, path, args)?,
            state: self.state.clone(),
            path: path.to_string(),
        })
    }

    fn write(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpWrite,
    ) -> opendal::Result<FaultWriter> {
        Ok(FaultWriter {
            inner: self.inner.write(ctx, path, args)?,
            state: self.state.clone(),
            path: path.to_string(),
        })
    }

    fn delete(&self, ctx: &OperationContext) -> opendal::Result<FaultDeleter> {
        Ok(FaultDeleter {
            inner: self.inner.delete(ctx)?,
            state: self.state.clone(),
        })
    }

    fn list(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpList,
    ) -> opendal::Result<FaultLister> {
        Ok(FaultLister {
            inner: self.inner.list(ctx, path, args)?,
            state: self.state.clone(),
            path: path.to_string(),
            entries: 0,
        })
    }

    fn copy(
        &self,
        ctx: &OperationContext,
        from: &str,
        to: &str,
        args: OpCopy,
    ) -> opendal::Result<oio::Copier> {
        self.inner.copy(ctx, from, to, args)
    }

    fn compose(
        &self,
        ctx: &OperationContext,
        to: &str,
        args: OpCompose,
    ) -> opendal::Result<oio::Composer> {
        self.inner.compose(ctx, to, args)
    }

    async fn rename(
        &self,
        ctx: &OperationContext,
        from: &str,
        to: &str,
        args: OpRename,
    ) -> opendal::Result<RpRename> {
        self.state.before("rename", from).await?;
        self.inner.rename(ctx, from, to, args).await
    }

    async fn restore(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpRestore,
    ) -> opendal::Result<RpRestore> {
        self.inner.restore(ctx, path, args).await
    }

    async fn presign(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpPresign,
    ) -> opendal::Result<RpPresign> {
        self.inner.presign(ctx, path, args).await
    }
}

pub struct FaultReader {
    inner: oio::Reader,
    state: Arc<State>,
    path: String,
}

impl oio::Read for FaultReader {
    async fn open(
        &self,
        range: BytesRange,
    ) -> opendal::Result<(RpRead, Box<dyn oio::ReadStreamDyn>)> {
        self.state.before("read", &self.path).await?;
        let (rp, stream) = self.inner.open(range).await?;
        let cut = self.state.chance(self.state.cfg.cut);
        let stream = FaultStream {
            inner: stream,
            state: self.state.clone(),
            path: self.path.clone(),
            cut,
            delivered: false,
        };
        Ok((rp, Box::new(stream) as Box<dyn oio::ReadStreamDyn>))
    }

    async fn read(&self, range: BytesRange) -> opendal::Result<(RpRead, Buffer)> {
        self.state.before("read", &self.path).await?;
        self.inner.read(range).await
    }
}

/// A download stream that may break in the middle of its first chunk: it
/// delivers the first half, then fails, as a connection dropped mid-body
/// would.
struct FaultStream {
    inner: Box<dyn oio::ReadStreamDyn>,
    state: Arc<State>,
    path: String,
    cut: bool,
    delivered: bool,
}

impl oio::ReadStream for FaultStream {
    async fn read(&mut self) -> opendal::Result<Buffer> {
        if self.cut && self.delivered {
            self.cut = false;
            return Err(self.state.record("cut", "read", &self.path));
        }
        let mut buf = self.inner.read().await?;
        if self.cut && buf.len() >= 2 {
            buf.truncate(buf.len() / 2);
            self.delivered = true;
        } else {
            self.cut = false;
        }
        Ok(buf)
    }
}

pub struct FaultWriter {
    inner: oio::Writer,
    state: Arc<State>,
    path: String,
}

impl oio::Write for FaultWriter {
    async fn write(&mut self, bs: Buffer) -> opendal::Result<()> {
        self.state.before("write", &self.path).await?;
        self.inner.write(bs).await
    }

    async fn close(&mut self) -> opendal::Result<Metadata> {
        self.state.before("write", &self.path).await?;
        // The upload is cut before it is committed: nothing becomes
        // visible, and the retry layer replays the close.
        if self.state.chance(self.state.cfg.cut) {
            return Err(self.state.record("cut", "write", &self.path));
        }
        self.inner.close().await
    }

    async fn abort(&mut self) -> opendal::Result<()> {
        self.inner.abort().await
    }
}

/// Entries per listing request, as with S3 (for where faults strike).
const LIST_PAGE: u64 = 1000;

pub struct FaultLister {
    inner: oio::Lister,
    state: Arc<State>,
    path: String,
    entries: u64,
}

impl oio::List for FaultLister {
    async fn next(&mut self) -> opendal::Result<Option<oio::Entry>> {
        // `entries` counts the entries of the current page.
        if self.entries == 0 {
            self.state.before("list", &self.path).await?;
        }
        let e = self.inner.next().await?;
        self.entries += 1;
        if self.entries == LIST_PAGE {
            self.entries = 0;
        }
        Ok(e)
    }
}

pub struct FaultDeleter {
    inner: oio::Deleter,
    state: Arc<State>,
}

impl oio::Delete for FaultDeleter {
    async fn delete(&mut self, path: &str, args: OpDelete) -> opendal::Result<()> {
        self.state.before("delete", path).await?;
        self.inner.delete(path, args).await
    }

    async fn close(&mut self) -> opendal::Result<()> {
        self.state.before("delete", "").await?;
        self.inner.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_settings() {
        let c =
            FaultConfig::parse("fail=0.2, delay_ms=50,cut=0.05,seed=7,outage_after=9,log=/tmp/f")
                .unwrap();
        assert_eq!(
            c,
            FaultConfig {
                fail: 0.2,
                delay_ms: 50,
                cut: 0.05,
                outage_after: Some(9),
                seed: 7,
                log: Some(PathBuf::from("/tmp/f")),
            }
        );
        assert_eq!(FaultConfig::parse("").unwrap(), FaultConfig::default());
        for bad in [
            "fail=2",
            "fail",
            "cut=x",
            "delay_ms=-1",
            "outage_after=x",
            "nope=1",
        ] {
            let e = FaultConfig::parse(bad).unwrap_err().to_string();
            assert!(e.contains(ENV), "{bad}: {e}");
        }
    }

    #[test]
    fn roll_is_uniform_enough_and_seeded() {
        let s = FaultLayer::new(FaultConfig {
            seed: 42,
            ..Default::default()
        })
        .state;
        let n = 10_000;
        let hits = (0..n).filter(|_| s.chance(0.2)).count();
        assert!((1_700..2_300).contains(&hits), "{hits}");
        let a: Vec<u64> = {
            let s = FaultLayer::new(FaultConfig::default()).state;
            (0..5).map(|_| (s.roll() * 1e9) as u64).collect()
        };
        let b: Vec<u64> = {
            let s = FaultLayer::new(FaultConfig::default()).state;
            (0..5).map(|_| (s.roll() * 1e9) as u64).collect()
        };
        assert_eq!(a, b);
    }

    #[test]
    fn outage_fails_everything_after_n_requests() {
        let op = opendal::Operator::new(opendal::services::Memory::default())
            .unwrap()
            .layer(FaultLayer::new(FaultConfig {
                outage_after: Some(2),
                ..Default::default()
            }));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            // A write is two requests here (write, close).
            op.write("a", vec![1]).await.unwrap();
            let e = op.read("a").await.unwrap_err();
            assert!(e.is_temporary() && e.to_string().contains("outage"), "{e}");
        });
    }

    /// Writes, reads and lists through the layer with heavy faults on an
    /// in-memory service: the retry layer above it recovers every time.
    #[test]
    fn retries_recover_from_injected_faults() {
        use opendal::layers::RetryLayer;
        let op = opendal::Operator::new(opendal::services::Memory::default())
            .unwrap()
            .layer(FaultLayer::new(FaultConfig {
                fail: 0.3,
                cut: 0.3,
                seed: 3,
                ..Default::default()
            }))
            .layer(
                RetryLayer::new()
                    .with_max_times(30)
                    .with_min_delay(Duration::from_millis(1))
                    .with_max_delay(Duration::from_millis(2)),
            );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            for i in 0..50u32 {
                let data = vec![i as u8; 1000 + i as usize];
                op.write(&format!("d/{i}"), data.clone()).await.unwrap();
                let back = op.read(&format!("d/{i}")).await.unwrap().to_vec();
                assert_eq!(back, data);
            }
            let all = op
                .list_options(
                    "d/",
                    opendal::options::ListOptions {
                        recursive: true,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            assert_eq!(all.iter().filter(|e| e.metadata().is_file()).count(), 50);
        });
    }
}

//! Durable storage: a node's disk, which survives its crashes and restarts
//! with the semantics of a real one.
//!
//! A node gets its [`Storage`] in [`NodeContext::storage`](crate::system::NodeContext).
//! Storage holds named files. A write changes what the node reads at once,
//! but it is durable only after a [`sync`](Storage::sync): when the node
//! crashes, every file loses what was written since its last sync, either
//! whole or torn at a sector boundary (the first bytes of the new contents
//! reached the disk, the rest did not), as the run's seed decides. Nothing
//! is lost without a crash.
//!
//! The same model runs on both backends: the simulation keeps durable files
//! in memory; the real backend keeps them as real files in a per-run
//! directory for each node (written and `fsync`ed at every sync), so a crash
//! loses unsynced writes over MsQuic too, exactly as in the simulation.
//!
//! A sync takes time: on the real backend, the real disk's; in the
//! simulation, the sync latency the disk was built with (the calibration
//! profile's, [`crate::profile`]), in simulated time. A crash before a sync
//! ends finds its write still unsynced, so the crash loses or tears it.
//!
//! Faults ([`DiskFault`], the `disk` scenario step): a sync that fails (and,
//! as Linux does after a failed `fsync`, drops the unsynced writes), a full
//! disk, a slow disk.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! use tandem::storage::Storage;
//!
//! let disk = Storage::in_memory();
//! disk.append("log", b"entry 1\n").await.unwrap();
//! disk.sync("log").await.unwrap();
//! disk.append("log", b"entry 2\n").await.unwrap();
//! assert_eq!(disk.read("log").await.unwrap(), b"entry 1\nentry 2\n");
//!
//! disk.crash(7); // the node died: what was not synced is lost or torn
//! let after = disk.restarted().read("log").await.unwrap();
//! assert!(after.starts_with(b"entry 1\n") && after.len() < 16);
//! # });
//! ```

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;

/// The unit a torn write is cut at: a crash keeps a prefix of a file's new
/// contents whose length is a multiple of this.
pub const SECTOR: usize = 512;

/// A fault of a node's disk, set by a `disk` step and cleared by
/// [`DiskFault::None`] or the settle tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiskFault {
    /// A healthy disk.
    #[default]
    None,
    /// Every sync fails, and drops the writes it was to make durable.
    FailSync,
    /// Every write that grows a file fails with "storage full".
    Full,
    /// Every operation takes this much longer.
    Slow(Duration),
}

impl DiskFault {
    /// The names of the faults, as the `fault` field of a `disk` step
    /// spells them.
    pub const NAMES: [&'static str; 4] = ["none", "fail-sync", "full", "slow"];

    /// The fault's name in a scenario file.
    pub fn name(&self) -> &'static str {
        match self {
            DiskFault::None => "none",
            DiskFault::FailSync => "fail-sync",
            DiskFault::Full => "full",
            DiskFault::Slow(_) => "slow",
        }
    }
}

/// Where durable contents live.
enum Media {
    /// In memory (the simulation).
    Memory(BTreeMap<String, Vec<u8>>),
    /// One real file per name in a directory (the real backend).
    Directory(PathBuf),
}

impl Media {
    fn read(&self, file: &str) -> io::Result<Option<Vec<u8>>> {
        match self {
            Media::Memory(files) => Ok(files.get(file).cloned()),
            Media::Directory(dir) => match std::fs::read(dir.join(file)) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            },
        }
    }

    /// Makes `contents` (or the file's removal, for `None`) durable.
    fn persist(&mut self, file: &str, contents: Option<&[u8]>) -> io::Result<()> {
        match (self, contents) {
            (Media::Memory(files), Some(bytes)) => {
                files.insert(file.to_string(), bytes.to_vec());
            }
            (Media::Memory(files), None) => {
                files.remove(file);
            }
            (Media::Directory(dir), Some(bytes)) => {
                // Written beside, synced, then renamed over: the real file
                // changes atomically, so only this model decides what a crash keeps.
                let temporary = dir.join(format!(".{file}.syncing"));
                let mut out = std::fs::File::create(&temporary)?;
                io::Write::write_all(&mut out, bytes)?;
                out.sync_all()?;
                std::fs::rename(&temporary, dir.join(file))?;
                std::fs::File::open(dir)?.sync_all()?;
            }
            (Media::Directory(dir), None) => match std::fs::remove_file(dir.join(file)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => std::fs::File::open(dir)?.sync_all()?,
            },
        }
        Ok(())
    }

    fn names(&self) -> io::Result<Vec<String>> {
        match self {
            Media::Memory(files) => Ok(files.keys().cloned().collect()),
            Media::Directory(dir) => {
                let mut names = Vec::new();
                for entry in std::fs::read_dir(dir)? {
                    let name = entry?.file_name().to_string_lossy().into_owned();
                    if !name.starts_with('.') {
                        names.push(name);
                    }
                }
                Ok(names)
            }
        }
    }
}

/// A node's disk, shared by all its incarnations.
struct Volume {
    media: Media,
    /// Contents written since the file's last sync (`None`: removed).
    unsynced: BTreeMap<String, Option<Vec<u8>>>,
    fault: DiskFault,
    /// How long a sync takes beyond the media's own time (simulated disks).
    sync_latency: Duration,
    /// Bumped at every crash: handles of an earlier incarnation stop working.
    generation: u64,
}

impl Volume {
    /// What the node sees of `file`: its unsynced contents, else its durable ones.
    fn current(&self, file: &str) -> io::Result<Option<Vec<u8>>> {
        match self.unsynced.get(file) {
            Some(unsynced) => Ok(unsynced.clone()),
            None => self.media.read(file),
        }
    }
}

/// A handle on a node's disk. Cheap to clone; hand it to the node's tasks.
///
/// File names are plain names (no `/`, not starting with `.`). Every
/// operation is `async` because a slow disk delays it.
#[derive(Clone)]
pub struct Storage {
    volume: Arc<Mutex<Volume>>,
    generation: u64,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage").field("generation", &self.generation).finish_non_exhaustive()
    }
}

impl PartialEq for Storage {
    fn eq(&self, other: &Storage) -> bool {
        Arc::ptr_eq(&self.volume, &other.volume) && self.generation == other.generation
    }
}

impl Eq for Storage {}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

fn check_name(file: &str) -> io::Result<()> {
    if file.is_empty() || file.starts_with('.') || file.contains(['/', '\\', '\0']) {
        return Err(invalid(format!("`{file}` is not a storage file name (a plain name, not starting with `.`)")));
    }
    Ok(())
}

impl Storage {
    /// An empty disk kept in memory whose syncs take no time.
    pub fn in_memory() -> Storage {
        Storage::in_memory_with_sync_latency(Duration::ZERO)
    }

    /// An empty disk kept in memory whose every sync takes `latency` (the
    /// simulation's: tokio time, which the simulation's clock drives).
    pub fn in_memory_with_sync_latency(latency: Duration) -> Storage {
        Storage::on(Media::Memory(BTreeMap::new()), latency)
    }

    /// A disk whose durable files are real files in `dir` (created if
    /// missing; the real backend's).
    pub fn in_directory(dir: &Path) -> io::Result<Storage> {
        std::fs::create_dir_all(dir)?;
        // A real disk takes its own time: nothing added.
        Ok(Storage::on(Media::Directory(dir.to_path_buf()), Duration::ZERO))
    }

    fn on(media: Media, sync_latency: Duration) -> Storage {
        let volume = Volume { media, unsynced: BTreeMap::new(), fault: DiskFault::None, sync_latency, generation: 0 };
        Storage { volume: Arc::new(Mutex::new(volume)), generation: 0 }
    }

    fn lock(&self) -> MutexGuard<'_, Volume> {
        // A panic while the lock was held leaves the volume consistent: every
        // change is one assignment.
        self.volume.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The volume, once a slow disk's delay has passed; an error for a
    /// handle of an incarnation that crashed.
    async fn ready(&self) -> io::Result<MutexGuard<'_, Volume>> {
        let fault = self.lock().fault;
        if let DiskFault::Slow(delay) = fault {
            tokio::time::sleep(delay).await;
        }
        self.current_incarnation()
    }

    /// The volume; an error for a handle of an incarnation that crashed.
    fn current_incarnation(&self) -> io::Result<MutexGuard<'_, Volume>> {
        let volume = self.lock();
        if volume.generation != self.generation {
            return Err(io::Error::other("storage of a crashed incarnation"));
        }
        Ok(volume)
    }

    /// The contents of `file` as the node sees them (synced or not);
    /// `NotFound` when it does not exist.
    pub async fn read(&self, file: &str) -> io::Result<Vec<u8>> {
        check_name(file)?;
        let contents = self.ready().await?.current(file)?;
        contents.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no file `{file}`")))
    }

    /// Whether `file` exists (synced or not).
    pub async fn exists(&self, file: &str) -> io::Result<bool> {
        match self.read(file).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Replaces the contents of `file` (creating it); durable after [`sync`](Storage::sync).
    pub async fn write(&self, file: &str, contents: &[u8]) -> io::Result<()> {
        self.change(file, |_| Some(contents.to_vec())).await
    }

    /// Appends to `file` (creating it); durable after [`sync`](Storage::sync).
    pub async fn append(&self, file: &str, bytes: &[u8]) -> io::Result<()> {
        self.change(file, |old| Some([old.unwrap_or_default(), bytes.to_vec()].concat())).await
    }

    /// Removes `file`; durable after [`sync`](Storage::sync). Removing a file
    /// that does not exist is no error.
    pub async fn remove(&self, file: &str) -> io::Result<()> {
        self.change(file, |_| None).await
    }

    async fn change(&self, file: &str, new: impl FnOnce(Option<Vec<u8>>) -> Option<Vec<u8>>) -> io::Result<()> {
        check_name(file)?;
        let mut volume = self.ready().await?;
        let old = volume.current(file)?;
        let old_len = old.as_ref().map_or(0, Vec::len);
        let contents = new(old);
        if volume.fault == DiskFault::Full && contents.as_ref().is_some_and(|c| c.len() > old_len) {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "disk full (injected)"));
        }
        volume.unsynced.insert(file.to_string(), contents);
        Ok(())
    }

    /// Makes every write to `file` so far durable: once it returns, a crash
    /// no longer loses them. A crash while it runs loses or tears them, and
    /// ends it with an error; writes made while it runs stay unsynced.
    pub async fn sync(&self, file: &str) -> io::Result<()> {
        check_name(file)?;
        let (contents, latency) = {
            let volume = self.ready().await?;
            let Some(contents) = volume.unsynced.get(file).cloned() else { return Ok(()) };
            (contents, volume.sync_latency)
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let mut volume = self.current_incarnation()?;
        if volume.unsynced.get(file) == Some(&contents) {
            volume.unsynced.remove(file);
        }
        if volume.fault == DiskFault::FailSync {
            return Err(io::Error::other(format!("sync of `{file}` failed (injected); its unsynced writes are lost")));
        }
        volume.media.persist(file, contents.as_deref())
    }

    /// [`sync`](Storage::sync)s every file with unsynced writes, in name order.
    pub async fn sync_all(&self) -> io::Result<()> {
        let files: Vec<String> = self.ready().await?.unsynced.keys().cloned().collect();
        for file in files {
            self.sync(&file).await?;
        }
        Ok(())
    }

    /// The names of the files that exist, in order.
    pub async fn list(&self) -> io::Result<Vec<String>> {
        let volume = self.ready().await?;
        let mut names: std::collections::BTreeSet<String> = volume.media.names()?.into_iter().collect();
        for (name, contents) in &volume.unsynced {
            match contents {
                Some(_) => names.insert(name.clone()),
                None => names.remove(name),
            };
        }
        Ok(names.into_iter().collect())
    }

    /// The node crashed: every file loses its unsynced writes, whole or torn
    /// at a [`SECTOR`] boundary, as `seed` decides (file by file, in name
    /// order). Handles given out before stop working. For backends.
    pub fn crash(&self, seed: u64) {
        let mut volume = self.lock();
        let unsynced = std::mem::take(&mut volume.unsynced);
        volume.generation += 1;
        for (i, (file, contents)) in unsynced.into_iter().enumerate() {
            let draw = crate::host::derive_seed(seed, i as u32, 0, 4);
            let Some(new) = contents else { continue };
            // A torn write: the first `cut` bytes of the new contents reached
            // the disk, over what was there.
            let sectors = new.len().div_ceil(SECTOR) as u64;
            if draw % 2 == 0 || sectors <= 1 {
                continue;
            }
            let cut = ((draw >> 1) % sectors) as usize * SECTOR;
            let old = match volume.media.read(&file) {
                Ok(old) => old.unwrap_or_default(),
                Err(error) => {
                    tracing::warn!(%file, "reading the durable file for a torn write: {error}");
                    continue;
                }
            };
            let torn = [&new[..cut], old.get(cut..).unwrap_or_default()].concat();
            if let Err(error) = volume.media.persist(&file, Some(&torn)) {
                tracing::warn!(%file, "keeping a torn write: {error}");
            }
        }
    }

    /// A handle for the node's next incarnation (after [`crash`](Storage::crash)).
    pub fn restarted(&self) -> Storage {
        Storage { volume: self.volume.clone(), generation: self.lock().generation }
    }

    /// Sets the disk's fault (see [`DiskFault`]). For backends.
    pub fn set_fault(&self, fault: DiskFault) {
        self.lock().fault = fault;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(f)
    }

    #[test]
    fn a_crash_loses_only_unsynced_writes() {
        block_on(async {
            let disk = Storage::in_memory();
            disk.write("vote", b"term 1").await.unwrap();
            disk.sync("vote").await.unwrap();
            disk.write("vote", b"term 2").await.unwrap();
            disk.write("fresh", b"never synced").await.unwrap();
            assert_eq!(disk.read("vote").await.unwrap(), b"term 2");
            disk.crash(0);
            assert!(disk.read("vote").await.is_err(), "the crashed incarnation's handle must stop working");
            let disk = disk.restarted();
            assert_eq!(disk.read("vote").await.unwrap(), b"term 1");
            assert_eq!(disk.list().await.unwrap(), vec!["vote".to_string()]);
        });
    }

    #[test]
    fn torn_writes_keep_a_sector_aligned_prefix() {
        block_on(async {
            let mut torn = 0;
            for seed in 0..64 {
                let disk = Storage::in_memory();
                disk.append("log", &[1; 100]).await.unwrap();
                disk.sync("log").await.unwrap();
                disk.append("log", &[2; 3 * SECTOR]).await.unwrap();
                disk.crash(seed);
                let after = disk.restarted().read("log").await.unwrap();
                assert!(after.len() == 100 || after.len() % SECTOR == 0, "seed {seed}: {} bytes", after.len());
                assert_eq!(&after[..100], &[1; 100]);
                torn += usize::from(after.len() > 100);
            }
            assert!(torn > 0 && torn < 64, "the seed chooses between lost and torn ({torn} of 64 torn)");
        });
    }

    #[test]
    fn faults_fail_syncs_fill_the_disk_and_slow_it_down() {
        block_on(async {
            let disk = Storage::in_memory();
            disk.set_fault(DiskFault::FailSync);
            disk.write("a", b"x").await.unwrap();
            assert!(disk.sync("a").await.is_err());
            assert!(!disk.exists("a").await.unwrap(), "a failed sync drops what it was to persist");
            disk.set_fault(DiskFault::Full);
            assert_eq!(disk.append("a", b"y").await.unwrap_err().kind(), io::ErrorKind::StorageFull);
            disk.set_fault(DiskFault::Slow(Duration::from_millis(30)));
            let began = tokio::time::Instant::now();
            disk.write("a", b"z").await.unwrap();
            assert_eq!(began.elapsed(), Duration::from_millis(30));
            disk.set_fault(DiskFault::None);
            disk.sync("a").await.unwrap();
            assert_eq!(disk.read("a").await.unwrap(), b"z");
        });
    }

    #[test]
    fn a_sync_takes_its_latency_and_a_crash_before_it_ends_loses_the_write() {
        block_on(async {
            let latency = Duration::from_millis(2);
            let disk = Storage::in_memory_with_sync_latency(latency);
            disk.write("vote", b"term 1").await.unwrap();
            let began = tokio::time::Instant::now();
            disk.sync("vote").await.unwrap();
            assert_eq!(began.elapsed(), latency);

            disk.write("vote", b"term 2").await.unwrap();
            let syncing = tokio::spawn({
                let disk = disk.clone();
                async move { disk.sync("vote").await }
            });
            tokio::time::sleep(latency / 2).await;
            disk.crash(0);
            assert!(syncing.await.unwrap().is_err(), "the crash ends the sync");
            let disk = disk.restarted();
            assert_eq!(disk.read("vote").await.unwrap(), b"term 1", "the interrupted sync made nothing durable");

            disk.write("vote", b"term 3").await.unwrap();
            disk.sync("vote").await.unwrap();
            disk.crash(0);
            assert_eq!(disk.restarted().read("vote").await.unwrap(), b"term 3", "a finished sync is durable");
        });
    }

    #[test]
    fn a_write_during_a_sync_stays_unsynced() {
        block_on(async {
            let disk = Storage::in_memory_with_sync_latency(Duration::from_millis(2));
            disk.write("log", b"a").await.unwrap();
            let syncing = tokio::spawn({
                let disk = disk.clone();
                async move { disk.sync("log").await }
            });
            tokio::task::yield_now().await;
            disk.write("log", b"ab").await.unwrap();
            syncing.await.unwrap().unwrap();
            assert_eq!(disk.read("log").await.unwrap(), b"ab");
            disk.crash(0);
            assert_eq!(disk.restarted().read("log").await.unwrap(), b"a", "only what the sync began with is durable");
        });
    }

    #[test]
    fn a_directory_keeps_synced_files_across_handles() {
        let dir = std::env::temp_dir().join(format!("tandem-storage-test-{}", std::process::id()));
        block_on(async {
            let disk = Storage::in_directory(&dir).unwrap();
            disk.write("state", b"durable").await.unwrap();
            disk.sync("state").await.unwrap();
            disk.write("state", b"lost").await.unwrap();
            disk.crash(0);
            let reopened = Storage::in_directory(&dir).unwrap();
            assert_eq!(reopened.read("state").await.unwrap(), b"durable");
            assert_eq!(reopened.read("../etc").await.unwrap_err().kind(), io::ErrorKind::InvalidInput);
        });
        std::fs::remove_dir_all(dir).unwrap();
    }
}

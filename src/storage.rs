//! Durable storage: a node's disk, which survives its crashes and restarts
//! with the semantics of a real one.
//!
//! A node gets its [`Storage`] in [`NodeContext::storage`](crate::system::NodeContext).
//! Storage holds named files. A change (a [`write`](Storage::write),
//! [`append`](Storage::append), [`truncate`](Storage::truncate),
//! [`remove`](Storage::remove) or [`rename`](Storage::rename)) changes what
//! the node reads at once, but it is durable only after a
//! [`sync`](Storage::sync) of the file (or [`sync_all`](Storage::sync_all)).
//!
//! # What a crash keeps
//!
//! Nothing is lost without a crash. At a crash, every file with unsynced
//! changes loses them, file by file in name order, as the run's seed decides:
//!
//! - **Lost or torn.** The file keeps its durable contents, or it is torn:
//!   the seed picks `k` below the number of [`SECTOR`]s (512 bytes) of its
//!   new contents, and the first `k` sectors of the new contents reached the
//!   disk over the durable contents, whose bytes after them stay. A crash
//!   never keeps an unsynced change whole.
//! - **One sector is atomic.** A change is torn only when a sector boundary
//!   falls strictly inside its changed bytes (from the lowest offset changed
//!   since the last sync to the end of the new contents). So a change within
//!   one sector is never torn, only lost: any file whose new contents are at
//!   most 512 bytes, and any append of bytes that stay inside the sector
//!   where they begin.
//! - **Truncate and remove.** An unsynced [`truncate`](Storage::truncate)
//!   or [`remove`](Storage::remove) is undone (a torn later write may still
//!   land its first sectors over the old contents).
//! - **Rename.** [`rename`](Storage::rename) is atomic: until a sync of the
//!   new name or of the old one (or `sync_all`: like a directory `fsync`), a
//!   crash undoes it (the old name keeps its durable contents, the new name
//!   its own); after, the new name holds the contents durably and the old
//!   one is gone. It is never torn, and never leaves both names or halves.
//!
//! A sync takes time: on the real backend, the real disk's; in the
//! simulation, the sync latency the disk was built with (the calibration
//! profile's, [`crate::engine::profile`]), in simulated time. A crash before a sync
//! ends finds its changes still unsynced. An append costs what it writes
//! (the node's view of a file grows in place), and a sync writes the bytes
//! changed since the last one.
//!
//! The same model runs on both backends: the simulation keeps durable files
//! in memory; the real backend keeps them as real files in a per-run
//! directory for each node (written and `fsync`ed at every sync), so a crash
//! loses unsynced writes over MsQuic too, exactly as in the simulation.
//!
//! # Faults
//!
//! [`DiskFault`], the `disk` scenario step: a sync that fails (and, as Linux
//! does after a failed `fsync`, drops the unsynced writes), a full disk, a
//! slow disk, and the corruptions a node that checksums its data can detect:
//! a sync that lies (returns `Ok` and makes nothing durable), a read that
//! returns flipped bits, a write that lands a sector off. Which bits flip
//! and which way a write strays are pure functions of the seed of the
//! node's latest crash in this run (before the first crash, of the seed the
//! backend gave the disk, [`Storage::seeded`]; both derive from the run's
//! seed) and of how many such draws the disk made since: never of the OS.
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
//! disk.crash(7); // the node died: what was not synced is lost (one sector: never torn)
//! let after = disk.restarted().read("log").await.unwrap();
//! assert_eq!(after, b"entry 1\n");
//! # });
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;

/// The unit a torn write is cut at, and the distance a misdirected write
/// strays: a crash keeps whole sectors of a file's new contents.
pub const SECTOR: usize = 512;

/// A fault of a node's disk, set by a `disk` step and cleared by
/// [`DiskFault::None`] or the settle tail.
///
/// New faults are new variants: a `match` over it must be updated.
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
    /// Every sync returns `Ok` but makes nothing durable: the changes stay
    /// unsynced, so a crash loses (or tears) them as if never synced, and a
    /// sync on a healthy disk later makes them durable.
    LyingSync,
    /// Every read returns the contents with one bit flipped (which one, as
    /// the seed decides); the durable contents are unharmed.
    CorruptRead,
    /// Every write or append lands one [`SECTOR`] off where it was aimed (a
    /// sector before it when there is room and the seed says so, else a
    /// sector after): what it skips over of the file's new extent is zeros.
    MisdirectedWrite,
}

impl DiskFault {
    /// The names of the faults, as the `fault` field of a `disk` step
    /// spells them.
    pub const NAMES: [&'static str; 7] =
        ["none", "fail-sync", "full", "slow", "lying-sync", "corrupt-read", "misdirected-write"];

    /// The fault's name in a scenario file.
    pub fn name(&self) -> &'static str {
        match self {
            DiskFault::None => "none",
            DiskFault::FailSync => "fail-sync",
            DiskFault::Full => "full",
            DiskFault::Slow(_) => "slow",
            DiskFault::LyingSync => "lying-sync",
            DiskFault::CorruptRead => "corrupt-read",
            DiskFault::MisdirectedWrite => "misdirected-write",
        }
    }

    /// The fault a name without parameters spells (every one but `slow`).
    pub fn without_parameters(name: &str) -> Option<DiskFault> {
        Some(match name {
            "none" => DiskFault::None,
            "fail-sync" => DiskFault::FailSync,
            "full" => DiskFault::Full,
            "lying-sync" => DiskFault::LyingSync,
            "corrupt-read" => DiskFault::CorruptRead,
            "misdirected-write" => DiskFault::MisdirectedWrite,
            _ => return None,
        })
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

    /// Makes `file` durably its first `from` bytes (zeros past its end)
    /// followed by `tail`, writing only the tail.
    fn splice(&mut self, file: &str, from: usize, tail: &[u8]) -> io::Result<()> {
        match self {
            Media::Memory(files) => {
                let contents = files.entry(file.to_string()).or_default();
                contents.resize(from, 0);
                contents.extend_from_slice(tail);
            }
            Media::Directory(dir) => {
                use std::io::{Seek, Write};
                let mut out =
                    std::fs::OpenOptions::new().write(true).create(true).truncate(false).open(dir.join(file))?;
                out.set_len(from as u64)?;
                out.seek(io::SeekFrom::Start(from as u64))?;
                out.write_all(tail)?;
                out.sync_all()?;
                std::fs::File::open(dir)?.sync_all()?;
            }
        }
        Ok(())
    }

    /// Removes `file` durably; no error when it does not exist.
    fn remove(&mut self, file: &str) -> io::Result<()> {
        match self {
            Media::Memory(files) => {
                files.remove(file);
            }
            Media::Directory(dir) => match std::fs::remove_file(dir.join(file)) {
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

/// A file the node touched in this incarnation: what it sees, and what of
/// that is not durable yet.
#[derive(Debug, Clone, Default)]
struct Open {
    /// The contents the node sees; `None`: removed (or renamed away).
    contents: Option<Vec<u8>>,
    /// The lowest offset changed since the file's last sync; `None`: the
    /// node sees its durable contents.
    unsynced_from: Option<usize>,
    /// Bumped at every change: a sync that finds it moved leaves the
    /// changes made meanwhile unsynced.
    version: u64,
}

/// A node's disk, shared by all its incarnations.
struct Volume {
    media: Media,
    /// The files the node touched since it last started, as it sees them.
    open: BTreeMap<String, Open>,
    /// Renames not yet durable: by new name, the old names whose durable
    /// removal the new name's next sync makes.
    renamed: BTreeMap<String, BTreeSet<String>>,
    fault: DiskFault,
    /// How long a sync takes beyond the media's own time (simulated disks).
    sync_latency: Duration,
    /// Bumped at every crash: handles of an earlier incarnation stop working.
    generation: u64,
    /// What corruptions are drawn from: the seed of the latest crash, or the disk's own before the first.
    entropy: u64,
    /// How many corruptions the disk drew since its latest crash.
    draws: u64,
}

impl Volume {
    /// The file as the node sees it, loaded from the media on first touch.
    fn open(&mut self, file: &str) -> io::Result<&mut Open> {
        if !self.open.contains_key(file) {
            let contents = self.media.read(file)?;
            self.open.insert(file.to_string(), Open { contents, ..Open::default() });
        }
        Ok(self.open.get_mut(file).expect("just opened"))
    }

    /// The next corruption draw: a pure function of the latest crash's seed
    /// and how many draws came before.
    fn draw(&mut self) -> u64 {
        self.draws += 1;
        crate::seed::derive_seed(self.entropy, 0, self.draws, 5)
    }

    /// The file whose sync makes `file`'s changes durable: the new name of
    /// a pending rename away from it, else itself.
    fn synced_with(&self, file: &str) -> String {
        self.renamed.iter().find(|(_, old)| old.contains(file)).map_or_else(|| file.to_string(), |(new, _)| new.clone())
    }
}

/// A change a sync makes durable, as it was when the sync began.
struct Pending {
    /// Where the changed bytes begin.
    from: usize,
    /// The bytes from `from` on; `None`: the file is removed.
    tail: Option<Vec<u8>>,
    /// Old names a rename to this file removes.
    renamed_from: BTreeSet<String>,
    version: u64,
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

fn not_found(file: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("no file `{file}`"))
}

fn check_name(file: &str) -> io::Result<()> {
    if file.is_empty() || file.starts_with('.') || file.contains(['/', '\\', '\0']) {
        return Err(invalid(format!("`{file}` is not a storage file name (a plain name, not starting with `.`)")));
    }
    Ok(())
}

/// Where bytes aimed at `at` land under [`DiskFault::MisdirectedWrite`]:
/// a sector before when there is room, else a sector after, as `draw` decides.
fn misdirected(at: usize, draw: u64) -> usize {
    if draw % 2 == 0 && at >= SECTOR {
        at - SECTOR
    } else {
        at + SECTOR
    }
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

    /// The same disk, drawing its corruptions from `seed` until its first
    /// crash (a backend's, from the run's seed; without it, from 0).
    pub fn seeded(self, seed: u64) -> Storage {
        self.lock().entropy = seed;
        self
    }

    /// A disk whose durable files are real files in `dir` (created if
    /// missing; the real backend's).
    pub fn in_directory(dir: &Path) -> io::Result<Storage> {
        std::fs::create_dir_all(dir)?;
        // A real disk takes its own time: nothing added.
        Ok(Storage::on(Media::Directory(dir.to_path_buf()), Duration::ZERO))
    }

    fn on(media: Media, sync_latency: Duration) -> Storage {
        let volume = Volume {
            media,
            open: BTreeMap::new(),
            renamed: BTreeMap::new(),
            fault: DiskFault::None,
            sync_latency,
            generation: 0,
            entropy: 0,
            draws: 0,
        };
        Storage { volume: Arc::new(Mutex::new(volume)), generation: 0 }
    }

    fn lock(&self) -> MutexGuard<'_, Volume> {
        // A panic while the lock was held leaves the volume consistent: no
        // change is visible before it is whole.
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
    /// `NotFound` when it does not exist. A [`DiskFault::CorruptRead`] disk
    /// flips one bit of what it returns.
    pub async fn read(&self, file: &str) -> io::Result<Vec<u8>> {
        check_name(file)?;
        let mut volume = self.ready().await?;
        let mut contents = volume.open(file)?.contents.clone().ok_or_else(|| not_found(file))?;
        if volume.fault == DiskFault::CorruptRead && !contents.is_empty() {
            let bit = volume.draw() % (contents.len() as u64 * 8);
            contents[(bit / 8) as usize] ^= 1 << (bit % 8);
        }
        Ok(contents)
    }

    /// Whether `file` exists (synced or not).
    pub async fn exists(&self, file: &str) -> io::Result<bool> {
        check_name(file)?;
        Ok(self.ready().await?.open(file)?.contents.is_some())
    }

    /// Replaces the contents of `file` (creating it); durable after [`sync`](Storage::sync).
    pub async fn write(&self, file: &str, contents: &[u8]) -> io::Result<()> {
        self.put(file, Some(0), contents).await
    }

    /// Appends to `file` (creating it); durable after [`sync`](Storage::sync).
    /// It costs what it appends: the file grows in place.
    pub async fn append(&self, file: &str, bytes: &[u8]) -> io::Result<()> {
        self.put(file, None, bytes).await
    }

    /// Puts `bytes` into `file`: replacing it (`replace_from` `Some(0)`) or
    /// at its end (`None`), or where a misdirected write strays.
    async fn put(&self, file: &str, replace_from: Option<usize>, bytes: &[u8]) -> io::Result<()> {
        check_name(file)?;
        let mut volume = self.ready().await?;
        let fault = volume.fault;
        let stray = (fault == DiskFault::MisdirectedWrite && !bytes.is_empty()).then(|| volume.draw());
        let open = volume.open(file)?;
        let old_len = open.contents.as_ref().map_or(0, Vec::len);
        let kept = replace_from.unwrap_or(old_len);
        let at = stray.map_or(kept, |draw| misdirected(kept, draw));
        let new_len = kept.max(at + bytes.len());
        if fault == DiskFault::Full && new_len > old_len {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "disk full (injected)"));
        }
        let contents = open.contents.get_or_insert_with(Vec::new);
        contents.truncate(kept);
        contents.resize(new_len, 0);
        contents[at..at + bytes.len()].copy_from_slice(bytes);
        let changed = at.min(kept);
        open.unsynced_from = Some(open.unsynced_from.map_or(changed, |from| from.min(changed)));
        open.version += 1;
        Ok(())
    }

    /// Cuts `file` to `len` bytes (or extends it with zeros); durable after
    /// [`sync`](Storage::sync), undone by a crash before. `NotFound` when it
    /// does not exist.
    pub async fn truncate(&self, file: &str, len: usize) -> io::Result<()> {
        check_name(file)?;
        let mut volume = self.ready().await?;
        let full = volume.fault == DiskFault::Full;
        let open = volume.open(file)?;
        let contents = open.contents.as_mut().ok_or_else(|| not_found(file))?;
        if full && len > contents.len() {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "disk full (injected)"));
        }
        let changed = len.min(contents.len());
        contents.resize(len, 0);
        open.unsynced_from = Some(open.unsynced_from.map_or(changed, |from| from.min(changed)));
        open.version += 1;
        Ok(())
    }

    /// Removes `file`; durable after [`sync`](Storage::sync). Removing a file
    /// that does not exist is no error.
    pub async fn remove(&self, file: &str) -> io::Result<()> {
        check_name(file)?;
        let mut volume = self.ready().await?;
        let open = volume.open(file)?;
        if open.contents.take().is_some() {
            open.unsynced_from = Some(0);
            open.version += 1;
        }
        Ok(())
    }

    /// Renames `from` to `to`, replacing `to`: at once for the node, and
    /// atomically for a crash, which undoes it until a sync of either name
    /// (or [`sync_all`](Storage::sync_all)) makes it durable, together with
    /// `to`'s contents. `NotFound` when `from` does not exist.
    pub async fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        check_name(from)?;
        check_name(to)?;
        if from == to {
            return Ok(());
        }
        let mut volume = self.ready().await?;
        let source = volume.open(from)?;
        let contents = source.contents.take().ok_or_else(|| not_found(from))?;
        // The old name's durable removal waits for the new name's sync.
        source.unsynced_from = None;
        source.version += 1;
        let mut old_names = volume.renamed.remove(from).unwrap_or_default();
        old_names.insert(from.to_string());
        volume.renamed.entry(to.to_string()).or_default().extend(old_names);
        let target = volume.open(to)?;
        target.contents = Some(contents);
        target.unsynced_from = Some(0);
        target.version += 1;
        Ok(())
    }

    /// Makes every change to `file` so far durable: once it returns, a crash
    /// no longer loses them. A crash while it runs loses or tears them, and
    /// ends it with an error; changes made while it runs stay unsynced. A
    /// sync of a name renamed away makes the rename durable first.
    pub async fn sync(&self, file: &str) -> io::Result<()> {
        check_name(file)?;
        let unit = self.sync_one(file).await?;
        if unit != file {
            self.sync_one(file).await?;
        }
        Ok(())
    }

    /// Syncs the file whose sync makes `file`'s changes durable (the new
    /// name of a pending rename away from it, else itself); returns its name.
    async fn sync_one(&self, file: &str) -> io::Result<String> {
        let (unit, pending, latency) = {
            let volume = self.ready().await?;
            let unit = volume.synced_with(file);
            let Some(open) = volume.open.get(&unit) else { return Ok(unit) };
            let Some(from) = open.unsynced_from else { return Ok(unit) };
            let tail = open.contents.as_ref().map(|c| c.get(from..).unwrap_or_default().to_vec());
            let renamed_from = volume.renamed.get(&unit).cloned().unwrap_or_default();
            let pending = Pending { from, tail, renamed_from, version: open.version };
            (unit, pending, volume.sync_latency)
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let mut volume = self.current_incarnation()?;
        match volume.fault {
            DiskFault::LyingSync => return Ok(unit),
            DiskFault::FailSync => {
                if volume.open.get(&unit).is_some_and(|open| open.version == pending.version) {
                    // Dropped: the node sees the durable contents again.
                    volume.open.remove(&unit);
                    for old in volume.renamed.remove(&unit).unwrap_or_default() {
                        volume.open.remove(&old);
                    }
                }
                return Err(io::Error::other(format!(
                    "sync of `{unit}` failed (injected); its unsynced writes are lost"
                )));
            }
            _ => {}
        }
        match &pending.tail {
            Some(tail) => volume.media.splice(&unit, pending.from, tail)?,
            None => volume.media.remove(&unit)?,
        }
        for old in &pending.renamed_from {
            volume.media.remove(old)?;
            if let Some(open) = volume.open.get_mut(old) {
                // Re-created since the rename: none of it is durable now.
                if open.contents.is_some() {
                    open.unsynced_from = Some(0);
                }
            }
        }
        if let Some(names) = volume.renamed.get_mut(&unit) {
            names.retain(|old| !pending.renamed_from.contains(old));
            if names.is_empty() {
                volume.renamed.remove(&unit);
            }
        }
        if let Some(open) = volume.open.get_mut(&unit).filter(|open| open.version == pending.version) {
            open.unsynced_from = None;
        }
        Ok(unit)
    }

    /// [`sync`](Storage::sync)s every file with unsynced changes, in name order.
    pub async fn sync_all(&self) -> io::Result<()> {
        let files: Vec<String> = {
            let volume = self.ready().await?;
            let changed = volume.open.iter().filter(|(_, open)| open.unsynced_from.is_some());
            changed.map(|(name, _)| name.clone()).chain(volume.renamed.keys().cloned()).collect()
        };
        for file in files.into_iter().collect::<BTreeSet<_>>() {
            self.sync(&file).await?;
        }
        Ok(())
    }

    /// The names of the files that exist, in order.
    pub async fn list(&self) -> io::Result<Vec<String>> {
        let volume = self.ready().await?;
        let mut names: BTreeSet<String> = volume.media.names()?.into_iter().collect();
        for (name, open) in &volume.open {
            match open.contents {
                Some(_) => names.insert(name.clone()),
                None => names.remove(name),
            };
        }
        Ok(names.into_iter().collect())
    }

    /// The node crashed: every file loses its unsynced changes, or is torn
    /// (see the [module](self) documentation), as `seed` decides (file by
    /// file, in name order); a rename not synced is undone. Handles given
    /// out before stop working. For backends.
    pub fn crash(&self, seed: u64) {
        let mut volume = self.lock();
        let open = std::mem::take(&mut volume.open);
        let renamed = std::mem::take(&mut volume.renamed);
        volume.generation += 1;
        volume.entropy = seed;
        volume.draws = 0;
        let changed = open.into_iter().filter_map(|(file, open)| Some((file, open.unsynced_from?, open.contents)));
        for (i, (file, from, contents)) in changed.enumerate() {
            let draw = crate::seed::derive_seed(seed, i as u32, 0, 4);
            let Some(new) = contents else { continue };
            if renamed.contains_key(&file) || draw % 2 == 0 || new.len() <= SECTOR {
                continue;
            }
            // A torn write: the first `cut` bytes of the new contents reached
            // the disk, over what was there; only a cut inside the change
            // makes a difference.
            let cut = ((draw >> 1) % new.len().div_ceil(SECTOR) as u64) as usize * SECTOR;
            if cut <= from {
                continue;
            }
            let old = match volume.media.read(&file) {
                Ok(old) => old.unwrap_or_default(),
                Err(error) => {
                    tracing::warn!(%file, "reading the durable file for a torn write: {error}");
                    continue;
                }
            };
            let kept = from.min(old.len());
            let torn = [&new[kept..cut], old.get(cut..).unwrap_or_default()].concat();
            if let Err(error) = volume.media.splice(&file, kept, &torn) {
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

    /// What a crash under `seed` leaves of `file`, after `setup` on a fresh disk.
    fn after_crash<F: std::future::Future<Output = ()>>(
        seed: u64,
        file: &str,
        setup: impl FnOnce(Storage) -> F,
    ) -> Option<Vec<u8>> {
        block_on(async {
            let disk = Storage::in_memory();
            setup(disk.clone()).await;
            disk.crash(seed);
            disk.restarted().read(file).await.ok()
        })
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
        let mut torn = 0;
        for seed in 0..64 {
            let after = after_crash(seed, "log", |disk| async move {
                disk.append("log", &[1; 100]).await.unwrap();
                disk.sync("log").await.unwrap();
                disk.append("log", &[2; 3 * SECTOR]).await.unwrap();
            })
            .unwrap();
            assert!(after.len() == 100 || after.len() % SECTOR == 0, "seed {seed}: {} bytes", after.len());
            assert_eq!(&after[..100], &[1; 100]);
            assert!(after[100..].iter().all(|&b| b == 2));
            torn += usize::from(after.len() > 100);
        }
        assert!(torn > 0 && torn < 64, "the seed chooses between lost and torn ({torn} of 64 torn)");
    }

    #[test]
    fn a_change_within_one_sector_is_lost_whole_never_torn() {
        for seed in 0..64 {
            // A file of at most one sector.
            let small = after_crash(seed, "small", |disk| async move {
                disk.write("small", b"old").await.unwrap();
                disk.sync("small").await.unwrap();
                disk.write("small", &[7; SECTOR]).await.unwrap();
            });
            assert_eq!(small.unwrap(), b"old", "seed {seed}");
            // An append that stays inside the sector it begins in, at the end of a long file.
            let log = after_crash(seed, "log", |disk| async move {
                disk.append("log", &[1; 4 * SECTOR + 10]).await.unwrap();
                disk.sync("log").await.unwrap();
                disk.append("log", &[2; 400]).await.unwrap();
            });
            assert_eq!(log.unwrap(), [1; 4 * SECTOR + 10], "seed {seed}");
        }
    }

    #[test]
    fn an_append_across_a_sector_boundary_tears_only_at_a_boundary_inside_it() {
        let mut torn = 0;
        for seed in 0..64 {
            let log = after_crash(seed, "log", |disk| async move {
                disk.append("log", &[1; 2 * SECTOR - 8]).await.unwrap();
                disk.sync("log").await.unwrap();
                disk.append("log", &[2; 16]).await.unwrap();
            })
            .unwrap();
            match log.len() {
                n if n == 2 * SECTOR - 8 => {}
                n if n == 2 * SECTOR => {
                    torn += 1;
                    assert_eq!(&log[2 * SECTOR - 8..], &[2; 8], "the first changed sector reached the disk");
                }
                n => panic!("seed {seed}: {n} bytes"),
            }
        }
        assert!(torn > 0, "some seed tears it");
    }

    #[test]
    fn appends_grow_the_file_in_place_and_a_sync_writes_what_changed() {
        block_on(async {
            let disk = Storage::in_memory();
            for i in 0..1000u32 {
                disk.append("log", &i.to_le_bytes()).await.unwrap();
                if i % 10 == 9 {
                    disk.sync("log").await.unwrap();
                }
            }
            let want: Vec<u8> = (0..1000u32).flat_map(u32::to_le_bytes).collect();
            assert_eq!(disk.read("log").await.unwrap(), want);
            disk.crash(1);
            assert_eq!(disk.restarted().read("log").await.unwrap(), want, "every append was synced");
        });
    }

    #[test]
    fn a_truncate_is_seen_at_once_undone_by_a_crash_and_durable_after_a_sync() {
        block_on(async {
            let disk = Storage::in_memory();
            disk.write("log", b"one two three").await.unwrap();
            disk.sync("log").await.unwrap();
            disk.truncate("log", 7).await.unwrap();
            assert_eq!(disk.read("log").await.unwrap(), b"one two");
            disk.crash(0);
            let disk = disk.restarted();
            assert_eq!(disk.read("log").await.unwrap(), b"one two three", "an unsynced truncate is undone");
            disk.truncate("log", 3).await.unwrap();
            disk.append("log", b" four").await.unwrap();
            disk.sync("log").await.unwrap();
            disk.crash(0);
            let disk = disk.restarted();
            assert_eq!(disk.read("log").await.unwrap(), b"one four");
            assert_eq!(disk.truncate("nothing", 0).await.unwrap_err().kind(), io::ErrorKind::NotFound);
        });
    }

    #[test]
    fn a_rename_is_atomic_and_durable_after_a_sync_of_either_name() {
        for sync in [None, Some("new"), Some("old")] {
            for seed in 0..16 {
                block_on(async {
                    let disk = Storage::in_memory();
                    disk.write("new", b"previous").await.unwrap();
                    disk.sync_all().await.unwrap();
                    disk.write("old", &[9; 3 * SECTOR]).await.unwrap();
                    disk.rename("old", "new").await.unwrap();
                    assert_eq!(disk.read("new").await.unwrap(), [9; 3 * SECTOR]);
                    assert!(!disk.exists("old").await.unwrap());
                    if let Some(name) = sync {
                        disk.sync(name).await.unwrap();
                    }
                    disk.crash(seed);
                    let disk = disk.restarted();
                    let (old, new) = (disk.read("old").await.ok(), disk.read("new").await.unwrap());
                    match sync {
                        None => {
                            assert_eq!(new, b"previous", "an unsynced rename is undone");
                            assert_eq!(old, None, "the old name's unsynced contents are lost, never torn");
                        }
                        Some(_) => {
                            assert_eq!(new, [9; 3 * SECTOR], "synced with {sync:?}");
                            assert_eq!(old, None, "the old name is gone");
                        }
                    }
                });
            }
        }
        block_on(async {
            let disk = Storage::in_memory();
            disk.write("a", b"contents").await.unwrap();
            disk.sync("a").await.unwrap();
            disk.rename("a", "b").await.unwrap();
            disk.rename("b", "c").await.unwrap();
            disk.sync_all().await.unwrap();
            disk.crash(3);
            assert_eq!(disk.restarted().list().await.unwrap(), vec!["c".to_string()], "a chain of renames");
            assert_eq!(disk.restarted().rename("a", "d").await.unwrap_err().kind(), io::ErrorKind::NotFound);
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
    fn a_lying_sync_returns_ok_and_a_crash_loses_what_it_claimed() {
        block_on(async {
            let disk = Storage::in_memory();
            disk.write("decision", b"commit 1").await.unwrap();
            disk.set_fault(DiskFault::LyingSync);
            disk.write("decision", b"commit 2").await.unwrap();
            disk.sync("decision").await.unwrap();
            disk.crash(0);
            let disk = disk.restarted();
            assert!(!disk.exists("decision").await.unwrap(), "the crash lost even what was written before the fault");
            disk.write("decision", b"commit 3").await.unwrap();
            disk.sync("decision").await.unwrap();
            disk.set_fault(DiskFault::None);
            disk.sync("decision").await.unwrap();
            disk.crash(0);
            assert_eq!(disk.restarted().read("decision").await.unwrap(), b"commit 3", "an honest sync flushes them");
        });
    }

    /// A record as a careful node writes it: length, checksum, payload.
    fn record(payload: &[u8]) -> Vec<u8> {
        let sum = xxhash_rust::xxh3::xxh3_64(payload);
        [&(payload.len() as u32).to_le_bytes()[..], &sum.to_le_bytes(), payload].concat()
    }

    /// The payloads of the records `bytes` holds, or where the first bad one begins.
    fn records(bytes: &[u8]) -> Result<Vec<Vec<u8>>, usize> {
        let (mut at, mut payloads) = (0, Vec::new());
        while at < bytes.len() {
            let header = bytes.get(at..at + 12).ok_or(at)?;
            let len = u32::from_le_bytes(header[..4].try_into().unwrap()) as usize;
            let sum = u64::from_le_bytes(header[4..].try_into().unwrap());
            let payload = bytes.get(at + 12..at + 12 + len).ok_or(at)?;
            if xxhash_rust::xxh3::xxh3_64(payload) != sum {
                return Err(at);
            }
            payloads.push(payload.to_vec());
            at += 12 + len;
        }
        Ok(payloads)
    }

    #[test]
    fn a_checksummed_record_detects_every_corruption() {
        block_on(async {
            let entries: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 30]).collect();
            // Flipped bits on read: detected, and the durable contents are unharmed.
            let disk = Storage::in_memory();
            for entry in &entries {
                disk.append("log", &record(entry)).await.unwrap();
            }
            disk.sync("log").await.unwrap();
            disk.crash(11);
            let disk = disk.restarted();
            disk.set_fault(DiskFault::CorruptRead);
            let corrupt = disk.read("log").await.unwrap();
            assert!(records(&corrupt).is_err(), "a flipped bit breaks a checksum");
            let other = disk.read("log").await.unwrap();
            assert_ne!(corrupt, other, "every read draws its own bit");
            disk.set_fault(DiskFault::None);
            assert_eq!(records(&disk.read("log").await.unwrap()).unwrap(), entries);

            // A misdirected append: the record lands a sector off.
            disk.set_fault(DiskFault::MisdirectedWrite);
            disk.append("log", &record(b"strays")).await.unwrap();
            disk.set_fault(DiskFault::None);
            assert!(records(&disk.read("log").await.unwrap()).is_err(), "a record out of place breaks the log");

            // A lying sync: the restarted node finds fewer records than it
            // acknowledged (a peer, or its own counter elsewhere, tells).
            let disk = Storage::in_memory();
            disk.append("log", &record(b"first")).await.unwrap();
            disk.sync("log").await.unwrap();
            disk.set_fault(DiskFault::LyingSync);
            disk.append("log", &record(b"acknowledged")).await.unwrap();
            disk.sync("log").await.unwrap();
            disk.crash(5);
            let survived = records(&disk.restarted().read("log").await.unwrap()).unwrap();
            assert_eq!(survived, vec![b"first".to_vec()], "the record acknowledged after the lying sync is gone");
        });
    }

    #[test]
    fn corruptions_are_a_pure_function_of_the_crash_seeds() {
        let reads = |seed| {
            block_on(async {
                let disk = Storage::in_memory();
                disk.write("a", &[0; 64]).await.unwrap();
                disk.sync("a").await.unwrap();
                disk.crash(seed);
                let disk = disk.restarted();
                disk.set_fault(DiskFault::CorruptRead);
                let mut reads = Vec::new();
                for _ in 0..4 {
                    reads.push(disk.read("a").await.unwrap());
                }
                disk.set_fault(DiskFault::MisdirectedWrite);
                disk.write("b", &[1; 10]).await.unwrap();
                reads.push(disk.read("b").await.unwrap());
                reads
            })
        };
        assert_eq!(reads(1), reads(1));
        assert_ne!(reads(1), reads(2));
        let stray = reads(1).pop().unwrap();
        assert_eq!(stray, [&[0; SECTOR][..], &[1; 10]].concat(), "a write at 0 can only stray a sector after");
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
    fn a_directory_keeps_synced_files_renames_truncates_and_lies_too() {
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

            reopened.append("state", b" log").await.unwrap();
            reopened.truncate("state", 3).await.unwrap();
            reopened.append("state", b"!").await.unwrap();
            reopened.write("snapshot.tmp", b"snap").await.unwrap();
            reopened.rename("snapshot.tmp", "snapshot").await.unwrap();
            reopened.sync_all().await.unwrap();
            reopened.set_fault(DiskFault::LyingSync);
            reopened.append("state", b" claimed").await.unwrap();
            reopened.sync("state").await.unwrap();
            reopened.crash(0);
            let again = Storage::in_directory(&dir).unwrap();
            assert_eq!(again.read("state").await.unwrap(), b"dur!", "the lying sync wrote nothing");
            assert_eq!(again.list().await.unwrap(), vec!["snapshot".to_string(), "state".to_string()]);
            assert_eq!(std::fs::read(dir.join("snapshot")).unwrap(), b"snap", "real files");
        });
        std::fs::remove_dir_all(dir).unwrap();
    }
}

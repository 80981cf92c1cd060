//! The set of backends loaded from the plugins folder, kept in sync with it (hot loading).
//!
//! Invariants:
//! * One active backend per declared name; with several files of one name, the highest
//!   semver wins (ties: the first file name), the others are reported as duplicates.
//! * What is started depends on how the registry was opened ([`Start`]): every winner
//!   ([`Registry::open`], daemon and hot loading), the winner of one name
//!   ([`Registry::open_for`], a task: one plugin host), or nothing ([`Registry::inspect`],
//!   listings). Names are read from each file's static metadata section without running
//!   plugin code; only files without one (built before it existed) are probed.
//! * A file is re-examined only when its metadata fingerprint changes, and re-loaded only when
//!   its content hash changes. A changed file is loaded from its new cache copy, then swapped
//!   in: callers holding the old `Arc<dyn Backend>` finish on the old one, which is dropped
//!   (its child stopped, in process isolation) when the last of them returns.
//! * A file that fails (refused, `new()` error) stays refused until it changes.
//! * Every change is logged.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use parking_lot::{Mutex, RwLock};

use armadito_plugin_api::model::PluginMetadata;

use super::inprocess::InProcessBackend;
use super::loader::{self, LoadError, LoadedModule};
use super::metadata;
use super::process::{self, Probe, ProcessBackend};
use super::report::{PluginReport, PluginStatus};
use super::security::{self, TrustError};
use super::{Backend, Isolation, PluginsConfig};

/// The registry could not be set up at all.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("plugin cache folder: {0}")]
    Cache(#[source] TrustError),
}

/// One change applied by [`Registry::rescan`] (also logged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Loaded {
        name: String,
        version: String,
        file: PathBuf,
    },
    Replaced {
        name: String,
        old_version: String,
        version: String,
        file: PathBuf,
    },
    Unloaded {
        name: String,
        file: PathBuf,
    },
    Refused {
        file: PathBuf,
        reason: String,
    },
}

/// What changes when a file changes: size, times, inode.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    len: u64,
    modified: Option<SystemTime>,
    #[cfg(unix)]
    ctime: (i64, i64),
    #[cfg(unix)]
    ino: (u64, u64),
}

impl Fingerprint {
    fn of(meta: &fs::Metadata) -> Self {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt;
        Fingerprint {
            len: meta.len(),
            modified: meta.modified().ok(),
            #[cfg(unix)]
            ctime: (meta.ctime(), meta.ctime_nsec()),
            #[cfg(unix)]
            ino: (meta.dev(), meta.ino()),
        }
    }
}

/// How to start a backend from a verified file.
enum Starter {
    InProcess(LoadedModule),
    /// The probe child that read the metadata (reused for the first start), if still alive.
    Process(Option<Probe>),
    /// Known from the file's static metadata only: load (and check) when started.
    Deferred,
}

/// Which backends a registry starts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Start {
    All,
    Only(String),
    Nothing,
}

struct FileEntry {
    fingerprint: Option<Fingerprint>,
    hash: Option<String>,
    cached: Option<PathBuf>,
    metadata: Option<PluginMetadata>,
    /// `false` when the metadata came from a static section without capabilities.
    has_capabilities: bool,
    /// `None` once refused.
    starter: Option<Starter>,
    status: PluginStatus,
    reason: Option<String>,
}

impl FileEntry {
    fn refused(fingerprint: Option<Fingerprint>, reason: String) -> Self {
        FileEntry {
            fingerprint,
            hash: None,
            cached: None,
            metadata: None,
            has_capabilities: false,
            starter: None,
            status: PluginStatus::Refused,
            reason: Some(reason),
        }
    }

    fn version(&self) -> semver::Version {
        self.metadata
            .as_ref()
            .and_then(|m| semver::Version::parse(&m.version).ok())
            .unwrap_or(semver::Version::new(0, 0, 0))
    }
}

#[derive(Default)]
struct Inner {
    dir_problem: Option<String>,
    files: BTreeMap<PathBuf, FileEntry>,
    /// name -> (file, hash) of the active backend.
    active_src: BTreeMap<String, (PathBuf, String)>,
}

/// The loaded backends. Cheap to query from any thread; [`Registry::rescan`] is serialized.
pub struct Registry {
    cfg: PluginsConfig,
    start: Start,
    cache_dir: PathBuf,
    inner: Mutex<Inner>,
    active: RwLock<BTreeMap<String, Arc<dyn Backend>>>,
}

impl Registry {
    /// Prepare the cache and start every backend of `cfg.dir` (daemon, hot loading).
    pub fn open(cfg: PluginsConfig) -> Result<Registry, RegistryError> {
        Self::open_with(cfg, Start::All)
    }

    /// Start only the backend called `name` (the file that declares it with the highest
    /// version); the other files are only read. What a task needs: one plugin host.
    pub fn open_for(cfg: PluginsConfig, name: &str) -> Result<Registry, RegistryError> {
        Self::open_with(cfg, Start::Only(name.to_owned()))
    }

    /// Read every file's metadata and start nothing (listings). Only plugins without a static
    /// metadata section run code: their metadata is asked from a probe, stopped at once.
    pub fn inspect(cfg: PluginsConfig) -> Result<Registry, RegistryError> {
        Self::open_with(cfg, Start::Nothing)
    }

    fn open_with(cfg: PluginsConfig, start: Start) -> Result<Registry, RegistryError> {
        let cache_dir =
            security::prepare_cache_dir(&cfg.cache_dir).map_err(RegistryError::Cache)?;
        let registry = Registry {
            cfg,
            start,
            cache_dir,
            inner: Mutex::new(Inner::default()),
            active: RwLock::new(BTreeMap::new()),
        };
        registry.rescan();
        Ok(registry)
    }

    pub fn config(&self) -> &PluginsConfig {
        &self.cfg
    }

    /// The active backend called `name`. Keep the `Arc` for the duration of a call only:
    /// holding it delays the release of a replaced plugin.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Backend>> {
        self.active.read().get(name).cloned()
    }

    /// Names a backend could be started for (started or available), sorted.
    pub fn usable_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .reports()
            .into_iter()
            .filter(PluginReport::is_usable)
            .filter_map(|r| r.name)
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Names of the active backends, sorted.
    pub fn names(&self) -> Vec<String> {
        self.active.read().keys().cloned().collect()
    }

    /// One report per file of the folder (plus the folder itself if it is refused).
    pub fn reports(&self) -> Vec<PluginReport> {
        let inner = self.inner.lock();
        let mut out = Vec::new();
        if let Some(problem) = &inner.dir_problem {
            out.push(PluginReport::refused(
                self.cfg.dir.clone(),
                problem.clone(),
                self.cfg.isolation,
            ));
        }
        for (file, e) in &inner.files {
            let m = e.metadata.as_ref();
            out.push(PluginReport {
                file: file.clone(),
                name: m.map(|m| m.name.clone()),
                version: m.map(|m| m.version.clone()),
                interface_version: m.map(|m| m.interface_version.clone()),
                hash: e.hash.clone(),
                cached: e.cached.clone(),
                status: e.status,
                reason: e.reason.clone(),
                isolation: self.cfg.isolation,
                description: m.map(|m| m.description.clone()).filter(|d| !d.is_empty()),
                capabilities: m
                    .filter(|_| e.has_capabilities)
                    .map(|m| m.capabilities.clone()),
            });
        }
        out
    }

    /// Bring the loaded set in line with the folder: load new files, swap changed ones,
    /// unload removed ones. Returns (and logs) what changed.
    pub fn rescan(&self) -> Vec<Change> {
        let mut inner = self.inner.lock();
        let mut changes = Vec::new();

        if let Err(problem) = self.check_dir() {
            if inner.dir_problem.as_ref() != Some(&problem) {
                tracing::error!("plugins folder refused, nothing new is loaded: {problem}");
            }
            inner.dir_problem = Some(problem);
            return changes;
        }
        if inner.dir_problem.take().is_some() {
            tracing::info!(dir = %self.cfg.dir.display(), "plugins folder accepted again");
        }

        let listing = self.list_dir();
        let mut dirty = false;
        let present: BTreeSet<PathBuf> = listing.iter().cloned().collect();
        let gone: Vec<PathBuf> = inner
            .files
            .keys()
            .filter(|f| !present.contains(*f))
            .cloned()
            .collect();
        for file in gone {
            tracing::info!(file = %file.display(), "plugin file removed");
            inner.files.remove(&file);
            dirty = true;
        }
        for file in listing {
            let fingerprint = fs::metadata(&file).ok().map(|m| Fingerprint::of(&m));
            let unchanged = inner
                .files
                .get(&file)
                .is_some_and(|prev| fingerprint.is_some() && prev.fingerprint == fingerprint);
            if unchanged {
                continue;
            }
            let previous = inner.files.remove(&file);
            let entry = self.examine(&file, fingerprint, previous);
            if entry.status == PluginStatus::Refused
                && let Some(reason) = &entry.reason
            {
                tracing::warn!(file = %file.display(), "plugin refused: {reason}");
                changes.push(Change::Refused {
                    file: file.clone(),
                    reason: reason.clone(),
                });
            }
            inner.files.insert(file, entry);
            dirty = true;
        }
        if dirty {
            self.resolve(&mut inner, &mut changes);
        }
        changes
    }

    fn check_dir(&self) -> Result<(), String> {
        let dir = &self.cfg.dir;
        let meta = fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if !meta.is_dir() {
            return Err(format!("{}: not a folder", dir.display()));
        }
        security::check_trusted_dir(dir).map_err(|e| e.to_string())
    }

    fn list_dir(&self) -> Vec<PathBuf> {
        let Ok(entries) = fs::read_dir(&self.cfg.dir) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| security::has_library_extension(p))
            .collect();
        files.sort();
        files
    }

    /// Whether files declaring `name` are copied (and hashed) when examined: the ones this
    /// registry may start, and all of them for listings (which show the hash).
    fn copies(&self, name: Option<&str>) -> bool {
        match &self.start {
            Start::All | Start::Nothing => true,
            Start::Only(only) => name.is_none_or(|n| n == only),
        }
    }

    /// Check one new or changed file and read its metadata: from its static section, or else
    /// from a probe (which runs the plugin's code) on its cache copy.
    fn examine(
        &self,
        file: &Path,
        fingerprint: Option<Fingerprint>,
        previous: Option<FileEntry>,
    ) -> FileEntry {
        let Some(fp) = fingerprint else {
            return FileEntry::refused(None, "cannot read the file's metadata".into());
        };
        if let Err(e) = security::check_trusted(file) {
            return FileEntry::refused(Some(fp), e.to_string());
        }
        if !fs::metadata(file).is_ok_and(|m| m.is_file()) {
            return FileEntry::refused(Some(fp), "not a regular file".into());
        }
        let declared = match metadata::read(file) {
            Ok(found) => found,
            Err(reason) => return FileEntry::refused(Some(fp), reason),
        };
        if let Some(found) = &declared
            && let Err(e) = loader::check_declared(&found.metadata)
        {
            return FileEntry::refused(Some(fp), e.to_string());
        }
        let mut entry = FileEntry {
            fingerprint: Some(fp),
            hash: None,
            cached: None,
            metadata: None,
            has_capabilities: false,
            starter: None,
            status: PluginStatus::Refused,
            reason: None,
        };
        if self.copies(declared.as_ref().map(|d| d.metadata.name.as_str())) {
            let copy = match security::copy_to_cache(file, &self.cache_dir) {
                Ok(c) => c,
                Err(e) => return FileEntry::refused(entry.fingerprint, e.to_string()),
            };
            // Touched but identical: keep everything (a running backend stays as is).
            if let Some(mut prev) = previous
                && prev.hash.as_deref() == Some(copy.hash.as_str())
            {
                prev.fingerprint = entry.fingerprint;
                return prev;
            }
            entry.hash = Some(copy.hash);
            entry.cached = Some(copy.path);
        }
        // Status decided by `resolve`.
        if let Some(found) = declared {
            entry.metadata = Some(found.metadata);
            entry.has_capabilities = found.has_capabilities;
            entry.starter = Some(Starter::Deferred);
            entry.status = PluginStatus::Duplicate;
            return entry;
        }
        let Some(cached) = entry.cached.clone() else {
            entry.reason = Some("no metadata section and no cache copy".into());
            return entry;
        };
        let probed: Result<(PluginMetadata, Starter), LoadError> = match self.cfg.isolation {
            Isolation::InProcess => loader::load_module(&cached)
                .map(|loaded| (loaded.metadata.clone(), Starter::InProcess(loaded))),
            Isolation::Process => process::probe(&self.cfg, &cached)
                .map(|probe| (probe.metadata.clone(), Starter::Process(Some(probe)))),
        };
        match probed {
            Ok((metadata, starter)) => {
                tracing::debug!(file = %file.display(), "plugin without a metadata section: probed");
                entry.metadata = Some(metadata);
                entry.has_capabilities = true;
                entry.starter = Some(starter);
                entry.status = PluginStatus::Duplicate;
            }
            Err(e) => entry.reason = Some(e.to_string()),
        }
        entry
    }

    /// Pick and start the winner of every name; unload names without candidates.
    fn resolve(&self, inner: &mut Inner, changes: &mut Vec<Change>) {
        let mut by_name: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
        for (file, e) in &inner.files {
            if let (Some(m), Some(_)) = (&e.metadata, &e.starter) {
                by_name
                    .entry(m.name.clone())
                    .or_default()
                    .push(file.clone());
            }
        }
        let mut names: BTreeSet<String> = by_name.keys().cloned().collect();
        names.extend(inner.active_src.keys().cloned());

        for name in names {
            let mut candidates = by_name.remove(&name).unwrap_or_default();
            candidates.sort_by(|a, b| {
                let (va, vb) = (inner.files[a].version(), inner.files[b].version());
                vb.cmp(&va).then_with(|| a.cmp(b))
            });
            let current = inner.active_src.get(&name).cloned();
            let mut winner: Option<PathBuf> = None;
            let startable = match &self.start {
                Start::All => true,
                Start::Only(only) => *only == name,
                Start::Nothing => false,
            };
            if !startable {
                winner = candidates.first().cloned();
            }
            for file in candidates.iter().filter(|_| startable) {
                let Some(entry) = inner.files.get_mut(file) else {
                    continue;
                };
                let hash = entry.hash.clone().unwrap_or_default();
                if current.as_ref() == Some(&(file.clone(), hash.clone())) {
                    winner = Some(file.clone());
                    break;
                }
                match self.start(file, entry) {
                    Ok(backend) => {
                        let version = backend.metadata().version.clone();
                        entry.metadata = Some(backend.metadata().clone());
                        entry.has_capabilities = true;
                        let old = self.active.write().insert(name.clone(), backend);
                        let change = match old {
                            Some(old) => Change::Replaced {
                                name: name.clone(),
                                old_version: old.metadata().version.clone(),
                                version,
                                file: file.clone(),
                            },
                            None => Change::Loaded {
                                name: name.clone(),
                                version,
                                file: file.clone(),
                            },
                        };
                        log_change(&change);
                        changes.push(change);
                        inner.active_src.insert(name.clone(), (file.clone(), hash));
                        winner = Some(file.clone());
                        break;
                    }
                    Err(e) => {
                        let reason = e.to_string();
                        tracing::warn!(backend = name, file = %file.display(), "plugin refused: {reason}");
                        changes.push(Change::Refused {
                            file: file.clone(),
                            reason: reason.clone(),
                        });
                        entry.starter = None;
                        entry.status = PluginStatus::Refused;
                        entry.reason = Some(reason);
                    }
                }
            }

            match &winner {
                Some(w) => {
                    let wversion = inner.files[w].version();
                    for file in candidates.iter().filter(|f| *f != w) {
                        let Some(entry) = inner.files.get_mut(file) else {
                            continue;
                        };
                        if entry.starter.is_none() {
                            continue;
                        }
                        let reason = format!(
                            "another file provides {name:?} with version {wversion} ({}), which wins",
                            w.file_name()
                                .map(|f| f.to_string_lossy())
                                .unwrap_or_default()
                        );
                        if entry.status != PluginStatus::Duplicate
                            || entry.reason.as_ref() != Some(&reason)
                        {
                            tracing::warn!(backend = name, file = %file.display(), "duplicate plugin ignored: {reason}");
                        }
                        entry.status = PluginStatus::Duplicate;
                        entry.reason = Some(reason);
                        // Do not keep an idle probe child around for a loser.
                        if let Some(Starter::Process(probe)) = &mut entry.starter {
                            probe.take();
                        }
                    }
                    if let Some(entry) = inner.files.get_mut(w) {
                        entry.status = if startable {
                            PluginStatus::Loaded
                        } else {
                            PluginStatus::Available
                        };
                        entry.reason = None;
                        if !startable && let Some(Starter::Process(probe)) = &mut entry.starter {
                            probe.take();
                        }
                    }
                }
                None => {
                    if let Some((file, _)) = inner.active_src.remove(&name) {
                        self.active.write().remove(&name);
                        let change = Change::Unloaded {
                            name: name.clone(),
                            file,
                        };
                        log_change(&change);
                        changes.push(change);
                    }
                }
            }
        }
    }

    /// Start the backend of `file` (its entry in `entry`).
    fn start(&self, file: &Path, entry: &mut FileEntry) -> Result<Arc<dyn Backend>, LoadError> {
        let metadata = entry
            .metadata
            .clone()
            .ok_or_else(|| LoadError::Other("no metadata".into()))?;
        if entry.cached.is_none() {
            // Chosen from its static metadata without a copy yet (`Registry::open_for`).
            let copy = security::copy_to_cache(file, &self.cache_dir)
                .map_err(|e| LoadError::Other(e.to_string()))?;
            entry.hash = Some(copy.hash);
            entry.cached = Some(copy.path);
        }
        let cached = entry
            .cached
            .clone()
            .ok_or_else(|| LoadError::Other("no cached copy".into()))?;
        let in_process = |loaded: &LoadedModule| -> Result<Arc<dyn Backend>, LoadError> {
            let settings = self.cfg.settings_json(&metadata.name);
            let instance = loader::instantiate(loaded, loader::in_process_services(), &settings)?;
            Ok(Arc::new(InProcessBackend::new(
                loaded.metadata.clone(),
                instance,
                self.cfg.clone(),
            )))
        };
        match entry.starter.as_mut() {
            Some(Starter::InProcess(loaded)) => in_process(loaded),
            Some(Starter::Process(probe)) => {
                let probe = match probe.take() {
                    Some(p) => p,
                    None => process::probe(&self.cfg, &cached)?,
                };
                let backend = ProcessBackend::start(probe, cached, self.cfg.clone())?;
                Ok(Arc::new(backend))
            }
            Some(Starter::Deferred) => match self.cfg.isolation {
                Isolation::InProcess => {
                    let loaded = loader::load_module(&cached)?;
                    same_plugin(&metadata, &loaded.metadata)?;
                    in_process(&loaded)
                }
                Isolation::Process => {
                    let probe = process::probe(&self.cfg, &cached)?;
                    same_plugin(&metadata, &probe.metadata)?;
                    let backend = ProcessBackend::start(probe, cached, self.cfg.clone())?;
                    Ok(Arc::new(backend))
                }
            },
            None => Err(LoadError::Other("refused".into())),
        }
    }

    /// Poll the folder every `cfg.watch_interval` on a background thread (daemon mode).
    pub fn watch(self: &Arc<Self>) -> Watcher {
        self.watch_every(self.cfg.watch_interval)
    }

    /// Like [`Registry::watch`] with an explicit interval.
    pub fn watch_every(self: &Arc<Self>, interval: Duration) -> Watcher {
        let (stop, stopped) = mpsc::channel::<()>();
        let registry = Arc::downgrade(self);
        let thread = std::thread::Builder::new()
            .name("plugins-watch".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                    let Some(registry) = registry.upgrade() else {
                        break;
                    };
                    registry.rescan();
                }
            })
            .ok();
        if thread.is_none() {
            tracing::error!("cannot start the plugins watcher thread; hot loading is off");
        }
        Watcher {
            stop: Some(stop),
            thread,
        }
    }
}

/// Stops the folder watcher when dropped.
pub struct Watcher {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The loaded code must be the plugin the metadata section described.
fn same_plugin(declared: &PluginMetadata, loaded: &PluginMetadata) -> Result<(), LoadError> {
    if declared.name != loaded.name || declared.version != loaded.version {
        return Err(LoadError::Metadata(format!(
            "the metadata section says {} {} but the plugin says {} {}",
            declared.name, declared.version, loaded.name, loaded.version
        )));
    }
    Ok(())
}

fn log_change(change: &Change) {
    match change {
        Change::Loaded {
            name,
            version,
            file,
        } => {
            tracing::info!(backend = name, version, file = %file.display(), "backend loaded")
        }
        Change::Replaced {
            name,
            old_version,
            version,
            file,
        } => tracing::info!(
            backend = name,
            old_version,
            version,
            file = %file.display(),
            "backend replaced by a new build (the old one stops after its calls in flight)"
        ),
        Change::Unloaded { name, file } => {
            tracing::info!(backend = name, file = %file.display(), "backend unloaded")
        }
        Change::Refused { file, reason } => {
            tracing::warn!(file = %file.display(), "plugin refused: {reason}")
        }
    }
}

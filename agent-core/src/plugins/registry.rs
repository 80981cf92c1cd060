//! The set of backends loaded from the plugins folder, kept in sync with it (hot loading).
//!
//! Invariants:
//! * One active backend per declared name; with several files of one name, the highest
//!   semver wins (ties: the first file name), the others are reported as duplicates.
//! * A file is re-examined only when its metadata fingerprint changes, and re-loaded only when
//!   its content hash changes. A changed file is loaded from its new cache copy, then swapped
//!   in: callers holding the old `Arc<dyn Backend>` finish on the old one, which is dropped
//!   (its child stopped, in process isolation) when the last of them returns.
//! * A file that fails (refused, `new()` error) stays refused until it changes.
//! * Every change is logged.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use armadito_plugin_api::model::PluginMetadata;

use super::inprocess::InProcessBackend;
use super::loader::{self, LoadError, LoadedModule};
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
}

struct FileEntry {
    fingerprint: Option<Fingerprint>,
    hash: Option<String>,
    cached: Option<PathBuf>,
    metadata: Option<PluginMetadata>,
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
    cache_dir: PathBuf,
    inner: Mutex<Inner>,
    active: RwLock<BTreeMap<String, Arc<dyn Backend>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Registry {
    /// Prepare the cache and load everything in `cfg.dir` (one-shot runs stop here).
    pub fn open(cfg: PluginsConfig) -> Result<Registry, RegistryError> {
        let cache_dir =
            security::prepare_cache_dir(&cfg.cache_dir).map_err(RegistryError::Cache)?;
        let registry = Registry {
            cfg,
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
        self.active
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// Names of the active backends, sorted.
    pub fn names(&self) -> Vec<String> {
        self.active
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// One report per file of the folder (plus the folder itself if it is refused).
    pub fn reports(&self) -> Vec<PluginReport> {
        let inner = lock(&self.inner);
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
                capabilities: m.map(|m| m.capabilities.clone()),
            });
        }
        out
    }

    /// Bring the loaded set in line with the folder: load new files, swap changed ones,
    /// unload removed ones. Returns (and logs) what changed.
    pub fn rescan(&self) -> Vec<Change> {
        let mut inner = lock(&self.inner);
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

    /// Check, hash, cache and probe one new or changed file.
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
        let copy = match security::copy_to_cache(file, &self.cache_dir) {
            Ok(c) => c,
            Err(e) => return FileEntry::refused(Some(fp), e.to_string()),
        };
        // Touched but identical: keep everything (a running backend stays as is).
        if let Some(mut prev) = previous
            && prev.hash.as_deref() == Some(copy.hash.as_str())
        {
            prev.fingerprint = Some(fp);
            return prev;
        }
        let probed: Result<(PluginMetadata, Starter), LoadError> = match self.cfg.isolation {
            Isolation::InProcess => loader::load_module(&copy.path)
                .map(|loaded| (loaded.metadata.clone(), Starter::InProcess(loaded))),
            Isolation::Process => process::probe(&self.cfg, &copy.path)
                .map(|probe| (probe.metadata.clone(), Starter::Process(Some(probe)))),
        };
        let mut entry = FileEntry {
            fingerprint: Some(fp),
            hash: Some(copy.hash),
            cached: Some(copy.path),
            metadata: None,
            starter: None,
            status: PluginStatus::Refused,
            reason: None,
        };
        match probed {
            Ok((metadata, starter)) => {
                entry.metadata = Some(metadata);
                entry.starter = Some(starter);
                // Status decided by `resolve`.
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
            for file in &candidates {
                let Some(entry) = inner.files.get_mut(file) else {
                    continue;
                };
                let hash = entry.hash.clone().unwrap_or_default();
                if current.as_ref() == Some(&(file.clone(), hash.clone())) {
                    winner = Some(file.clone());
                    break;
                }
                match self.start(entry) {
                    Ok(backend) => {
                        let version = backend.metadata().version.clone();
                        let old = self
                            .active
                            .write()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(name.clone(), backend);
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
                        entry.status = PluginStatus::Loaded;
                        entry.reason = None;
                    }
                }
                None => {
                    if let Some((file, _)) = inner.active_src.remove(&name) {
                        self.active
                            .write()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&name);
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

    fn start(&self, entry: &mut FileEntry) -> Result<Arc<dyn Backend>, LoadError> {
        let metadata = entry
            .metadata
            .clone()
            .ok_or_else(|| LoadError::Other("no metadata".into()))?;
        let cached = entry
            .cached
            .clone()
            .ok_or_else(|| LoadError::Other("no cached copy".into()))?;
        match entry.starter.as_mut() {
            Some(Starter::InProcess(loaded)) => {
                let settings = self.cfg.settings_json(&metadata.name);
                let instance =
                    loader::instantiate(loaded, loader::in_process_services(), &settings)?;
                Ok(Arc::new(InProcessBackend::new(
                    metadata,
                    instance,
                    self.cfg.clone(),
                )))
            }
            Some(Starter::Process(probe)) => {
                let probe = match probe.take() {
                    Some(p) => p,
                    None => process::probe(&self.cfg, &cached)?,
                };
                let backend = ProcessBackend::start(probe, cached, self.cfg.clone())?;
                Ok(Arc::new(backend))
            }
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

//! What the listener keeps per target beyond its configuration: the
//! upstream endpoint (TLS connector, SCRAM cache) and, for protected
//! targets, the catalog kept refreshed in the background. One
//! [`TargetSet`] per configuration generation; a reload builds the next
//! one, keeping what did not change (a reused catalog is not loaded again).

use crate::catalog::{self, CatalogCell};
use crate::tls::TlsError;
use crate::upstream::Endpoint;
use airlock_core::{Config, LiveConfig, Snapshot, Target};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{error, info, warn};

/// How long building a set waits for each new catalog before going on
/// (sessions rarely start before it is known; it keeps loading after).
const CATALOG_WAIT: Duration = Duration::from_secs(10);

/// What makes an endpoint and a catalog reusable across generations.
#[derive(Debug, Clone, PartialEq)]
struct Fingerprint {
    upstream: String,
    user: Option<String>,
    password: Option<String>,
    trusted: Vec<String>,
    protected: bool,
}

impl Fingerprint {
    fn of(t: &Target) -> Self {
        let creds = t.session_credentials();
        Fingerprint {
            upstream: format!("{:?}", t.upstream),
            user: creds.map(|c| c.user.clone()),
            password: creds.and_then(|c| c.password.clone()),
            trusted: t.trusted_functions.clone(),
            protected: t.protected,
        }
    }
}

/// One target's upstream parts.
struct Entry {
    fingerprint: Fingerprint,
    endpoint: Endpoint,
    catalog: Option<Arc<CatalogCell>>,
    /// Stops the catalog's refresher once no generation uses it.
    _refresher: Option<Arc<DropGuard>>,
}

/// Endpoints and catalogs of one configuration generation.
#[derive(Default)]
pub struct TargetSet {
    entries: HashMap<String, Entry>,
    /// The configuration generation it was installed for.
    generation: u64,
}

impl TargetSet {
    /// Builds the set for `config`, reusing from `previous` every target
    /// whose upstream, credentials and trusted functions did not change.
    pub async fn build(config: &Config, previous: Option<&TargetSet>) -> Result<Self, TlsError> {
        let mut entries = HashMap::new();
        // The MySQL listener keeps its own endpoints.
        let postgres = config
            .targets
            .iter()
            .filter(|t| t.engine == airlock_core::Engine::Postgres);
        for t in postgres {
            let fingerprint = Fingerprint::of(t);
            let reused = previous
                .and_then(|p| p.entries.get(&t.name))
                .filter(|e| e.fingerprint == fingerprint);
            let entry = match reused {
                Some(e) => Entry {
                    fingerprint,
                    endpoint: e.endpoint.clone(),
                    catalog: e.catalog.clone(),
                    _refresher: e._refresher.clone(),
                },
                None => {
                    let endpoint = Endpoint::for_target(t)?;
                    // Sessions of earlier generations keep the target's one
                    // cell, so it stays refreshed (and marked by runs) for them.
                    let cell = previous
                        .and_then(|p| p.entries.get(&t.name))
                        .and_then(|e| e.catalog.clone());
                    let (catalog, refresher) = match start_catalog(t, &endpoint, cell).await {
                        Some((cell, guard)) => (Some(cell), Some(Arc::new(guard))),
                        None => (None, None),
                    };
                    Entry {
                        fingerprint,
                        endpoint,
                        catalog,
                        _refresher: refresher,
                    }
                }
            };
            entries.insert(t.name.clone(), entry);
        }
        Ok(TargetSet {
            entries,
            generation: 0,
        })
    }

    /// The upstream endpoint of a target.
    pub fn endpoint(&self, target: &str) -> Option<&Endpoint> {
        self.entries.get(target).map(|e| &e.endpoint)
    }

    /// The catalog of a protected target.
    pub fn catalog(&self, target: &str) -> Option<Arc<CatalogCell>> {
        self.entries.get(target).and_then(|e| e.catalog.clone())
    }

    /// Names of the targets whose parts were built anew rather than reused
    /// from `previous` (for the reload log).
    pub fn rebuilt_since(&self, previous: &TargetSet) -> Vec<String> {
        let mut names: Vec<String> = self
            .entries
            .iter()
            .filter(|(name, e)| {
                previous
                    .entries
                    .get(*name)
                    .is_none_or(|p| p.fingerprint != e.fingerprint)
            })
            .map(|(name, _)| name.clone())
            .collect();
        names.sort();
        names
    }
}

/// The target set in force, shared by the listener, its sessions and the
/// runner of approved changes; swapped whole on reload.
#[derive(Clone, Default)]
pub struct Targets {
    current: Arc<RwLock<Arc<TargetSet>>>,
}

impl Targets {
    /// Starts with `set`, for configuration generation `generation`.
    pub fn new(mut set: TargetSet, generation: u64) -> Self {
        set.generation = generation;
        Targets {
            current: Arc::new(RwLock::new(Arc::new(set))),
        }
    }

    /// The set in force now.
    pub fn current(&self) -> Arc<TargetSet> {
        match self.current.read() {
            Ok(g) => g.clone(),
            // A panic while swapping cannot leave a half-written Arc: use it.
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Makes `set` the set in force, for configuration generation
    /// `generation` (installed right after it).
    pub fn install(&self, mut set: TargetSet, generation: u64) {
        set.generation = generation;
        let set = Arc::new(set);
        match self.current.write() {
            Ok(mut g) => *g = set,
            Err(poisoned) => *poisoned.into_inner() = set,
        }
    }
}

/// The configuration in force with the target set of the same generation.
/// A reload installs the set and then the configuration, with nothing in
/// between to wait for, so a reader that meets the two halves of a reload
/// only has to look again.
pub fn consistent(live: &LiveConfig, targets: &Targets) -> (Arc<Snapshot>, Arc<TargetSet>) {
    let mut spins = 0u32;
    loop {
        let snapshot = live.snapshot();
        let set = targets.current();
        if set.generation == snapshot.generation || spins >= 10_000 {
            return (snapshot, set);
        }
        spins += 1;
        std::thread::yield_now();
    }
}

/// Loads a protected target's catalog (waiting [`CATALOG_WAIT`] at most)
/// into `existing` or a new cell, and keeps it refreshed until the returned
/// guard is dropped. An existing cell (the target's upstream, credentials or
/// trusted functions changed) is distrusted until the new source has been
/// read by the refresher.
async fn start_catalog(
    t: &Target,
    endpoint: &Endpoint,
    existing: Option<Arc<CatalogCell>>,
) -> Option<(Arc<CatalogCell>, DropGuard)> {
    if !t.protected {
        return None;
    }
    let creds = t.session_credentials()?;
    let reused = existing.is_some();
    let cell = existing.unwrap_or_default();
    if reused {
        // Marked like a change airlock runs: reads hold until a clean read.
        cell.change_started();
    }
    let source = catalog::CatalogSource {
        target: t.name.clone(),
        endpoint: endpoint.clone(),
        creds: creds.clone(),
        database: t.upstream.database.clone(),
        trusted: t.trusted(),
    };
    match tokio::time::timeout(CATALOG_WAIT, source.load()).await {
        Ok(Ok(r)) => {
            info!(target = %t.name, functions = r.functions.len(), operators = r.operators.len(), types = r.types.len(), relations = r.relations.len(), trusted = r.trusted_calls.len(), "target catalog loaded");
            for missing in &r.missing_trusted {
                error!(target = %t.name, function = %missing, "trusted_functions names a function the target does not have; nothing is trusted for it");
            }
            cell.set(r);
        }
        Ok(Err(e)) => {
            warn!(target = %t.name, error = %e, "loading the target's catalog failed; its reads are held until it loads")
        }
        Err(_) => {
            warn!(target = %t.name, "loading the target's catalog timed out; its reads are held until it loads")
        }
    }
    if reused {
        // Wakes the refresher below for the clean read that clears the mark.
        cell.change_ended();
    }
    let stop = CancellationToken::new();
    let refresh = cell.clone();
    let stopped = stop.clone();
    tokio::spawn(async move {
        let work = async move {
            if refresh.get().is_none() {
                // Retry soon rather than at the slow interval.
                for _ in 0..30 {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    if let Ok(r) = source.load().await {
                        refresh.set(r);
                        break;
                    }
                }
            }
            catalog::refresh_forever(refresh, source).await;
        };
        tokio::select! {
            _ = stopped.cancelled() => {}
            _ = work => {}
        }
    });
    Some((cell, stop.drop_guard()))
}

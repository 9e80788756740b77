//! What both simulation backends share: the options a simulated cluster is
//! built from, which backend runs it, its ports, and how a node boots.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use tandem::engine::cluster::Setup;
use tandem::engine::host::{derive_seed, Boot};
use tandem::engine::nodes::NodeTable;
use tandem::engine::profile::Profile;
use tandem::scenario::NodeIdx;
use tandem::storage::Storage;
use tandem::system::System;

use crate::determinism;
use crate::quic::QuicModel;

/// The port every node listens on at start.
pub const BASE_PORT: u16 = 7000;
/// Ports the runner picks for rebinds without a port start here.
pub const REBIND_PORT: u16 = 20000;
/// How to build a simulated cluster.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// The nodes, the links and the seed (turmoil's RNG, the nodes' and the
    /// transports' derive from it).
    pub setup: Setup,
    /// turmoil's tick: the simulation's time resolution.
    pub tick: Duration,
    /// The QUIC model of connections.
    pub model: QuicModel,
    /// Each node first boots at an offset drawn from the seed in
    /// `0..=stagger`, in whole ticks (the scenario's `stagger`).
    pub stagger: Duration,
    /// Which simulator runs the cluster.
    pub backend: Backend,
    /// How long a sync of a node's disk takes, in simulated time (the
    /// calibration profile's, [`Profile::sync_latency`]).
    pub sync_latency: Duration,
    /// Whether node code may start OS threads: by default not (the run
    /// fails naming the call, see [`determinism`]); allowed, each thread is
    /// recorded and the run is not reproducible. Default:
    /// `TANDEM_ALLOW_THREADS=1`.
    pub allow_threads: bool,
}

/// The simulators a cluster can run on. Both model the same network (see
/// [`crate::quic`]) and are deterministic; their histories differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// Discrete events: time jumps to the next timer or delivery. The default.
    #[default]
    Events,
    /// turmoil 0.7: every host steps every 1 ms tick.
    Turmoil,
}

/// The calibration profile of this process's runs: the file `TANDEM_PROFILE`
/// names (read once; the CLI's `--profile` sets it), else the one compiled
/// into the build.
///
/// # Panics
///
/// When `TANDEM_PROFILE` names a file that is not a profile.
pub fn default_profile() -> &'static Profile {
    static PROFILE: OnceLock<Profile> = OnceLock::new();
    PROFILE.get_or_init(|| match std::env::var_os("TANDEM_PROFILE") {
        Some(path) => Profile::from_file(Path::new(&path)).unwrap_or_else(|error| panic!("TANDEM_PROFILE: {error}")),
        None => Profile::default(),
    })
}

impl Backend {
    /// Every backend, the default first.
    pub const ALL: [Backend; 2] = [Backend::Events, Backend::Turmoil];

    /// `events` or `turmoil`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Events => "events",
            Backend::Turmoil => "turmoil",
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = String;

    /// `events` or `turmoil`.
    fn from_str(name: &str) -> Result<Backend, String> {
        Backend::ALL.into_iter().find(|b| b.name() == name).ok_or_else(|| format!("no backend {name:?}"))
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl SimOptions {
    /// `nodes` nodes seeded by node 0, 1-5 ms latency, no loss, 1 ms ticks.
    pub fn new(nodes: u32, seed: u64) -> Self {
        SimOptions::of(Setup::new(nodes, seed))
    }

    /// `setup` with 1 ms ticks, the default QUIC model, no stagger, the
    /// events backend and the sync latency of the process's profile.
    pub fn of(setup: Setup) -> Self {
        SimOptions {
            setup,
            tick: Duration::from_millis(1),
            model: QuicModel::default(),
            stagger: Duration::ZERO,
            backend: Backend::Events,
            sync_latency: default_profile().sync_latency(),
            allow_threads: determinism::threads_allowed_by_default(),
        }
    }

    /// The node table of a cluster built with these options: an empty disk
    /// for each node, syncing in [`SimOptions::sync_latency`].
    pub(crate) fn table<S: System>(&self) -> NodeTable<S> {
        NodeTable::new(self.setup.clone(), self.disks(), Some(REBIND_PORT))
    }

    fn disks(&self) -> Vec<Storage> {
        let seeded = |node| derive_seed(self.setup.seed, node, u64::MAX, 3);
        (0..self.setup.nodes)
            .map(|node| Storage::in_memory_with_sync_latency(self.sync_latency).seeded(seeded(node)))
            .collect()
    }

    /// The default latency bounds of every link.
    pub(crate) fn latency(&self) -> (Duration, Duration) {
        (self.setup.network.latency.min, self.setup.network.latency.max)
    }

    /// A boot in the simulation, and how long its host waits before it: its
    /// buggify points fire (in the simulation only), and a first boot waits
    /// for its stagger.
    pub(crate) fn simulated(&self, boot: Boot) -> (Boot, Duration) {
        let delay = if boot.incarnation == 0 { self.boot_offset(boot.index) } else { Duration::ZERO };
        (Boot { buggify: Some(self.setup.seed), ..boot }, delay)
    }

    /// When `node` first boots: an offset in `0..=stagger` drawn from the
    /// seed, in whole ticks.
    pub fn boot_offset(&self, node: NodeIdx) -> Duration {
        let ticks = (self.stagger.as_nanos() / self.tick.as_nanos().max(1)) as u64;
        self.tick * (derive_seed(self.setup.seed, node, 0, 7) % (ticks + 1)) as u32
    }
}

/// The unordered pairs of `links`, each once, in order: how both backends
/// apply partitions (a link and its reverse together).
pub(crate) fn unordered(pairs: &[(NodeIdx, NodeIdx)]) -> Vec<(NodeIdx, NodeIdx)> {
    let set: BTreeSet<(NodeIdx, NodeIdx)> = pairs.iter().map(|&(x, y)| (x.min(y), x.max(y))).collect();
    set.into_iter().collect()
}

//! [`Recorder`]: the one owner of a run's history, which every backend and
//! every node's observer and probe record through.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

use crate::history::{EventKind, History, OpResult, CRASHED_FIRST};
use crate::probe::Probe;
use crate::scenario::{Network, NodeIdx};
use crate::system::{Observer, System};

/// The one owner of a run's history: every event goes through it, stamped
/// with the backend's clock.
pub struct Recorder<S: System> {
    inner: Arc<Inner<S>>,
}

struct Inner<S: System> {
    system: Arc<S>,
    history: Mutex<History<S>>,
    changed: Condvar,
    /// Threads in [`Recorder::wait`]: only they need a wake-up (a notify is a
    /// system call, too dear for every event of a simulation).
    waiting: AtomicUsize,
    /// Wakes tasks in [`Recorder::until`] (the simulation's runner).
    notify: Notify,
    clock: Box<dyn Fn() -> Duration + Send + Sync>,
}

impl<S: System> Clone for Recorder<S> {
    fn clone(&self) -> Self {
        Recorder { inner: self.inner.clone() }
    }
}

impl<S: System> Recorder<S> {
    /// A recorder of a run whose nodes start at `addrs` and whose links
    /// start as `network` sets them; `clock` tells the time since the run
    /// began wherever node code runs.
    pub fn new(
        system: Arc<S>,
        addrs: &[SocketAddr],
        network: &Network,
        clock: impl Fn() -> Duration + Send + Sync + 'static,
    ) -> Self {
        let inner = Inner {
            system,
            history: Mutex::new(History::new(addrs, network)),
            changed: Condvar::new(),
            waiting: AtomicUsize::new(0),
            notify: Notify::new(),
            clock: Box::new(clock),
        };
        Recorder { inner: Arc::new(inner) }
    }

    /// The system.
    pub fn system(&self) -> &Arc<S> {
        &self.inner.system
    }

    /// The time by the recorder's clock.
    pub fn now(&self) -> Duration {
        (self.inner.clock)()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, History<S>> {
        self.inner.history.lock().expect("a property or the system panicked while recording")
    }

    /// Appends an event at `at`.
    pub fn push_at(&self, at: Duration, node: Option<NodeIdx>, event: EventKind<S>) {
        self.lock().push(&self.inner.system, at, node, event);
        self.changed();
    }

    fn changed(&self) {
        if self.inner.waiting.load(Ordering::SeqCst) > 0 {
            self.inner.changed.notify_all();
        }
        self.inner.notify.notify_waiters();
    }

    /// Appends an event of `node`'s incarnation `incarnation`, unless that
    /// incarnation has crashed: what its leftover tasks report is not the
    /// node's any more.
    fn push_from(&self, node: NodeIdx, incarnation: u64, event: EventKind<S>) {
        let mut history = self.lock();
        let life = history.node(node);
        if life.alive && life.incarnation == incarnation {
            let at = self.now();
            history.push(&self.inner.system, at, Some(node), event);
            drop(history);
            self.changed();
        }
    }

    /// Appends an event now, by the recorder's clock.
    pub fn push(&self, node: Option<NodeIdx>, event: EventKind<S>) {
        self.push_at(self.now(), node, event)
    }

    /// Reads the history, whose [`History::now`] is the recorder's clock.
    pub fn read<R>(&self, f: impl FnOnce(&History<S>) -> R) -> R {
        let now = self.now();
        let mut history = self.lock();
        history.set_now(now);
        f(&history)
    }

    /// Records a crash of `node` at `at`; its pending operations complete as
    /// [`OpResult::Unknown`].
    pub fn crashed(&self, at: Duration, node: NodeIdx) {
        let mut history = self.lock();
        let pending: Vec<u64> = history.pending().iter().filter(|(_, &n)| n == node).map(|(&id, _)| id).collect();
        for id in pending {
            history.push(
                &self.inner.system,
                at,
                Some(node),
                EventKind::Complete { id, result: OpResult::Unknown(CRASHED_FIRST.into()) },
            );
        }
        history.push(&self.inner.system, at, Some(node), EventKind::Crashed);
        drop(history);
        self.changed();
    }

    /// Waits until `done` holds, woken by every event: for a backend whose
    /// runner shares the nodes' runtime (the discrete-event simulation).
    pub async fn until(&self, mut done: impl FnMut(&History<S>) -> bool) {
        loop {
            let notified = self.inner.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.read(&mut done) {
                return;
            }
            notified.await;
        }
    }

    /// Waits (real time) until `done` holds or `timeout` passes; whether it held.
    /// For backends whose nodes run on other threads.
    pub fn wait(&self, timeout: Duration, mut done: impl FnMut(&History<S>) -> bool) -> bool {
        // Counted before the lock is taken, so no event pushed meanwhile goes unnoticed.
        self.inner.waiting.fetch_add(1, Ordering::SeqCst);
        let history = self.lock();
        let (history, _) = self
            .inner
            .changed
            .wait_timeout_while(history, timeout, |h| !done(h))
            .expect("a property or the system panicked while recording");
        let held = done(&history);
        drop(history);
        self.inner.waiting.fetch_sub(1, Ordering::SeqCst);
        held
    }

    /// An observer that records the observations of `node`'s incarnation
    /// `incarnation` while it runs.
    pub fn observer(&self, node: NodeIdx, incarnation: u64) -> Observer<S::Observation> {
        let recorder = self.clone();
        Observer::new(move |observation| recorder.push_from(node, incarnation, EventKind::Observe(observation)))
    }

    /// A probe that records the in-node assertions of `node`'s incarnation
    /// `incarnation` while it runs.
    pub fn probe(&self, node: NodeIdx, incarnation: u64) -> Probe {
        let recorder = self.clone();
        Probe::new(move |assertion| recorder.push_from(node, incarnation, EventKind::Assert(assertion)))
    }
}

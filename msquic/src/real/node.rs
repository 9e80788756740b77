//! [`NodeUnit`]: a real node incarnation's unit of execution, an OS thread
//! of its own (`tandem-node-<index>`) running a current-thread tokio runtime
//! of its own. Every task the node spawns belongs to that runtime, so:
//!
//! - a crash ends the thread's `block_on` and drops the runtime, and with it
//!   every task the node spawned;
//! - a pause blocks the thread: none of the node's tasks is polled, while
//!   MsQuic, on its own threads, keeps receiving into the node's channels;
//! - the node's clock is the thread clock of that thread
//!   ([`tandem::engine::clock::set_thread_clock`]), which the clock interposer of
//!   `tandem-sim` reads where it is linked in.

use std::future::Future;
use std::sync::mpsc::{self as std_mpsc, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tandem::engine::clock::{self, ThreadClock};
use tandem::scenario::NodeIdx;
use tokio::sync::mpsc;

/// A node's clock, shared by the cluster (which changes it) and the threads
/// that run the node: it lasts across the node's incarnations.
pub(super) type SharedClock = Arc<Mutex<ThreadClock>>;

/// What the cluster asks of a node's thread itself.
enum Control {
    /// Poll nothing until then (real time).
    Pause(Instant),
    /// The node's clock changed.
    Clock(ThreadClock),
}

/// A node incarnation's thread and runtime. Dropping it kills the node
/// without waiting for its thread to end.
pub(super) struct NodeUnit {
    controls: mpsc::UnboundedSender<Control>,
    /// Never sent on: dropping it ends a pause at once.
    kill: std_mpsc::Sender<()>,
    /// Disconnected once the thread has dropped the runtime.
    ended: std_mpsc::Receiver<()>,
    thread: JoinHandle<()>,
    /// When the last pause asked for ends.
    paused_until: Option<Instant>,
}

impl NodeUnit {
    /// Starts node `index`'s thread, with `clock` as its thread clock, and
    /// runs `host` on its runtime, every task in `span`, until it ends (the
    /// node stopped, or did not start) or the cluster kills the node.
    /// Returns once the runtime runs.
    pub(super) fn start<F>(
        index: NodeIdx,
        clock: SharedClock,
        span: tracing::Span,
        host: impl FnOnce() -> F + Send + 'static,
    ) -> Result<NodeUnit, String>
    where
        F: Future<Output = ()>,
    {
        let (controls, control_rx) = mpsc::unbounded_channel();
        let (kill, killed) = std_mpsc::channel();
        let (ended_tx, ended) = std_mpsc::channel::<()>();
        let (started_tx, started) = std_mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name(format!("tandem-node-{index}"))
            .spawn(move || {
                let _ended = ended_tx;
                clock::set_thread_clock(Some(read(&clock)));
                // Blocking threads (`spawn_blocking`) keep the clock they start with.
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .on_thread_start(move || clock::set_thread_clock(Some(read(&clock))))
                    .build();
                let runtime = match runtime {
                    Ok(runtime) => runtime,
                    Err(error) => return drop(started_tx.send(Err(format!("no tokio runtime: {error}")))),
                };
                let _ = started_tx.send(Ok(()));
                let entered = span.entered();
                runtime.block_on(run(host(), control_rx, killed));
                // Drops every task of the node, and waits for no blocking thread.
                runtime.shutdown_background();
                drop(entered);
            })
            .map_err(|e| format!("cannot start the node's thread: {e}"))?;
        match started.recv() {
            Ok(Ok(())) => Ok(NodeUnit { controls, kill, ended, thread, paused_until: None }),
            Ok(Err(why)) => Err(why),
            Err(_) => Err("the node's thread panicked before its runtime ran".into()),
        }
    }

    /// Pauses the node for `length` from now (or until its current pause
    /// ends, if later), without waiting for the pause to begin or end.
    pub(super) fn pause(&mut self, length: Duration) {
        let until = Instant::now() + length;
        if self.paused_until.is_some_and(|paused| paused >= until) {
            return;
        }
        self.paused_until = Some(until);
        // A thread that has ended is paused for good already.
        let _ = self.controls.send(Control::Pause(until));
    }

    /// Whether the node is paused now.
    pub(super) fn paused(&self) -> bool {
        self.paused_until.is_some_and(|until| Instant::now() < until)
    }

    /// Sets the node's thread clock, once the thread polls again.
    pub(super) fn set_clock(&self, clock: ThreadClock) {
        let _ = self.controls.send(Control::Clock(clock));
    }

    /// Kills the node (a paused one at once, without polling anything of it
    /// again) and waits up to `patience` for its thread to drop its runtime;
    /// why not, if it did not (the thread is then left to end by itself).
    pub(super) fn end(self, patience: Duration) -> Result<(), String> {
        let NodeUnit { controls, kill, ended, thread, .. } = self;
        drop((controls, kill));
        match ended.recv_timeout(patience) {
            Err(RecvTimeoutError::Disconnected) => thread.join().map_err(|_| "the node's thread panicked".to_string()),
            Ok(()) | Err(RecvTimeoutError::Timeout) => Err(format!("its thread still ran after {patience:?}")),
        }
    }
}

/// Hosts the node until `host` ends or the cluster kills it, carrying out
/// the cluster's controls first.
async fn run(
    host: impl Future<Output = ()>,
    mut controls: mpsc::UnboundedReceiver<Control>,
    kill: std_mpsc::Receiver<()>,
) {
    let mut host = std::pin::pin!(host);
    loop {
        tokio::select! {
            biased;
            control = controls.recv() => match control {
                Some(Control::Pause(until)) => {
                    // Blocks the thread: nothing of the node is polled until
                    // then, or until a kill, after which nothing is again.
                    let waited = in_true_time(|| kill.recv_timeout(until.saturating_duration_since(Instant::now())));
                    if waited != Err(RecvTimeoutError::Timeout) {
                        return;
                    }
                }
                Some(Control::Clock(clock)) => clock::set_thread_clock(Some(clock)),
                None => return,
            },
            () = &mut host => return,
        }
    }
}

/// Runs `f` with this thread's clock cleared, so that what it reads is the
/// machine's clock (true time), whatever node runs on the thread.
pub(super) fn in_true_time<R>(f: impl FnOnce() -> R) -> R {
    let clock = clock::thread_clock();
    clock::set_thread_clock(None);
    let result = f();
    clock::set_thread_clock(clock);
    result
}

fn read(clock: &SharedClock) -> ThreadClock {
    *clock.lock().expect("a node's clock")
}

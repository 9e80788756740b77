//! The discrete-event network: links, listeners and live connections, on
//! tokio's paused clock. Nothing here ticks: a frame is one timer (its
//! delivery), a cut link is one timer (its idle timeout), and time jumps
//! from one to the next.
//!
//! It models QUIC as [`crate::quic`] describes (and MsQuic does):
//!
//! - **Latency**: each frame draws its link's latency; a connection's
//!   frames arrive in order (a later frame never overtakes an earlier one).
//! - **Retransmission**: each transmission of a frame is lost at the link's
//!   loss rate of its moment, and a cut link loses every one; a lost one is
//!   retried after a doubling probe timeout, so a frame held by a cut or by
//!   loss arrives at the first retransmission after the heal.
//! - **Dead peers**: a connection closes at both ends when its oldest
//!   unacknowledged packet is the idle timeout old: a frame sent into a cut
//!   (or whose acknowledgement is cut) from when it was sent, an idle
//!   connection's next keep-alive from when it goes out.
//! - **Dials** lose their handshake's flights the same way and send them
//!   again at each keep-alive tick, until the handshake timeout.
//! - **Crash**: the node's listeners go, its transport stops working, and
//!   its connections close as when the node drops them. What it sent that
//!   is on the wire still arrives; what still needed a transmission from it
//!   (a retry after a loss, or a frame held by a cut) is lost, as nobody is
//!   left to retransmit it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tandem::transport::TransportError;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

pub(super) use crate::quic::SEND_QUEUE;
use crate::quic::{QuicModel, Transmission, Transmissions};

/// A frame on its way: when it was sent, the latency it drew, its bytes.
#[derive(Debug)]
pub(super) struct Frame {
    pub(super) sent: Instant,
    pub(super) latency: Duration,
    pub(super) bytes: Bytes,
}

/// What a listener receives: the accepting side of a new connection.
pub(super) type Incoming = super::transport::EventConnection;

/// The runtime of a simulation's network and runner, apart from the nodes'
/// own (each node a unit, with its own clocks): the network keeps true time.
#[derive(Debug, Clone)]
pub struct World {
    /// The world runtime.
    pub handle: tokio::runtime::Handle,
    /// What its clock read when the run began.
    pub origin: Instant,
}

/// One simulated network, shared by every node's transport and the runner.
///
/// Waiters wait on [`Notify`]s, never on tokio's `watch`, which wakes
/// several waiters in an order drawn from a process-global counter.
#[derive(Debug)]
pub struct Network {
    state: Mutex<State>,
    /// Where its own tasks run and what time it keeps; `None`: the current
    /// runtime, on its clock.
    world: Option<World>,
    /// Notified on every change of a link's cut state: held frames and
    /// waiting dials look again.
    links: Notify,
}

#[derive(Debug)]
struct State {
    model: QuicModel,
    rng: ChaCha8Rng,
    latency: (Duration, Duration),
    latencies: BTreeMap<(IpAddr, IpAddr), (Duration, Duration)>,
    loss: f64,
    losses: BTreeMap<(IpAddr, IpAddr), f64>,
    /// Directed links that carry nothing.
    cut: BTreeSet<(IpAddr, IpAddr)>,
    listeners: BTreeMap<SocketAddr, mpsc::UnboundedSender<Incoming>>,
    connections: BTreeMap<u64, Endpoints>,
    next_connection: u64,
}

/// A live connection as the network tracks it.
#[derive(Debug)]
struct Endpoints {
    ips: [IpAddr; 2],
    connection: Weak<Connection>,
}

/// The state both ends of a connection share.
#[derive(Debug)]
pub(super) struct Connection {
    id: u64,
    /// Set once, when the connection ends, to why.
    ended: Mutex<Option<TransportError>>,
    /// Notified when it ends.
    ending: Notify,
    /// Each end's outgoing frames (end 0 dialled); taken when that end
    /// closes, so that its direction drains and ends.
    outgoing: [Mutex<Option<mpsc::Sender<Frame>>>; 2],
    /// When each end's node crashed, if it did.
    crashed: [Mutex<Option<Instant>>; 2],
    /// When its oldest packet still unacknowledged across a cut was sent.
    unacked: Mutex<Option<Instant>>,
    /// Notified when `unacked` moves earlier.
    unacking: Notify,
}

impl Connection {
    /// Ends the connection with `why`, unless it has ended already.
    pub(super) fn end(&self, why: TransportError) {
        let mut ended = self.ended.lock().expect("single-threaded");
        if ended.is_none() {
            *ended = Some(why);
            self.ending.notify_waiters();
        }
    }

    /// Why it ended, if it has.
    pub(super) fn ended(&self) -> Option<TransportError> {
        self.ended.lock().expect("single-threaded").as_ref().map(copy_error)
    }

    /// Waits until it ends.
    async fn until_ended(&self) {
        until(&self.ending, || self.ended.lock().expect("single-threaded").is_some()).await
    }

    /// End `side`'s sender of frames, if it still sends.
    pub(super) fn sender(&self, side: usize) -> Option<mpsc::Sender<Frame>> {
        self.outgoing[side].lock().expect("single-threaded").clone()
    }

    /// Closes end `side`'s direction: what it sent still arrives, then the
    /// connection ends.
    pub(super) fn close(&self, side: usize) {
        self.outgoing[side].lock().expect("single-threaded").take();
    }

    /// When end `side`'s node crashed, if it did.
    fn crashed(&self, side: usize) -> Option<Instant> {
        *self.crashed[side].lock().expect("single-threaded")
    }

    /// A packet sent at `sent` goes unacknowledged (it or its
    /// acknowledgement crosses a cut).
    fn unacknowledged(&self, sent: Instant) {
        let mut unacked = self.unacked.lock().expect("single-threaded");
        if unacked.is_none_or(|oldest| sent < oldest) {
            *unacked = Some(sent);
            self.unacking.notify_waiters();
        }
    }
}

/// The error kinds a connection ends with, copied (`TransportError` is not `Clone`).
fn copy_error(error: &TransportError) -> TransportError {
    match error {
        TransportError::TimedOut(why) => TransportError::TimedOut(why.clone()),
        TransportError::Refused(why) => TransportError::Refused(why.clone()),
        TransportError::Protocol(why) => TransportError::Protocol(why.clone()),
        _ => TransportError::Closed,
    }
}

impl Network {
    /// A network whose links have `latency` and lose `loss` of their
    /// packets, drawing from `seed`.
    /// In `world` (see [`World`]), or on the current runtime for `None`.
    pub fn new(
        model: QuicModel,
        latency: (Duration, Duration),
        loss: f64,
        seed: u64,
        world: Option<World>,
    ) -> Arc<Self> {
        let state = State {
            model,
            rng: ChaCha8Rng::seed_from_u64(seed),
            latency,
            latencies: BTreeMap::new(),
            loss,
            losses: BTreeMap::new(),
            cut: BTreeSet::new(),
            listeners: BTreeMap::new(),
            connections: BTreeMap::new(),
            next_connection: 0,
        };
        Arc::new(Network { state: Mutex::new(state), world, links: Notify::new() })
    }

    /// True time, whichever node's code asks.
    pub(super) fn now(&self) -> Instant {
        match &self.world {
            Some(world) => world.origin + crate::determinism::elapsed(),
            None => Instant::now(),
        }
    }

    /// Runs `task` as the network's own, on true time.
    pub(super) fn spawn<F: std::future::Future<Output: Send> + Send + 'static>(
        &self,
        task: F,
    ) -> tokio::task::JoinHandle<F::Output> {
        match &self.world {
            Some(world) => world.handle.spawn(task),
            None => tokio::spawn(task),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("the simulation is single-threaded")
    }

    /// The QUIC model.
    pub fn model(&self) -> QuicModel {
        self.lock().model
    }

    /// Sets the latency range from `src` to `dst`.
    pub fn set_latency(&self, src: IpAddr, dst: IpAddr, range: (Duration, Duration)) {
        self.lock().latencies.insert((src, dst), range);
    }

    /// Sets the loss rate from `src` to `dst`.
    pub fn set_loss(&self, src: IpAddr, dst: IpAddr, rate: f64) {
        assert!((0.0..=1.0).contains(&rate), "loss rate {rate} outside 0..=1");
        self.lock().losses.insert((src, dst), rate);
    }

    /// Cuts (`true`) or restores what `src` sends to `dst`.
    pub fn set_cut(&self, src: IpAddr, dst: IpAddr, cut: bool) {
        let changed = match cut {
            true => self.lock().cut.insert((src, dst)),
            false => self.lock().cut.remove(&(src, dst)),
        };
        if changed {
            self.links.notify_waiters();
        }
    }

    /// Whether what `src` sends to `dst` is cut.
    pub fn is_cut(&self, src: IpAddr, dst: IpAddr) -> bool {
        self.lock().cut.contains(&(src, dst))
    }

    /// Whether either direction between `a` and `b` is cut.
    fn cut_between(&self, [a, b]: [IpAddr; 2]) -> bool {
        self.is_cut(a, b) || self.is_cut(b, a)
    }

    /// Waits until `src` can reach `dst`.
    async fn open(&self, src: IpAddr, dst: IpAddr) {
        until(&self.links, || !self.is_cut(src, dst)).await
    }

    /// A latency drawn for a frame from `src` to `dst`.
    pub(super) fn latency(&self, src: IpAddr, dst: IpAddr) -> Duration {
        self.lock().latency_of(src, dst)
    }

    /// Makes `packet`'s next transmission from `src` to `dst`, at the link's
    /// loss of this moment (a cut link loses it).
    pub(super) fn transmit(&self, src: IpAddr, dst: IpAddr, packet: &mut Transmissions) -> Transmission {
        let mut state = self.lock();
        let rate = state.loss_now(src, dst);
        packet.attempt(rate, &mut state.rng)
    }

    /// Whether one packet from `src` to `dst` gets through now.
    fn through(&self, src: IpAddr, dst: IpAddr) -> bool {
        let mut state = self.lock();
        let rate = state.loss_now(src, dst);
        !crate::quic::lost(rate, &mut state.rng)
    }

    /// Dials from `src` to `dst`: a handshake whose flights are lost across
    /// cuts and under loss, then a round trip.
    pub(super) async fn dial(&self, src: IpAddr, dst: IpAddr) -> Result<(), TransportError> {
        crate::quic::handshake(self.model(), |outbound| {
            let (from, to) = if outbound { (src, dst) } else { (dst, src) };
            self.through(from, to)
        })
        .await?;
        let round_trip = self.latency(src, dst) + self.latency(dst, src);
        tokio::time::sleep(round_trip).await;
        Ok(())
    }

    /// Registers a listener at `addr`.
    pub(super) fn listen(&self, addr: SocketAddr) -> Result<mpsc::UnboundedReceiver<Incoming>, TransportError> {
        if self.in_use(addr) {
            return Err(TransportError::Listen(format!("{addr}: address in use")));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().listeners.insert(addr, tx);
        Ok(rx)
    }

    /// Whether some listener uses `addr`.
    pub(super) fn in_use(&self, addr: SocketAddr) -> bool {
        self.listener(addr).is_some()
    }

    /// The listener at `addr`, if one listens.
    pub(super) fn listener(&self, addr: SocketAddr) -> Option<mpsc::UnboundedSender<Incoming>> {
        self.lock().listeners.get(&addr).filter(|l| !l.is_closed()).cloned()
    }

    /// A new connection from `ips[0]` to `ips[1]`, with each direction's
    /// receiving end (index: the sending side).
    pub(super) fn connect(&self, ips: [IpAddr; 2]) -> (Arc<Connection>, [mpsc::Receiver<Frame>; 2]) {
        let (tx0, rx0) = mpsc::channel(SEND_QUEUE);
        let (tx1, rx1) = mpsc::channel(SEND_QUEUE);
        let mut state = self.lock();
        let id = state.next_connection;
        state.next_connection += 1;
        let connection = Arc::new(Connection {
            id,
            ended: Mutex::new(None),
            ending: Notify::new(),
            outgoing: [Mutex::new(Some(tx0)), Mutex::new(Some(tx1))],
            crashed: [Mutex::new(None), Mutex::new(None)],
            unacked: Mutex::new(None),
            unacking: Notify::new(),
        });
        state.connections.insert(id, Endpoints { ips, connection: Arc::downgrade(&connection) });
        (connection, [rx0, rx1])
    }

    /// Forgets a connection that has ended.
    pub(super) fn forget(&self, connection: &Connection) {
        self.lock().connections.remove(&connection.id);
    }

    /// The live connections with an end at `ip` (and, if given, the other at `peer`).
    fn connections_at(&self, ip: IpAddr, peer: Option<IpAddr>) -> Vec<(usize, Arc<Connection>)> {
        let state = self.lock();
        let mut found = Vec::new();
        for endpoints in state.connections.values() {
            let Some(connection) = endpoints.connection.upgrade() else { continue };
            for (side, &end) in endpoints.ips.iter().enumerate() {
                if end == ip && peer.is_none_or(|p| endpoints.ips[1 - side] == p) {
                    found.push((side, connection.clone()));
                    break;
                }
            }
        }
        found
    }

    /// The node at `ip` crashed: its listeners go and every connection
    /// closes from its side (what it sent still arrives).
    pub fn crash(&self, ip: IpAddr) {
        self.lock().listeners.retain(|addr, _| addr.ip() != ip);
        for (side, connection) in self.connections_at(ip, None) {
            *connection.crashed[side].lock().expect("single-threaded") = Some(self.now());
            connection.close(side);
        }
        // Frames held for the crashed node's links look again: they are lost.
        self.links.notify_waiters();
    }
}

impl State {
    fn latency_of(&mut self, src: IpAddr, dst: IpAddr) -> Duration {
        let (min, max) = self.latencies.get(&(src, dst)).copied().unwrap_or(self.latency);
        if min >= max {
            return min;
        }
        let nanos = self.rng.random_range(min.as_nanos() as u64..=max.as_nanos() as u64);
        Duration::from_nanos(nanos)
    }

    /// The loss rate from `src` to `dst` now: all of it across a cut.
    fn loss_now(&self, src: IpAddr, dst: IpAddr) -> f64 {
        match self.cut.contains(&(src, dst)) {
            true => 1.0,
            false => self.losses.get(&(src, dst)).copied().unwrap_or(self.loss),
        }
    }
}

/// Carries one direction of a connection, end `side`'s: each frame at its
/// arrival time, held while the link is cut, in order. Ends the connection
/// when the sender closes (after the last frame) or when losses break it.
pub(super) async fn deliver(
    network: Arc<Network>,
    connection: Arc<Connection>,
    side: usize,
    link: [IpAddr; 2],
    mut frames: mpsc::Receiver<Frame>,
    received: mpsc::Sender<Result<Bytes, TransportError>>,
) {
    let why = tokio::select! {
        biased;
        () = connection.until_ended() => None,
        why = carry(&network, &connection, side, link, &mut frames, &received) => Some(why),
    };
    if let Some(why) = why {
        connection.end(why);
    }
    network.forget(&connection);
    let why = connection.ended().unwrap_or(TransportError::Closed);
    let _ = received.send(Err(why)).await;
}

/// Delivers `frames` until the direction ends, and says why it ended.
async fn carry(
    network: &Network,
    connection: &Connection,
    side: usize,
    [src, dst]: [IpAddr; 2],
    frames: &mut mpsc::Receiver<Frame>,
    received: &mpsc::Sender<Result<Bytes, TransportError>>,
) -> TransportError {
    let idle = network.model().idle_timeout;
    // Whether a transmission at `at` is one the sender is alive to make.
    let sendable = |at: Instant| connection.crashed(side).is_none_or(|crash| at <= crash);
    while let Some(Frame { sent, latency, bytes }) = frames.recv().await {
        let mut packet = network.model().transmissions(latency * 2);
        let mut at = sent;
        loop {
            if at > Instant::now() {
                tokio::time::sleep_until(at).await;
            }
            if !sendable(at) {
                return lost_with_its_sender(network, [src, dst]).await;
            }
            let mut transmission = network.transmit(src, dst, &mut packet);
            if transmission == Transmission::Delivered {
                tokio::time::sleep_until(at + latency).await;
                if !network.is_cut(src, dst) {
                    break;
                }
                // A cut while it was on the wire loses it too.
                transmission = network.transmit(src, dst, &mut packet);
            }
            let Transmission::RetryAfter(wait) = transmission else { unreachable!("a cut link loses every packet") };
            if network.cut_between([src, dst]) {
                connection.unacknowledged(sent);
            }
            if at + wait >= sent + idle {
                tokio::time::sleep_until(sent + idle).await;
                return TransportError::TimedOut("idle timeout: a frame went unacknowledged".into());
            }
            at += wait;
        }
        if network.is_cut(dst, src) {
            connection.unacknowledged(sent);
        }
        // The receiver may have gone; the frame is then dropped.
        let _ = received.send(Ok(bytes)).await;
    }
    // The sender closed and everything it sent has arrived.
    TransportError::Closed
}

/// Closes a connection between `ends` whose oldest unacknowledged packet
/// is the idle timeout old. While the link is cut either way nothing is
/// acknowledged: a frame sent into the cut counts from when it was sent,
/// and an idle connection's next keep-alive from when it goes out. A heal
/// acknowledges everything.
pub(super) async fn watch_for_dead_peers(network: Arc<Network>, connection: Arc<Connection>, ends: [IpAddr; 2]) {
    let QuicModel { keep_alive, idle_timeout, .. } = network.model();
    let watch = async {
        loop {
            until(&network.links, || network.cut_between(ends)).await;
            let ping = Instant::now() + keep_alive;
            loop {
                let unacked = connection.unacked.lock().expect("single-threaded").map_or(ping, |sent| sent.min(ping));
                let unacking = connection.unacking.notified();
                tokio::select! {
                    biased;
                    () = until(&network.links, || !network.cut_between(ends)) => break,
                    () = unacking => {}
                    () = tokio::time::sleep_until(unacked + idle_timeout) => {
                        connection.end(TransportError::TimedOut("idle timeout: the link was cut".into()));
                        return;
                    }
                }
            }
            connection.unacked.lock().expect("single-threaded").take();
        }
    };
    tokio::select! {
        biased;
        () = connection.until_ended() => {}
        () = watch => {}
    }
}

/// A crashed sender's frames are lost, and its close crosses no cut: the
/// direction ends when the link carries again (or the cut's idle timer
/// breaks the connection first).
async fn lost_with_its_sender(network: &Network, [src, dst]: [IpAddr; 2]) -> TransportError {
    network.open(src, dst).await;
    TransportError::Closed
}

/// Waits until `holds`, looking again whenever `changes` is notified.
async fn until(changes: &Notify, holds: impl Fn() -> bool) {
    loop {
        let changed = changes.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if holds() {
            return;
        }
        changed.await;
    }
}

/// The node hosts' addresses, as turmoil gives them: 192.168.0.1 onward.
pub fn host_ip(node: u32) -> IpAddr {
    let n = node + 1;
    IpAddr::V4(std::net::Ipv4Addr::new(192, 168, (n >> 8) as u8, (n & 0xff) as u8))
}

//! The discrete-event network: links, listeners and live connections, on
//! tokio's paused clock. Nothing here ticks: a frame is one timer (its
//! delivery), a cut link is one timer (its idle timeout), and time jumps
//! from one to the next.
//!
//! It models what [`crate::net`] describes for the turmoil backend:
//!
//! - **Latency**: each frame draws its link's latency; a connection's
//!   frames arrive in order (a later frame never overtakes an earlier one).
//! - **Loss** costs time, not data: each frame waits for its modelled
//!   retransmissions ([`QuicModel::retransmission_delay`]), and losses that
//!   outlast the idle timeout break the connection. Dials pay for their
//!   handshake's three flights ([`QuicModel::handshake_delay`]).
//! - **Cuts** (a partition is a cut both ways): frames across a cut link
//!   are held and arrive on heal; a dial waits while either direction is
//!   cut. A connection whose link stays cut, either way, for the idle
//!   timeout is broken at both ends, as a QUIC connection that hears
//!   nothing for that long.
//! - **Crash**: the node's listeners go, its transport stops working, and
//!   its connections close as when the node drops them (what it sent is
//!   still delivered first).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tandem::transport::TransportError;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use crate::net::QuicModel;
pub(super) use crate::transport::SEND_QUEUE;

/// A frame on its way, and when it arrives.
pub(super) type Frame = (Instant, Bytes);

/// What a listener receives: the accepting side of a new connection.
pub(super) type Incoming = super::transport::EventConnection;

/// One simulated network, shared by every node's transport and the runner.
///
/// Waiters wait on [`Notify`]s, never on tokio's `watch`, which wakes
/// several waiters in an order drawn from a process-global counter.
#[derive(Debug)]
pub struct Network {
    state: Mutex<State>,
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
    /// Directed links that carry nothing, and since which cut (to tell a
    /// cut's idle timer from a later cut's).
    cut: BTreeMap<(IpAddr, IpAddr), u64>,
    cuts: u64,
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
    pub fn new(model: QuicModel, latency: (Duration, Duration), loss: f64, seed: u64) -> Arc<Self> {
        let state = State {
            model,
            rng: ChaCha8Rng::seed_from_u64(seed),
            latency,
            latencies: BTreeMap::new(),
            loss,
            losses: BTreeMap::new(),
            cut: BTreeMap::new(),
            cuts: 0,
            listeners: BTreeMap::new(),
            connections: BTreeMap::new(),
            next_connection: 0,
        };
        Arc::new(Network { state: Mutex::new(state), links: Notify::new() })
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

    /// Cuts (`true`) or restores what `src` sends to `dst`. A new cut arms
    /// its idle timer: connections between the two still cut when it
    /// strikes are broken.
    pub fn set_cut(self: &Arc<Self>, src: IpAddr, dst: IpAddr, cut: bool) {
        let mut state = self.lock();
        let armed = if cut {
            if state.cut.contains_key(&(src, dst)) {
                return;
            }
            state.cuts += 1;
            let epoch = state.cuts;
            state.cut.insert((src, dst), epoch);
            Some((epoch, state.model.idle_timeout))
        } else if state.cut.remove(&(src, dst)).is_some() {
            None
        } else {
            return;
        };
        drop(state);
        self.links.notify_waiters();
        if let Some((epoch, idle)) = armed {
            let network = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(idle).await;
                if network.lock().cut.get(&(src, dst)) == Some(&epoch) {
                    network.break_between(src, dst, "idle timeout: the link was cut");
                }
            });
        }
    }

    /// Whether what `src` sends to `dst` is cut.
    pub fn is_cut(&self, src: IpAddr, dst: IpAddr) -> bool {
        self.lock().cut.contains_key(&(src, dst))
    }

    /// Waits until `src` can reach `dst` (and, with `both`, the reverse too).
    pub(super) async fn open(&self, src: IpAddr, dst: IpAddr, both: bool) {
        until(&self.links, || !(self.is_cut(src, dst) || (both && self.is_cut(dst, src)))).await
    }

    /// When a frame sent now from `src` to `dst` arrives, at the earliest:
    /// its latency and retransmissions; `None` when its losses break the
    /// connection.
    pub(super) fn arrival(&self, src: IpAddr, dst: IpAddr) -> Option<Instant> {
        let mut state = self.lock();
        let (latency, rate) = (state.latency_of(src, dst), state.loss_of(src, dst));
        let model = state.model;
        let delay = model.retransmission_delay(rate, &mut state.rng)?;
        Some(Instant::now() + latency + delay)
    }

    /// How long a dial from `src` to `dst` takes: a round trip plus its
    /// handshake's retransmissions; `None` when they outlast the idle timeout.
    pub(super) fn dial_time(&self, src: IpAddr, dst: IpAddr) -> Option<Duration> {
        let mut state = self.lock();
        let (out, back) = (state.loss_of(src, dst), state.loss_of(dst, src));
        let model = state.model;
        let handshake = model.handshake_delay(out, back, &mut state.rng)?;
        Some(state.latency_of(src, dst) + state.latency_of(dst, src) + handshake)
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

    /// Breaks every connection between `a` and `b`.
    fn break_between(&self, a: IpAddr, b: IpAddr, why: &str) {
        for (_, connection) in self.connections_at(a, Some(b)) {
            connection.end(TransportError::TimedOut(why.into()));
        }
    }

    /// The node at `ip` crashed: its listeners go and every connection
    /// closes from its side (what it sent still arrives).
    pub fn crash(&self, ip: IpAddr) {
        self.lock().listeners.retain(|addr, _| addr.ip() != ip);
        for (side, connection) in self.connections_at(ip, None) {
            connection.close(side);
        }
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

    fn loss_of(&self, src: IpAddr, dst: IpAddr) -> f64 {
        self.losses.get(&(src, dst)).copied().unwrap_or(self.loss)
    }
}

/// Carries one direction of a connection: each frame at its arrival time,
/// held while the link is cut, in order. Ends the connection when the
/// sender closes (after the last frame) or when losses break it.
pub(super) async fn deliver(
    network: Arc<Network>,
    connection: Arc<Connection>,
    [src, dst]: [IpAddr; 2],
    mut frames: mpsc::Receiver<Frame>,
    received: mpsc::Sender<Result<Bytes, TransportError>>,
) {
    let why = loop {
        let frame = tokio::select! {
            biased;
            () = connection.until_ended() => break None,
            frame = frames.recv() => frame,
        };
        let Some((at, frame)) = frame else {
            // The sender closed and everything it sent has arrived.
            break Some(TransportError::Closed);
        };
        let arrived = async {
            tokio::time::sleep_until(at).await;
            network.open(src, dst, false).await;
            // The receiver may have gone; the frame is then dropped.
            let _ = received.send(Ok(frame)).await;
        };
        tokio::select! {
            biased;
            () = connection.until_ended() => break None,
            () = arrived => {}
        }
    };
    if let Some(why) = why {
        connection.end(why);
    }
    network.forget(&connection);
    let why = connection.ended().unwrap_or(TransportError::Closed);
    let _ = received.send(Err(why)).await;
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

/// How a frame's losses break a connection: after the idle timeout, as
/// QUIC gives up on a peer it cannot reach.
pub(super) fn break_by_loss(connection: Arc<Connection>, idle: Duration) {
    tokio::spawn(async move {
        tokio::time::sleep(idle).await;
        connection.end(TransportError::TimedOut("idle timeout: every retransmission was lost".into()));
    });
}

/// The node hosts' addresses, as turmoil gives them: 192.168.0.1 onward.
pub fn host_ip(node: u32) -> IpAddr {
    let n = node + 1;
    IpAddr::V4(std::net::Ipv4Addr::new(192, 168, (n >> 8) as u8, (n & 0xff) as u8))
}

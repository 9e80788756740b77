//! What MsQuic does under the faults the simulation models, measured on
//! loopback through the real backend's own fault relays: what becomes of a
//! crashed sender's held frames, how soon a frame goes through once a cut or
//! loss ends, how long dials take under loss, and when a cut connection is
//! declared dead. The simulation's QUIC model follows these pins; every test
//! prints what it measured (`cargo test --release -p tandem-msquic --test
//! quic_model_pins -- --nocapture`).
//!
//! What the numbers show, with the transport's defaults (idle timeout and
//! `DisconnectTimeout` 2 s, keep-alive 500 ms, handshake timeout 3 s):
//! - A frame not yet acknowledged is sent again at the sender's probe times,
//!   about 30 ms x (2^n - 1) after the send (30, 90, 210, 450, 930 ms: the
//!   probe timeout is the smoothed RTT + 4 RTT variances + the peer's 25 ms
//!   maximum ACK delay, doubling), and at its keep-alive ticks (every
//!   500 ms). A cut that ends lets the frame through at the next of these.
//! - The connection closes, silently, once its oldest unacknowledged packet
//!   is `DisconnectTimeout` old (MsQuic caps its loss timer at that moment,
//!   `src/core/loss_detection.c`). An idle connection's keep-alive, 500 ms
//!   after the last packet it received, is such a packet.
//! - A handshake whose flight is lost is sent again at each keep-alive tick
//!   (500 ms, not doubling), before MsQuic's 1 s initial probe timeout.
//!
//! Real network and wall-clock time only. The tests of this file run one at
//! a time (timing is what they measure) and assert with margins that a
//! loaded two-core machine keeps.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tandem::scenario::{LatencyRange, LinkChange, Network, NodeIdx, Scope};
use tandem::transport::{Connection, Listener, MessageReceiver, MessageSender, Transport};
use tandem_msquic::real::faults::FaultTable;
use tandem_msquic::real::transport::{RelayNet, RelayedListener, RelayedTransport};
use tandem_msquic::{Limits, MsQuicConfig, MsQuicListener, MsQuicReceiver, MsQuicSender, MsQuicTransport};
use tokio::sync::Mutex;
use tokio::task::JoinSet;

/// The dialling node's index in the fault table.
const A: NodeIdx = 0;
/// The listening node's index in the fault table.
const B: NodeIdx = 1;

/// The longest a single step may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(15);

/// The transport's idle timeout, which is also its `DisconnectTimeout`.
const IDLE_TIMEOUT: Duration = Duration::from_secs(2);

/// Held by each test for its whole run: timing is what they measure.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future).await.unwrap_or_else(|_| panic!("timed out: {what}"))
}

fn millis(duration: Duration) -> u128 {
    duration.as_millis()
}

/// A relay network between nodes A and B: its fault table is what the tests
/// change, exactly as the real cluster's link actions do.
struct Net {
    relays: Arc<RelayNet>,
}

impl Net {
    /// No latency, no loss, nothing cut; the relays on the test's runtime.
    fn new() -> Self {
        let network = Network { latency: LatencyRange::fixed(Duration::ZERO), loss: 0.0 };
        Net { relays: RelayNet::new(FaultTable::new(&network), &[], tokio::runtime::Handle::current()) }
    }

    /// Node `node`'s transport, with the real backend's default configuration
    /// (and room for many dials a second).
    fn transport(&self, node: NodeIdx) -> RelayedTransport<MsQuicTransport> {
        let limits = Limits { max_dials_per_second: 10_000, ..Limits::default() };
        let transport = MsQuicTransport::new(MsQuicConfig::default().with_limits(limits)).expect("an MsQuic transport");
        RelayedTransport::new(transport, node, self.relays.clone())
    }

    fn set(&self, change: LinkChange) {
        self.relays.faults().apply(&change, &Scope::Between { a: vec![A], b: vec![B] });
    }

    /// Drops everything A sends B; B's packets still reach A.
    fn cut_a_to_b(&self) {
        self.set(LinkChange::Partition { oneway: true });
    }

    /// Drops everything both ways.
    fn cut_both_ways(&self) {
        self.set(LinkChange::Partition { oneway: false });
    }

    fn heal(&self) {
        self.set(LinkChange::Heal);
    }

    /// Loses `rate` of the packets both ways.
    fn lose(&self, rate: f64) {
        self.set(LinkChange::Loss(rate));
    }
}

/// One end of a connection.
struct End {
    tx: MsQuicSender,
    rx: MsQuicReceiver,
    /// The node's transport: dropping the end with it is the node's crash,
    /// as the real cluster's crash drops the node's transport.
    _transport: RelayedTransport<MsQuicTransport>,
}

/// A connection from A to B through a relay, warmed up by one round trip
/// each way (so both ends have an RTT sample, as a running node's do).
struct Pair {
    a: End,
    b: End,
    _listener: RelayedListener<MsQuicListener>,
}

async fn connected(net: &Net) -> Pair {
    let (a, b) = (net.transport(A), net.transport(B));
    let mut listener = within("listen", b.listen(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))).await.expect("listen");
    let outgoing = within("connect", a.connect(listener.local_addr())).await.expect("connect");
    let incoming = within("accept", listener.accept()).await.expect("accept");
    let ((a_tx, a_rx), (b_tx, b_rx)) = (outgoing.split(), incoming.split());
    let mut pair = Pair {
        a: End { tx: a_tx, rx: a_rx, _transport: a },
        b: End { tx: b_tx, rx: b_rx, _transport: b },
        _listener: listener,
    };
    for _ in 0..3 {
        within("send to B", pair.a.tx.send(Bytes::from_static(b"warm-up"))).await.expect("send");
        within("B receives", pair.b.rx.recv()).await.expect("B receives");
        within("send to A", pair.b.tx.send(Bytes::from_static(b"warm-up"))).await.expect("send");
        within("A receives", pair.a.rx.recv()).await.expect("A receives");
    }
    pair
}

/// How long after `since` the receiver saw its connection close; panics if
/// a message arrives instead.
async fn closed_after(rx: &mut MsQuicReceiver, since: Instant, who: &str) -> Duration {
    match within(who, rx.recv()).await {
        Ok(message) => panic!("{who} received {message:?} where its connection should close"),
        Err(_) => since.elapsed(),
    }
}

/// Whether a cut both ways held `cut` long, with a frame sent into it at
/// its start, leaves the connection alive: the frame arrives after the heal
/// and a reply comes back. Also how long after the heal the frame arrived.
async fn outlives_cut(cut: Duration) -> (bool, Option<Duration>) {
    let net = Net::new();
    let mut pair = connected(&net).await;
    net.cut_both_ways();
    let started = Instant::now();
    within("send", pair.a.tx.send(Bytes::from_static(b"into the cut"))).await.expect("handed to MsQuic");
    tokio::time::sleep(cut.saturating_sub(started.elapsed())).await;
    net.heal();
    let healed = Instant::now();
    match within("B", pair.b.rx.recv()).await {
        Ok(frame) => {
            assert_eq!(&frame[..], b"into the cut");
            let arrived = healed.elapsed();
            within("reply", pair.b.tx.send(Bytes::from_static(b"reply"))).await.expect("B sends");
            let replied = within("A", pair.a.rx.recv()).await.is_ok();
            (replied, Some(arrived))
        }
        Err(_) => (false, None),
    }
}

/// "p50 X ms, p90 Y ms, max Z ms" of some durations.
fn quantiles(times: &mut [Duration]) -> String {
    if times.is_empty() {
        return "none".into();
    }
    times.sort();
    let at = |q: f64| millis(times[((q * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1]);
    format!("p50 {} ms, p90 {} ms, max {} ms", at(0.5), at(0.9), at(1.0))
}

/// Accepts every connection on `listener` and keeps it open until aborted.
fn accept_all(mut listener: RelayedListener<MsQuicListener>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut kept = Vec::new();
        while let Ok(connection) = listener.accept().await {
            kept.push(connection);
        }
    })
}

/// A node that crashes with a frame held by a one-way cut loses it: the
/// crash drops its connection and MsQuic never retransmits stream data of a
/// connection it shut down, so after the heal the peer never sees the frame,
/// and its connection closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_senders_held_frame_is_lost() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let net = Net::new();
    let Pair { mut a, mut b, _listener } = connected(&net).await;
    net.cut_a_to_b();
    within("send", a.tx.send(Bytes::from_static(b"held"))).await.expect("handed to MsQuic");
    // Retransmitted into the cut a few times before the crash.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let crashed = Instant::now();
    drop(a);
    tokio::time::sleep(Duration::from_millis(300)).await;
    net.heal();
    let closed = closed_after(&mut b.rx, crashed, "B").await;
    println!(
        "crashed sender: the held frame never arrived; B's connection closed {} ms after the crash (healed at 300 ms)",
        millis(closed)
    );
    assert!(closed < IDLE_TIMEOUT * 3, "B noticed the crash only after {closed:?}");
}

/// Once a cut ends, a frame held by it arrives at the sender's next probe or
/// keep-alive: within about one (backed-off) probe timeout of the heal,
/// never after a delay fixed when it was sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_frame_arrives_soon_after_the_cut_ends() {
    let _turn = ONE_AT_A_TIME.lock().await;
    for heal_at in [Duration::from_millis(100), Duration::from_millis(300), Duration::from_millis(700)] {
        let net = Net::new();
        let mut pair = connected(&net).await;
        net.cut_a_to_b();
        let sent = Instant::now();
        within("send", pair.a.tx.send(Bytes::from_static(b"held"))).await.expect("handed to MsQuic");
        tokio::time::sleep(heal_at.saturating_sub(sent.elapsed())).await;
        net.heal();
        let healed = sent.elapsed();
        let frame = within("B receives", pair.b.rx.recv()).await.expect("the frame arrives after the heal");
        let arrived = sent.elapsed();
        assert_eq!(&frame[..], b"held");
        println!(
            "one-way cut healed at {} ms: the frame arrived at {} ms, {} ms after the heal",
            millis(healed),
            millis(arrived),
            millis(arrived - healed)
        );
        // The next probe is at most about twice the time since the send away
        // (the probe timeout doubles); generous for a loaded machine.
        assert!(arrived < healed * 2 + Duration::from_millis(400), "arrived {arrived:?} after a heal at {healed:?}");
    }
}

/// The same under 90% loss both ways that ends at 300 ms: the frame arrives
/// soon after, at the latest one probe timeout later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_sent_under_heavy_loss_arrives_soon_after_it_ends() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let loss_ends = Duration::from_millis(300);
    let mut arrivals = Vec::new();
    for _ in 0..5 {
        let net = Net::new();
        let mut pair = connected(&net).await;
        net.lose(0.9);
        let sent = Instant::now();
        within("send", pair.a.tx.send(Bytes::from_static(b"lossy"))).await.expect("handed to MsQuic");
        let receiving = async {
            let frame = within("B receives", pair.b.rx.recv()).await.expect("the frame arrives");
            (frame, sent.elapsed())
        };
        let ending = async {
            tokio::time::sleep(loss_ends.saturating_sub(sent.elapsed())).await;
            net.lose(0.0);
        };
        let ((frame, arrived), ()) = tokio::join!(receiving, ending);
        assert_eq!(&frame[..], b"lossy");
        arrivals.push(arrived);
    }
    let shown: Vec<u128> = arrivals.iter().map(|&d| millis(d)).collect();
    println!("90% loss both ways until 300 ms: the frame arrived at {shown:?} ms");
    for arrived in arrivals {
        assert!(arrived < loss_ends * 2 + Duration::from_millis(600), "arrived at {arrived:?}");
    }
}

/// How long a dial from `from` to `to` takes, `None` when it fails.
async fn dial(from: &RelayedTransport<MsQuicTransport>, to: SocketAddr) -> Option<Duration> {
    let started = Instant::now();
    let connection = within("dial", from.connect(to)).await.ok()?;
    let took = started.elapsed();
    drop(connection);
    Some(took)
}

/// A dial that meets 25% loss both ways for its first 43 ms takes the
/// lossless handshake's few milliseconds, or about 600 ms when a flight was
/// lost (the next keep-alive tick, and the server's answer to it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dial_through_a_short_burst_of_loss() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let net = Net::new();
    let (a, b) = (net.transport(A), net.transport(B));
    let listener = within("listen", b.listen(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))).await.expect("listen");
    let to = listener.local_addr();
    let accepting = accept_all(listener);
    let mut lossless = Vec::new();
    for _ in 0..10 {
        lossless.push(dial(&a, to).await.expect("a lossless dial"));
    }
    let mut bursts = Vec::new();
    let mut failed = 0;
    for _ in 0..10 {
        net.lose(0.25);
        let ending = async {
            tokio::time::sleep(Duration::from_millis(43)).await;
            net.lose(0.0);
        };
        match tokio::join!(dial(&a, to), ending).0 {
            Some(took) => bursts.push(took),
            None => failed += 1,
        }
    }
    accepting.abort();
    println!("lossless dial: {}", quantiles(&mut lossless));
    let slow = bursts.iter().filter(|&&d| d > Duration::from_millis(500)).count();
    let shown: Vec<u128> = bursts.iter().map(|&d| millis(d)).collect();
    println!("25% loss for the first 43 ms: dials took {shown:?} ms ({slow} over 500 ms, {failed} failed)");
    assert_eq!(failed, 0, "a dial failed although the loss ended after 43 ms");
    assert!(lossless[lossless.len() / 2] < Duration::from_millis(200), "lossless dials: {lossless:?}");
    for took in bursts {
        // A lost flight costs a keep-alive tick (500 ms) or two; never the
        // whole handshake timeout.
        assert!(took < Duration::from_millis(2_500), "a dial took {took:?}");
    }
}

/// A handshake flight lost to a cut is sent again at each keep-alive tick,
/// 500 ms apart: a dial whose first 43 ms are cut completes at about
/// 530 ms, one whose first 1.2 s are cut at about 1.53 s (MsQuic's probe
/// timeout alone, 1 s then doubling, would take 3 s and fail).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_handshake_flight_is_sent_again_at_the_next_keep_alive() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let net = Net::new();
    let (a, b) = (net.transport(A), net.transport(B));
    let listener = within("listen", b.listen(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))).await.expect("listen");
    let to = listener.local_addr();
    let accepting = accept_all(listener);
    // The relay exists before the cut.
    dial(&a, to).await.expect("a lossless dial");
    let mut took = Vec::new();
    for cut in [Duration::from_millis(43), Duration::from_millis(1_200)] {
        net.cut_a_to_b();
        let healing = async {
            tokio::time::sleep(cut).await;
            net.heal();
        };
        took.push(tokio::join!(dial(&a, to), healing).0.expect("the dial completes after the heal"));
    }
    accepting.abort();
    println!("dial with its first flight cut for 43 ms: {} ms; for 1.2 s: {} ms", millis(took[0]), millis(took[1]));
    assert!(took[0] > Duration::from_millis(400) && took[0] < Duration::from_millis(1_000), "{:?}", took[0]);
    assert!(took[1] > Duration::from_millis(1_400) && took[1] < Duration::from_millis(2_000), "{:?}", took[1]);
}

/// Dials under steady loss both ways: 20 per rate, started 25 ms apart.
/// Each lost flight costs a keep-alive tick, so the times cluster near 0,
/// 0.5, 1 and 1.5 s; a handshake that hears nothing for 3 s fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dials_under_steady_loss() {
    let _turn = ONE_AT_A_TIME.lock().await;
    for (rate, mostly_lossless) in [(0.1, true), (0.3, false), (0.5, false)] {
        let net = Net::new();
        let (a, b) = (Arc::new(net.transport(A)), net.transport(B));
        let listener = within("listen", b.listen(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))).await.expect("listen");
        let to = listener.local_addr();
        let accepting = accept_all(listener);
        // The relay exists before the loss starts.
        dial(&a, to).await.expect("a lossless dial");
        net.lose(rate);
        let mut dials = JoinSet::new();
        for i in 0..20u32 {
            let a = a.clone();
            dials.spawn(async move {
                tokio::time::sleep(Duration::from_millis(25) * i).await;
                dial(&a, to).await
            });
        }
        let mut times = Vec::new();
        let mut failed = 0;
        while let Some(result) = dials.join_next().await {
            match result.expect("a dial task") {
                Some(took) => times.push(took),
                None => failed += 1,
            }
        }
        accepting.abort();
        let over_1s = times.iter().filter(|&&d| d > Duration::from_secs(1)).count();
        println!("{:.0}% loss: {} ({over_1s} of 20 over 1 s, {failed} failed)", rate * 100.0, quantiles(&mut times));
        if mostly_lossless {
            // Half the dials or more lose at most one flight.
            assert!(failed <= 3 && over_1s + failed <= 10, "{over_1s} dials over 1 s and {failed} failed");
        }
    }
}

/// An idle connection cut both ways: each side sends a keep-alive within
/// 500 ms, and closes (silently) 2 s after it: 2.0 to 2.5 s after the cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_cut_both_ways_closes_two_seconds_after_its_next_keep_alive() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let net = Net::new();
    let mut pair = connected(&net).await;
    // Idle: every frame acknowledged, keep-alives only.
    tokio::time::sleep(Duration::from_millis(800)).await;
    net.cut_both_ways();
    let cut = Instant::now();
    let (a, b) = tokio::join!(closed_after(&mut pair.a.rx, cut, "A"), closed_after(&mut pair.b.rx, cut, "B"));
    println!("idle connection, cut both ways: A closed after {} ms, B after {} ms", millis(a), millis(b));
    closed_near_the_idle_timeout([a, b]);
}

/// Both ends closed about the idle timeout after the cut or the send.
fn closed_near_the_idle_timeout(ends: [Duration; 2]) {
    for closed in ends {
        assert!(closed > IDLE_TIMEOUT - Duration::from_millis(300), "closed after {closed:?}");
        assert!(closed < IDLE_TIMEOUT * 2, "closed after {closed:?}");
    }
}

/// A frame sent into a cut both ways: the sender closes 2 s after sending it
/// (its oldest unacknowledged packet), the receiver 2 s after its next
/// keep-alive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_sent_into_a_cut_closes_the_connection_two_seconds_after_the_send() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let net = Net::new();
    let mut pair = connected(&net).await;
    net.cut_both_ways();
    let sent = Instant::now();
    within("send", pair.a.tx.send(Bytes::from_static(b"into the cut"))).await.expect("handed to MsQuic");
    let (a, b) = tokio::join!(closed_after(&mut pair.a.rx, sent, "A"), closed_after(&mut pair.b.rx, sent, "B"));
    println!("frame sent into a cut both ways: A (the sender) closed after {} ms, B after {} ms", millis(a), millis(b));
    closed_near_the_idle_timeout([a, b]);
}

/// The two clear sides of the disconnect rule, a frame sent into a cut both
/// ways at its start: a 1 s cut keeps the connection (the keep-alive tick
/// at about 1.5 s carries the frame across), a 3 s cut breaks it. The
/// boundary is about 1.5 s: the last transmission before the close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_cut_keeps_the_connection_and_a_long_one_breaks_it() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (kept, arrived) = outlives_cut(Duration::from_secs(1)).await;
    let arrived = arrived.map(millis);
    println!("1 s cut with a frame sent into it: kept = {kept}, the frame arrived {arrived:?} ms after the heal");
    assert!(kept, "a 1 s cut broke the connection");
    let (kept, arrived) = outlives_cut(Duration::from_secs(3)).await;
    println!("3 s cut with a frame sent into it: kept = {kept}");
    assert!(!kept && arrived.is_none(), "a 3 s cut kept the connection");
}

/// Not a pin: finds where between 1.2 s and 2.2 s a cut with a frame sent
/// into it starts breaking the connection, five tries a length (measured:
/// 1.4 s kept 5 of 5, 1.5 s 4 of 5, 1.6 s and longer 0 of 5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement of about a minute, not a pin: run it with --ignored --nocapture to re-measure the boundary"]
async fn measure_the_cut_that_breaks_a_connection() {
    let _turn = ONE_AT_A_TIME.lock().await;
    for cut in (12..=22).map(|tenths| Duration::from_millis(100 * tenths)) {
        let mut kept = 0;
        let mut arrivals = Vec::new();
        for _ in 0..5 {
            let (alive, arrived) = outlives_cut(cut).await;
            kept += u32::from(alive);
            arrivals.extend(arrived.map(millis));
        }
        println!(
            "cut of {} ms with a frame sent into it: kept {kept} of 5, arrived {arrivals:?} ms after the heal",
            millis(cut)
        );
    }
}

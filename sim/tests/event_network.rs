//! The discrete-event network, seen from two nodes on a paused clock:
//! latency and order, cuts that hold and cuts that break, refused and held
//! dials, loss, crashes, and idle time that costs nothing.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tandem::transport::{Connection, Framing, Listener, MessageReceiver, MessageSender, Transport, TransportError};
use tandem_sim::events::{host_ip, EventConnection, EventTransport, Network};
use tandem_sim::QuicModel;
use tokio::time::Instant;

const MS: Duration = Duration::from_millis(1);

fn network(latency: Duration, loss: f64) -> Arc<Network> {
    Network::new(QuicModel::default(), (latency, latency), loss, 1, None)
}

fn transport(network: &Arc<Network>, node: u32) -> EventTransport {
    EventTransport::new(network.clone(), host_ip(node), Framing::default(), Arc::new(AtomicBool::new(true)))
}

/// Node 1 listens on port 7000 and node 0 dials it: both ends.
async fn connected(network: &Arc<Network>) -> (EventConnection, EventConnection) {
    let mut listener = transport(network, 1).listen("0.0.0.0:7000".parse().unwrap()).await.unwrap();
    let client = transport(network, 0).connect(listener.local_addr()).await.unwrap();
    (client, listener.accept().await.unwrap())
}

#[tokio::test(start_paused = true)]
async fn frames_arrive_after_their_latency_in_order() {
    let net = network(10 * MS, 0.0);
    let began = Instant::now();
    let (client, server) = connected(&net).await;
    assert_eq!(began.elapsed(), 20 * MS, "a dial costs a round trip");
    let ((mut tx, _rx), (_stx, mut rx)) = (client.split(), server.split());
    let sent = Instant::now();
    for word in ["one", "two", "three"] {
        tx.send(Bytes::from(word)).await.unwrap();
    }
    for word in ["one", "two", "three"] {
        assert_eq!(rx.recv().await.unwrap(), Bytes::from(word));
    }
    assert_eq!(sent.elapsed(), 10 * MS);
}

#[tokio::test(start_paused = true)]
async fn a_short_cut_holds_frames_until_the_first_retransmission_after_the_heal() {
    let net = network(MS, 0.0);
    let (client, server) = connected(&net).await;
    let ((mut tx, _rx), (_stx, mut rx)) = (client.split(), server.split());
    net.set_cut(host_ip(0), host_ip(1), true);
    net.set_cut(host_ip(1), host_ip(0), true);
    let cut = Instant::now();
    tx.send(Bytes::from_static(b"held")).await.unwrap();
    let healer = net.clone();
    tokio::spawn(async move {
        tokio::time::sleep(900 * MS).await;
        healer.set_cut(host_ip(0), host_ip(1), false);
        healer.set_cut(host_ip(1), host_ip(0), false);
    });
    assert_eq!(rx.recv().await.unwrap(), Bytes::from_static(b"held"));
    // Retransmitted at 31, 93, 217, 465, 500, 961 ms, ...: the first after
    // the heal gets through (MsQuic, healed at 900 ms: 928 ms).
    assert_eq!(cut.elapsed(), 962 * MS, "delivered at the first retransmission after the heal");
}

#[tokio::test(start_paused = true)]
async fn a_cut_breaks_an_idle_connection_at_its_next_keep_alive_plus_the_idle_timeout() {
    let net = network(MS, 0.0);
    let (client, server) = connected(&net).await;
    let ((mut tx, mut client_rx), (_stx, mut rx)) = (client.split(), server.split());
    // One direction is enough: the acknowledgements of the other are cut.
    net.set_cut(host_ip(0), host_ip(1), true);
    let cut = Instant::now();
    assert!(matches!(rx.recv().await, Err(TransportError::TimedOut(_))));
    let model = QuicModel::default();
    assert_eq!(cut.elapsed(), model.keep_alive + model.idle_timeout, "MsQuic: 2,501 ms");
    assert!(matches!(client_rx.recv().await, Err(TransportError::TimedOut(_))));
    assert!(tx.send(Bytes::from_static(b"late")).await.is_err(), "the writer learns it too");
}

#[tokio::test(start_paused = true)]
async fn a_cut_that_heals_in_the_last_keep_alive_interval_is_too_late() {
    let net = network(MS, 0.0);
    let (client, server) = connected(&net).await;
    let ((mut tx, _rx), (_stx, mut rx)) = (client.split(), server.split());
    net.set_cut(host_ip(0), host_ip(1), true);
    let sent = Instant::now();
    tx.send(Bytes::from_static(b"too late")).await.unwrap();
    tokio::time::sleep(1600 * MS).await;
    net.set_cut(host_ip(0), host_ip(1), false);
    // Nothing goes out between the 1.5 s tick and the 2 s disconnect (MsQuic: 0 of 35).
    assert!(matches!(rx.recv().await, Err(TransportError::TimedOut(_))));
    assert_eq!(sent.elapsed(), QuicModel::default().idle_timeout);
}

#[tokio::test(start_paused = true)]
async fn a_frame_sent_into_a_cut_breaks_the_connection_the_idle_timeout_later() {
    let net = network(MS, 0.0);
    let (client, server) = connected(&net).await;
    let ((mut tx, _rx), (_stx, mut rx)) = (client.split(), server.split());
    net.set_cut(host_ip(0), host_ip(1), true);
    net.set_cut(host_ip(1), host_ip(0), true);
    tokio::time::sleep(100 * MS).await;
    let sent = Instant::now();
    tx.send(Bytes::from_static(b"into the cut")).await.unwrap();
    assert!(matches!(rx.recv().await, Err(TransportError::TimedOut(_))));
    assert_eq!(sent.elapsed(), QuicModel::default().idle_timeout, "MsQuic: 2,001 ms");
}

#[tokio::test(start_paused = true)]
async fn a_cut_shorter_than_the_idle_timeout_keeps_the_connection() {
    let net = network(MS, 0.0);
    let (client, server) = connected(&net).await;
    let ((mut tx, _rx), (_stx, mut rx)) = (client.split(), server.split());
    net.set_cut(host_ip(0), host_ip(1), true);
    net.set_cut(host_ip(1), host_ip(0), true);
    let sent = Instant::now();
    tx.send(Bytes::from_static(b"survives")).await.unwrap();
    tokio::time::sleep(1200 * MS).await;
    net.set_cut(host_ip(0), host_ip(1), false);
    net.set_cut(host_ip(1), host_ip(0), false);
    assert_eq!(rx.recv().await.unwrap(), Bytes::from_static(b"survives"));
    assert_eq!(sent.elapsed(), 1501 * MS, "at the 1.5 s keep-alive tick (MsQuic: 1,429-1,502 ms)");
    tokio::time::sleep(Duration::from_secs(10)).await;
    tx.send(Bytes::from_static(b"still connected")).await.unwrap();
    assert_eq!(rx.recv().await.unwrap(), Bytes::from_static(b"still connected"));
}

#[tokio::test(start_paused = true)]
async fn dials_across_a_cut_retry_at_keep_alive_ticks_and_find_no_listener_refused() {
    let net = network(5 * MS, 0.0);
    let refused = transport(&net, 0).connect("192.168.0.2:7000".parse().unwrap()).await;
    assert!(matches!(refused, Err(TransportError::Refused(_))), "{refused:?}");
    let _listener = transport(&net, 1).listen("0.0.0.0:7000".parse().unwrap()).await.unwrap();
    net.set_cut(host_ip(1), host_ip(0), true);
    let began = Instant::now();
    let failed = transport(&net, 0).connect("192.168.0.2:7000".parse().unwrap()).await;
    assert!(matches!(failed, Err(TransportError::TimedOut(_))), "a handshake needs both directions: {failed:?}");
    assert_eq!(began.elapsed(), QuicModel::default().handshake_timeout);
    // Healed 700 ms into a dial: it completes at the next tick (MsQuic: 1,030-1,106 ms).
    let healer = net.clone();
    tokio::spawn(async move {
        tokio::time::sleep(700 * MS).await;
        healer.set_cut(host_ip(1), host_ip(0), false);
    });
    let began = Instant::now();
    transport(&net, 0).connect("192.168.0.2:7000".parse().unwrap()).await.unwrap();
    assert_eq!(began.elapsed(), 1010 * MS);
}

#[tokio::test(start_paused = true)]
async fn a_crash_closes_connections_after_what_was_sent() {
    let net = network(MS, 0.0);
    let (client, server) = connected(&net).await;
    let ((mut tx, _rx), (_stx, mut rx)) = (client.split(), server.split());
    tx.send(Bytes::from_static(b"last words")).await.unwrap();
    net.crash(host_ip(0));
    assert_eq!(rx.recv().await.unwrap(), Bytes::from_static(b"last words"));
    assert!(matches!(rx.recv().await, Err(TransportError::Closed)));
    assert!(tx.send(Bytes::from_static(b"zombie")).await.is_err(), "a crashed node sends nothing");
    // A crashed node's listeners go with it.
    let _listener = transport(&net, 1).listen("0.0.0.0:7001".parse().unwrap()).await.unwrap();
    let accepted = transport(&net, 0).connect("192.168.0.2:7001".parse().unwrap()).await;
    assert!(accepted.is_ok(), "node 1 listens");
    net.crash(host_ip(1));
    let refused = transport(&net, 0).connect("192.168.0.2:7001".parse().unwrap()).await;
    assert!(matches!(refused, Err(TransportError::Refused(_))), "{refused:?}");
}

#[tokio::test(start_paused = true)]
async fn loss_costs_time_and_total_loss_breaks() {
    let net = network(MS, 0.0);
    let (client, server) = connected(&net).await;
    let ((mut tx, _rx), (_stx, mut rx)) = (client.split(), server.split());
    net.set_loss(host_ip(0), host_ip(1), 0.3);
    let sent = Instant::now();
    for _ in 0..20 {
        tx.send(Bytes::from_static(b"x")).await.unwrap();
    }
    for _ in 0..20 {
        rx.recv().await.unwrap();
    }
    assert!(sent.elapsed() >= 31 * MS, "some frame waited for a retransmission: {:?}", sent.elapsed());
    net.set_loss(host_ip(0), host_ip(1), 1.0);
    tx.send(Bytes::from_static(b"lost")).await.unwrap();
    assert!(matches!(rx.recv().await, Err(TransportError::TimedOut(_))));
}

#[test]
fn idle_time_costs_nothing() {
    // Wall-clock: a simulated hour of two idle connected nodes takes well
    // under a second, where a 1 ms tick would step 3.6 million times.
    let wall = std::time::Instant::now();
    tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
        let net = network(MS, 0.0);
        let (_client, _server) = connected(&net).await;
        tokio::time::sleep(Duration::from_secs(3600)).await;
    });
    assert!(wall.elapsed() < Duration::from_secs(1), "{:?}", wall.elapsed());
}

// What MsQuic does, pinned in both simulated backends (here and in
// `transport_model.rs`) and over MsQuic (msquic/tests/).

#[tokio::test(start_paused = true)]
async fn a_crashed_senders_held_frames_are_lost() {
    let net = network(MS, 0.0);
    let (client, server) = connected(&net).await;
    let ((mut tx, _rx), (_stx, mut rx)) = (client.split(), server.split());
    net.set_cut(host_ip(0), host_ip(1), true);
    tx.send(Bytes::from_static(b"yes vote")).await.unwrap();
    tokio::time::sleep(100 * MS).await;
    net.crash(host_ip(0));
    tokio::time::sleep(100 * MS).await;
    net.set_cut(host_ip(0), host_ip(1), false);
    // Nobody is left to retransmit it: the connection ends, the vote never comes.
    assert!(matches!(rx.recv().await, Err(TransportError::Closed)));
}

#[tokio::test(start_paused = true)]
async fn loss_that_ends_stops_costing_at_the_next_retransmission() {
    let net = network(MS, 0.0);
    let (client, server) = connected(&net).await;
    let ((mut tx, _rx), (_stx, mut rx)) = (client.split(), server.split());
    net.set_loss(host_ip(0), host_ip(1), 1.0);
    let sent = Instant::now();
    tx.send(Bytes::from_static(b"through")).await.unwrap();
    tokio::time::sleep(300 * MS).await;
    net.set_loss(host_ip(0), host_ip(1), 0.0);
    assert_eq!(rx.recv().await.unwrap(), Bytes::from_static(b"through"));
    // Lost at 0, 31, 93 and 217 ms; the retransmission at 465 ms gets
    // through (MsQuic, healed at 300 ms: 413-432 ms).
    assert_eq!(sent.elapsed(), 466 * MS);
}

#[tokio::test(start_paused = true)]
async fn a_dial_under_brief_loss_waits_one_keep_alive_tick() {
    let net = network(MS, 0.0);
    let _listener = transport(&net, 1).listen("0.0.0.0:7000".parse().unwrap()).await.unwrap();
    net.set_loss(host_ip(0), host_ip(1), 1.0);
    net.set_loss(host_ip(1), host_ip(0), 1.0);
    let healer = net.clone();
    tokio::spawn(async move {
        tokio::time::sleep(43 * MS).await;
        healer.set_loss(host_ip(0), host_ip(1), 0.0);
        healer.set_loss(host_ip(1), host_ip(0), 0.0);
    });
    let began = Instant::now();
    transport(&net, 0).connect("192.168.0.2:7000".parse().unwrap()).await.unwrap();
    let tick = QuicModel::default().keep_alive;
    assert_eq!(began.elapsed(), tick + 2 * MS, "the first flight goes out again at the tick (MsQuic: 530 ms)");
}

#[tokio::test(start_paused = true)]
async fn loss_long_past_does_not_shorten_a_later_cut() {
    let net = network(MS, 0.0);
    let (client, server) = connected(&net).await;
    let ((mut tx, _rx), (_stx, mut rx)) = (client.split(), server.split());
    net.set_loss(host_ip(0), host_ip(1), 1.0);
    tx.send(Bytes::from_static(b"late")).await.unwrap();
    tokio::time::sleep(100 * MS).await;
    net.set_loss(host_ip(0), host_ip(1), 0.0);
    assert_eq!(rx.recv().await.unwrap(), Bytes::from_static(b"late"));
    tokio::time::sleep(Duration::from_secs(10)).await;
    net.set_cut(host_ip(0), host_ip(1), true);
    let cut = Instant::now();
    assert!(matches!(rx.recv().await, Err(TransportError::TimedOut(_))));
    let model = QuicModel::default();
    assert_eq!(cut.elapsed(), model.keep_alive + model.idle_timeout);
}

//! The simulated transport's QUIC model, seen from a node: a connection
//! that hears nothing for the idle timeout dies even if its node only
//! writes, and loss slows dials (heavy loss fails them).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use tandem::transport::{Connection, Framing, Listener, MessageSender, Transport, TransportError};
use tandem_sim::{LinkTable, QuicModel, SimOptions, TurmoilTransport};

fn transport(host: &str, links: &LinkTable) -> TurmoilTransport {
    TurmoilTransport::new(turmoil::lookup(host), Framing::default(), QuicModel::default(), links.clone(), 7)
}

/// A server on host `b` that accepts and holds every connection, never reading.
fn silent_server(sim: &mut turmoil::Sim<'_>, links: &LinkTable) {
    let links = links.clone();
    sim.host("b", move || {
        let links = links.clone();
        async move {
            let mut listener = transport("b", &links).listen("0.0.0.0:7000".parse().unwrap()).await?;
            let mut held = Vec::new();
            loop {
                held.push(listener.accept().await?);
            }
        }
    });
}

fn server_addr() -> SocketAddr {
    SocketAddr::new(turmoil::lookup("b"), 7000)
}

#[test]
fn a_node_that_only_writes_learns_its_connection_died() {
    let links = LinkTable::new(0.0);
    let mut sim = tandem_sim::turmoil::network(&SimOptions::new(2, 1));
    silent_server(&mut sim, &links);
    let failed_after: Rc<RefCell<Option<(Duration, TransportError)>>> = Rc::default();
    let out = failed_after.clone();
    let client_links = links.clone();
    sim.client("a", async move {
        let connection = transport("a", &client_links).connect(server_addr()).await?;
        let (mut sender, _receiver) = connection.split();
        let began = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if let Err(error) = sender.send(Bytes::from_static(b"still there?")).await {
                *out.borrow_mut() = Some((began.elapsed(), error));
                return Ok(());
            }
        }
    });
    // Up and sending for a second, then cut off both ways for good.
    while sim.elapsed() < Duration::from_secs(1) {
        sim.step().unwrap();
    }
    sim.hold("a", "b");
    while failed_after.borrow().is_none() && sim.elapsed() < Duration::from_secs(10) {
        sim.step().unwrap();
    }
    let (after, error) = failed_after.take().expect("the send failed");
    let idle = QuicModel::default().idle_timeout;
    assert!(
        after > idle && after < Duration::from_secs(1) + idle + Duration::from_millis(600),
        "failed after {after:?}"
    );
    assert!(matches!(error, TransportError::Closed), "{error:?}");
}

/// How each of `dials` dials went on links losing `rate`: its time, or the error.
fn dials(rate: f64, dials: usize) -> Vec<Result<Duration, TransportError>> {
    let links = LinkTable::new(rate);
    let mut sim = tandem_sim::turmoil::network(&SimOptions::new(2, 3));
    silent_server(&mut sim, &links);
    let results: Rc<RefCell<Vec<Result<Duration, TransportError>>>> = Rc::default();
    let out = results.clone();
    sim.client("a", async move {
        let transport = transport("a", &links);
        for _ in 0..dials {
            let began = tokio::time::Instant::now();
            let dialled = transport.connect(server_addr()).await.map(|_| began.elapsed());
            out.borrow_mut().push(dialled);
        }
        Ok(())
    });
    sim.run().unwrap();
    results.take()
}

#[test]
fn loss_slows_dials_and_heavy_loss_fails_them() {
    let clean = dials(0.0, 20);
    assert!(clean.iter().all(|d| d.as_ref().is_ok_and(|d| *d < Duration::from_millis(50))), "{clean:?}");
    let lossy = dials(0.3, 40);
    let slow = lossy.iter().filter(|d| d.as_ref().map_or(true, |d| *d >= Duration::from_millis(333))).count();
    assert!((5..40).contains(&slow), "at 30% loss some dials wait a probe timeout or fail: {slow} of 40");
    let lost = dials(1.0, 3);
    assert!(lost.iter().all(|d| matches!(d, Err(TransportError::TimedOut(_)))), "{lost:?}");
}

// What MsQuic does, pinned in both simulated backends (here and in
// `event_network.rs`) and over MsQuic (msquic/tests/).

type Log = Rc<RefCell<Vec<(Duration, Result<Bytes, String>)>>>;

/// A server on host `b` that records, for its first connection, when
/// (since the simulation began) each frame or the connection's end came.
fn recording_server(sim: &mut turmoil::Sim<'_>, links: &LinkTable) -> Log {
    let (links, log) = (links.clone(), Log::default());
    let out = log.clone();
    sim.client("b", async move {
        use tandem::transport::MessageReceiver;
        let began = tokio::time::Instant::now();
        let mut listener = transport("b", &links).listen("0.0.0.0:7000".parse().unwrap()).await?;
        let (_sender, mut receiver) = listener.accept().await?.split();
        loop {
            let got = receiver.recv().await.map_err(|e| e.to_string());
            let ended = got.is_err();
            out.borrow_mut().push((began.elapsed(), got));
            if ended {
                return Ok(());
            }
        }
    });
    log
}

/// Steps `sim` until it has run for `until`.
fn run_until(sim: &mut turmoil::Sim<'_>, until: Duration) {
    while sim.elapsed() < until {
        sim.step().unwrap();
    }
}

#[test]
fn a_crashed_senders_held_frames_are_lost() {
    let links = LinkTable::new(0.0);
    let mut sim = tandem_sim::turmoil::network(&SimOptions::new(2, 5));
    let log = recording_server(&mut sim, &links);
    let client_links = links.clone();
    sim.host("a", move || {
        let links = client_links.clone();
        async move {
            let (mut sender, _receiver) = transport("a", &links).connect(server_addr()).await?.split();
            tokio::time::sleep(Duration::from_millis(50)).await;
            sender.send(Bytes::from_static(b"yes vote")).await?;
            std::future::pending::<()>().await;
            Ok(())
        }
    });
    run_until(&mut sim, Duration::from_millis(20));
    links.set_held(sim.lookup("a"), sim.lookup("b"), true);
    run_until(&mut sim, Duration::from_millis(200));
    sim.crash("a");
    run_until(&mut sim, Duration::from_millis(300));
    links.set_held(sim.lookup("a"), sim.lookup("b"), false);
    run_until(&mut sim, Duration::from_secs(4));
    let log = log.take();
    assert!(log.iter().all(|(_, got)| got.is_err()), "the dead node's vote arrived: {log:?}");
    assert_eq!(log.len(), 1, "the connection ends: {log:?}");
}

#[test]
fn loss_that_ends_stops_costing_at_the_next_retransmission() {
    let links = LinkTable::new(0.0);
    let mut sim = tandem_sim::turmoil::network(&SimOptions::new(2, 5));
    let log = recording_server(&mut sim, &links);
    let client_links = links.clone();
    sim.client("a", async move {
        let (mut sender, _receiver) = transport("a", &client_links).connect(server_addr()).await?.split();
        tokio::time::sleep_until(tokio::time::Instant::now() + Duration::from_millis(50)).await;
        client_links.set_loss(turmoil::lookup("a"), turmoil::lookup("b"), 1.0);
        sender.send(Bytes::from_static(b"through")).await?;
        std::future::pending::<()>().await;
        Ok(())
    });
    run_until(&mut sim, Duration::from_millis(300));
    links.set_loss(sim.lookup("a"), sim.lookup("b"), 0.0);
    run_until(&mut sim, Duration::from_secs(1));
    let log = log.take();
    let (at, got) = log.first().expect("the frame arrived");
    assert_eq!(got.as_deref().ok(), Some(&b"through"[..]));
    // Sent about 60 ms in, lost at 0, 29, 87 and 203 ms after: the
    // retransmission at 435 ms, after the loss ended, gets through.
    assert!(*at > Duration::from_millis(480) && *at < Duration::from_millis(520), "arrived at {at:?}");
}

#[test]
fn a_dial_under_brief_loss_waits_one_keep_alive_tick() {
    let links = LinkTable::new(1.0);
    let mut sim = tandem_sim::turmoil::network(&SimOptions::new(2, 5));
    silent_server(&mut sim, &links);
    let dialled: Rc<RefCell<Option<Result<Duration, TransportError>>>> = Rc::default();
    let (client_links, out) = (links.clone(), dialled.clone());
    sim.client("a", async move {
        let began = tokio::time::Instant::now();
        let dial = transport("a", &client_links).connect(server_addr()).await;
        *out.borrow_mut() = Some(dial.map(|_| began.elapsed()));
        Ok(())
    });
    run_until(&mut sim, Duration::from_millis(43));
    let (a, b) = (sim.lookup("a"), sim.lookup("b"));
    links.set_loss(a, b, 0.0);
    links.set_loss(b, a, 0.0);
    run_until(&mut sim, Duration::from_secs(2));
    let took = dialled.take().expect("the dial ended").expect("the dial succeeded");
    let tick = QuicModel::default().keep_alive;
    assert!(took >= tick && took < tick + Duration::from_millis(30), "dialled in {took:?}");
}

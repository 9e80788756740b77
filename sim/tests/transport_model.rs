//! The simulated transport's QUIC model, seen from a node: a connection
//! that hears nothing for the idle timeout dies even if its node only
//! writes, and loss slows dials (heavy loss fails them).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use tandem::transport::{Connection, Framing, Listener, MessageSender, Transport, TransportError};
use tandem_sim::{LinkTable, QuicModel, SimOptions, SimTransport};

fn transport(host: &str, links: &LinkTable) -> SimTransport {
    SimTransport::new(turmoil::lookup(host), Framing::default(), QuicModel::default(), links.clone(), 7)
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
    let mut sim = SimOptions::new(2, 1).network();
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
    let mut sim = SimOptions::new(2, 3).network();
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

//! The hostile quinn client of `common/attacker.rs` against a plain
//! `MsQuicTransport` listener: that it gets in and talks tandem's framing,
//! that the server closes it with an application code when it breaks the
//! framing, and that a client showing no certificate is refused.
//!
//! Every wait is under a timeout, so a bug fails a test instead of hanging it.

#[path = "common/attacker.rs"]
mod attacker;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use attacker::{Attacker, Hostile};
use bytes::Bytes;
use tandem::transport::{Connection, Listener, MessageReceiver, MessageSender, Transport};
use tandem_msquic::{MsQuicConfig, MsQuicConnection, MsQuicListener, MsQuicTransport, TlsIdentity};

/// The most any single step may take.
const STEP: Duration = Duration::from_secs(10);

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, future).await.unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// A transport with the default configuration (AcceptAny trust) listening
/// on a fresh loopback port.
async fn server() -> (MsQuicTransport, MsQuicListener, SocketAddr) {
    let transport = MsQuicTransport::new(MsQuicConfig::default()).expect("transport");
    let listener = within("listen", transport.listen("127.0.0.1:0".parse().unwrap())).await.expect("listen");
    let addr = listener.local_addr();
    (transport, listener, addr)
}

/// An attacker with a fresh certificate, connected to a fresh server: the
/// attacker's end, the server's end, the attacker's identity, and the
/// server's transport and listener (keep them alive).
async fn attacked() -> (Hostile, MsQuicConnection, TlsIdentity, (MsQuicTransport, MsQuicListener)) {
    let (transport, mut listener, addr) = server().await;
    let identity = TlsIdentity::generate().expect("identity");
    let attacker = Attacker::new(Some(&identity));
    let hostile = within("connect", attacker.connect(addr)).await.expect("the attacker gets in");
    let incoming = within("accept", listener.accept()).await.expect("accept");
    (hostile, incoming, identity, (transport, listener))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacker_with_a_certificate_exchanges_frames() {
    let (mut hostile, incoming, identity, _server) = attacked().await;
    // The server names the attacker by its certificate.
    assert_eq!(incoming.info().peer_identity, Some(identity.id()));
    let (mut tx, mut rx) = incoming.split();

    hostile.send_frame(b"hello, tandem").await.expect("send");
    let got = within("server recv", rx.recv()).await.expect("server recv");
    assert_eq!(&got[..], b"hello, tandem");

    // An empty frame is a frame too.
    hostile.send_frame(b"").await.expect("send empty");
    assert!(within("server recv", rx.recv()).await.expect("recv").is_empty());

    within("server send", tx.send(Bytes::from_static(b"hello, attacker"))).await.expect("server send");
    let reply = hostile.recv_frame(STEP).await.expect("the reply");
    assert_eq!(reply, b"hello, attacker");

    // Nothing else is coming.
    assert_eq!(hostile.recv_frame(Duration::from_millis(100)).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frame_gets_an_application_close() {
    let (mut hostile, incoming, _identity, _server) = attacked().await;
    let (_tx, mut rx) = incoming.split();

    // Announces 4 GiB - 1, far over the 16 MiB limit.
    hostile.send_raw(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3]).await.expect("send");

    let code = hostile.closed_code(Duration::from_secs(3)).await;
    println!("malformed frame: close code {code:?}, reason {:?}", hostile.close_reason());
    assert_eq!(code, Some(tandem_msquic::close::FRAMING), "closed otherwise: {:?}", hostile.close_reason());
    // The app side sees the connection end, not a message.
    assert!(within("server recv", rx.recv()).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacker_without_a_certificate_is_refused() {
    let (_transport, mut listener, addr) = server().await;
    let attacker = Attacker::new(None);

    let (connected, accepted) =
        tokio::join!(attacker.connect(addr), tokio::time::timeout(Duration::from_secs(2), listener.accept()),);
    // A connection that reached the app side late would still be queued.
    let late = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
    let admitted = |a: &Result<Result<tandem_msquic::MsQuicConnection, _>, _>| match a {
        Ok(Ok(connection)) => Some(connection.info().peer_identity),
        _ => None,
    };
    println!(
        "no certificate: connect {:?}, admitted in time with identity {:?}, late {:?}",
        connected.as_ref().map(|h| h.close_reason()),
        admitted(&accepted),
        admitted(&late),
    );
    assert!(
        !matches!(accepted, Ok(Ok(_))) && !matches!(late, Ok(Ok(_))),
        "a client without a certificate reached the app side"
    );
    assert!(connected.is_err(), "a client without a certificate got the server's stream");
}

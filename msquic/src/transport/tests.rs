//! Loopback tests of the MsQuic transport. Every await is under a timeout so
//! that a bug fails a test instead of hanging it.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use tandem::transport::{Connection, Framing, Listener, MessageReceiver, MessageSender};

const STEP: Duration = Duration::from_secs(10);

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, future).await.unwrap_or_else(|_| panic!("timed out: {what}"))
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn transport(config: MsQuicConfig) -> MsQuicTransport {
    MsQuicTransport::new(config).expect("transport")
}

/// A listening server and a client connected to it, with both ends.
async fn pair(
    server: &MsQuicTransport,
    client: &MsQuicTransport,
) -> (MsQuicListener, MsQuicConnection, MsQuicConnection) {
    let mut listener = within("listen", server.listen(loopback())).await.expect("listen");
    let addr = listener.local_addr();
    assert_ne!(addr.port(), 0);
    let outgoing = within("connect", client.connect(addr)).await.expect("connect");
    let incoming = within("accept", listener.accept()).await.expect("accept");
    (listener, outgoing, incoming)
}

fn pattern(len: usize, seed: u8) -> Bytes {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect::<Vec<_>>().into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_round_trip_whole_and_in_order() {
    let (server, client) = (transport(MsQuicConfig::default()), transport(MsQuicConfig::default()));
    let (_listener, outgoing, incoming) = pair(&server, &client).await;
    let (mut client_tx, mut client_rx) = outgoing.split();
    let (mut server_tx, mut server_rx) = incoming.split();

    let messages = vec![
        Bytes::from_static(b"hello"),
        Bytes::new(),
        pattern(150 * 1024, 1),
        pattern(16 * 1024 * 1024, 2),
        Bytes::from_static(b"last"),
    ];
    let expected = messages.clone();
    let sending = tokio::spawn(async move {
        for message in messages {
            client_tx.send(message).await.expect("send");
        }
        client_tx
    });
    for want in &expected {
        let got = within("recv", server_rx.recv()).await.expect("recv");
        assert_eq!(got.len(), want.len());
        assert!(got == *want, "message of {} bytes corrupted", want.len());
    }
    let mut client_tx = within("sender", sending).await.unwrap();

    // And back.
    within("reply", server_tx.send(Bytes::from_static(b"pong"))).await.unwrap();
    assert_eq!(&within("recv reply", client_rx.recv()).await.unwrap()[..], b"pong");

    // Too large for the framing: refused locally, the connection lives on.
    let too_big = Bytes::from(vec![0u8; Framing::default().max_frame() + 1]);
    assert!(matches!(client_tx.send(too_big).await, Err(TransportError::FrameTooLarge { .. })));

    // Close: what was sent arrives, then the peer sees Closed.
    within("send before close", client_tx.send(Bytes::from_static(b"bye"))).await.unwrap();
    within("close", client_tx.close()).await;
    assert_eq!(&within("recv bye", server_rx.recv()).await.unwrap()[..], b"bye");
    assert!(matches!(within("recv closed", server_rx.recv()).await, Err(TransportError::Closed)));
    assert!(matches!(within("own recv", client_rx.recv()).await, Err(TransportError::Closed)));
    assert!(within("send after close", server_tx.send(Bytes::new())).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_identities_match_the_other_side() {
    let (server, client) = (transport(MsQuicConfig::default()), transport(MsQuicConfig::default()));
    assert_ne!(server.identity(), client.identity());
    let (_listener, outgoing, incoming) = pair(&server, &client).await;
    assert_eq!(outgoing.info().peer_identity, Some(server.identity()));
    assert_eq!(incoming.info().peer_identity, Some(client.identity()));
    assert_eq!(outgoing.info().remote, incoming.info().local);
    assert_eq!(incoming.info().remote, outgoing.info().local);

    // A given identity is used as is.
    let identity = TlsIdentity::generate().unwrap();
    let id = identity.id();
    assert_eq!(transport(MsQuicConfig::default().with_identity(identity)).identity(), id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_transports_refuse_unknown_peers() {
    let (server_id, client_id) = (TlsIdentity::generate().unwrap(), TlsIdentity::generate().unwrap());
    let pinned = |own: &TlsIdentity, peer: &TlsIdentity| {
        MsQuicConfig::default().with_identity(own.clone()).with_trust(TrustPolicy::Pinned(BTreeSet::from([peer.id()])))
    };
    let server = transport(pinned(&server_id, &client_id));
    let client = transport(pinned(&client_id, &server_id));
    let rogue = transport(MsQuicConfig::default());

    let mut listener = within("listen", server.listen(loopback())).await.unwrap();
    let addr = listener.local_addr();

    // A client the server does not know is refused during the handshake...
    let refused = within("rogue connect", rogue.connect(addr)).await;
    assert!(refused.is_err(), "an unpinned client connected");
    // ...and never shows up on the listener.
    let nothing = tokio::time::timeout(Duration::from_millis(500), listener.accept()).await;
    assert!(nothing.is_err(), "the listener yielded an unpinned client");

    // A pinned client still gets through and can talk.
    let outgoing = within("connect", client.connect(addr)).await.expect("pinned connect");
    let incoming = within("accept", listener.accept()).await.expect("pinned accept");
    assert_eq!(incoming.info().peer_identity, Some(client.identity()));
    let (mut tx, _rx) = outgoing.split();
    let (_tx, mut rx) = incoming.split();
    within("send", tx.send(Bytes::from_static(b"hi"))).await.unwrap();
    assert_eq!(&within("recv", rx.recv()).await.unwrap()[..], b"hi");

    // The pinned client refuses a server it does not know.
    let mut rogue_listener = within("rogue listen", rogue.listen(loopback())).await.unwrap();
    let wrong = within("connect to rogue", client.connect(rogue_listener.local_addr())).await;
    assert!(wrong.is_err(), "connected to an unpinned server");
    let nothing = tokio::time::timeout(Duration::from_millis(300), rogue_listener.accept()).await;
    assert!(nothing.is_err(), "the rogue listener got a connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_framing_closes_only_that_connection() {
    let config = || MsQuicConfig::default().with_framing(Framing::new(64 * 1024));
    let (server, client) = (transport(config()), transport(config()));
    let mut listener = within("listen", server.listen(loopback())).await.unwrap();
    let addr = listener.local_addr();

    let hostile: [&'static [u8]; 2] = [
        // Announces 4 GiB - 1: must be refused before allocating it.
        &[0xff, 0xff, 0xff, 0xff, 1, 2, 3],
        // Text where a length prefix belongs.
        b"GET / HTTP/1.1\r\n\r\n",
    ];
    for bytes in hostile {
        let outgoing = within("connect", client.connect(addr)).await.unwrap();
        let incoming = within("accept", listener.accept()).await.unwrap();
        let (evil_tx, mut evil_rx) = outgoing.split();
        let (_server_tx, mut server_rx) = incoming.split();
        evil_tx.send_raw(bytes).unwrap();
        assert!(matches!(within("server recv", server_rx.recv()).await, Err(TransportError::Closed)));
        assert!(matches!(within("client recv", evil_rx.recv()).await, Err(TransportError::Closed)));
        // The violation's code, also when the server drops its halves at once.
        assert_eq!(evil_rx.peer_close_code(), Some(close::FRAMING));
    }

    // The listener keeps serving.
    let outgoing = within("connect", client.connect(addr)).await.unwrap();
    let incoming = within("accept", listener.accept()).await.unwrap();
    let (mut tx, _rx) = outgoing.split();
    let (_tx, mut rx) = incoming.split();
    within("send", tx.send(Bytes::from_static(b"fine"))).await.unwrap();
    assert_eq!(&within("recv", rx.recv()).await.unwrap()[..], b"fine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_nobody_fails_fast() {
    // A port that was free a moment ago.
    let addr = std::net::UdpSocket::bind(loopback()).unwrap().local_addr().unwrap();
    let client = transport(MsQuicConfig::default());
    let started = Instant::now();
    assert!(within("connect", client.connect(addr)).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(6), "took {:?}", started.elapsed());
}

/// A UDP relay to `target` that can be made to drop everything, like a
/// peer that vanished without closing.
async fn relay(target: SocketAddr) -> (SocketAddr, Arc<AtomicBool>) {
    let front = tokio::net::UdpSocket::bind(loopback()).await.unwrap();
    let back = tokio::net::UdpSocket::bind(loopback()).await.unwrap();
    back.connect(target).await.unwrap();
    let addr = front.local_addr().unwrap();
    let dead = Arc::new(AtomicBool::new(false));
    let is_dead = dead.clone();
    tokio::spawn(async move {
        let (mut up, mut down) = ([0u8; 2048], [0u8; 2048]);
        let mut client = None;
        loop {
            tokio::select! {
                biased;
                Ok((n, from)) = front.recv_from(&mut up) => {
                    client = Some(from);
                    if !is_dead.load(Ordering::Relaxed) {
                        let _ = back.send(&up[..n]).await;
                    }
                }
                Ok(n) = back.recv(&mut down) => {
                    if let (Some(client), false) = (client, is_dead.load(Ordering::Relaxed)) {
                        let _ = front.send_to(&down[..n], client).await;
                    }
                }
            }
        }
    });
    (addr, dead)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_holds_idle_connections_and_dead_peers_are_noticed() {
    let config = || MsQuicConfig {
        idle_timeout: Duration::from_secs(1),
        keep_alive: Duration::from_millis(200),
        ..MsQuicConfig::default()
    };
    let (server, client) = (transport(config()), transport(config()));
    let mut listener = within("listen", server.listen(loopback())).await.unwrap();
    let (via, dead) = relay(listener.local_addr()).await;
    let outgoing = within("connect", client.connect(via)).await.unwrap();
    let incoming = within("accept", listener.accept()).await.unwrap();
    let (mut tx, mut client_rx) = outgoing.split();
    let (_server_tx, mut server_rx) = incoming.split();

    // Silent for twice the idle timeout: keep-alives hold the connection.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    within("send", tx.send(Bytes::from_static(b"still here"))).await.unwrap();
    assert_eq!(&within("recv", server_rx.recv()).await.unwrap()[..], b"still here");

    // The network goes silent: both sides give up within the idle timeout.
    dead.store(true, Ordering::Relaxed);
    let started = Instant::now();
    assert!(matches!(within("client recv", client_rx.recv()).await, Err(TransportError::Closed)));
    assert!(matches!(within("server recv", server_rx.recv()).await, Err(TransportError::Closed)));
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
}

fn thread_count() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Threads:")).unwrap();
    line["Threads:".len()..].trim().parse().unwrap()
}

/// One round of setup, a message, and teardown; returns flags that turn true
/// when each transport's registration has closed.
async fn open_talk_drop() -> [Arc<AtomicBool>; 2] {
    let (server, client) = (transport(MsQuicConfig::default()), transport(MsQuicConfig::default()));
    let closed = [server.closed_flag(), client.closed_flag()];
    let (listener, outgoing, incoming) = pair(&server, &client).await;
    let (mut tx, rx) = outgoing.split();
    let (server_tx, mut server_rx) = incoming.split();
    within("send", tx.send(Bytes::from_static(b"x"))).await.unwrap();
    within("recv", server_rx.recv()).await.unwrap();
    // Drop in an unfriendly order: transports first, handles after.
    drop((server, client));
    drop((tx, server_rx, listener));
    drop((rx, server_tx));
    closed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_setup_and_drop_neither_hangs_nor_leaks() {
    tokio::time::timeout(Duration::from_secs(60), async {
        open_talk_drop().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let baseline = thread_count();
        let mut flags = Vec::new();
        for _ in 0..20 {
            flags.extend(open_talk_drop().await);
        }
        // Handles close on the closer thread; give it a moment.
        let all_closed = || flags.iter().all(|f| f.load(Ordering::Acquire));
        let deadline = Instant::now() + Duration::from_secs(5);
        while !all_closed() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(all_closed(), "a registration is still open: some handle leaked");
        // Other tests run concurrently in this process, hence the slack;
        // a leak per round would exceed it.
        let now = thread_count();
        assert!(now <= baseline + 8, "threads grew from {baseline} to {now}");
    })
    .await
    .expect("20 rounds of setup and drop took over 60 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_framing_close_code_is_the_same_every_time() {
    let (server, client) = (transport(MsQuicConfig::default()), transport(MsQuicConfig::default()));
    let mut listener = within("listen", server.listen(loopback())).await.unwrap();
    let addr = listener.local_addr();
    for _ in 0..10 {
        let outgoing = within("connect", client.connect(addr)).await.unwrap();
        let incoming = within("accept", listener.accept()).await.unwrap();
        let (evil_tx, mut evil_rx) = outgoing.split();
        evil_tx.send_raw(&[0xff, 0xff, 0xff, 0xff, 1]).unwrap();
        // The server drops its halves the moment it sees the close: the
        // race the violation's code must win.
        let (server_tx, mut server_rx) = incoming.split();
        assert!(within("server recv", server_rx.recv()).await.is_err());
        drop((server_tx, server_rx));
        assert!(within("client recv", evil_rx.recv()).await.is_err());
        assert_eq!(evil_rx.peer_close_code(), Some(close::FRAMING));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_that_stalls_past_its_deadline_closes_the_connection() {
    let limits = Limits { frame_deadline: Duration::from_millis(300), ..Limits::default() };
    let server = transport(MsQuicConfig::default().with_limits(limits));
    let client = transport(MsQuicConfig::default());
    let (_listener, outgoing, incoming) = pair(&server, &client).await;
    let (evil_tx, mut evil_rx) = outgoing.split();
    let (_server_tx, mut server_rx) = incoming.split();
    // Announces 100 bytes, sends 3.
    evil_tx.send_raw(&[0, 0, 0, 100, 1, 2, 3]).unwrap();
    let started = Instant::now();
    let error = within("server recv", server_rx.recv()).await.unwrap_err();
    assert!(matches!(error, TransportError::Protocol(_)), "{error:?}");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(250) && waited < Duration::from_secs(3), "{waited:?}");
    assert!(within("client recv", evil_rx.recv()).await.is_err());
    assert_eq!(evil_rx.peer_close_code(), Some(close::FRAME_DEADLINE));
    assert_eq!(server_rx.budget_excess(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_refused() {
    let limits = Limits { max_connections: 2, ..Limits::default() };
    let server = transport(MsQuicConfig::default().with_limits(limits.clone()));
    let client = transport(MsQuicConfig::default());
    let mut listener = within("listen", server.listen(loopback())).await.unwrap();
    let addr = listener.local_addr();
    let mut kept = Vec::new();
    for _ in 0..2 {
        kept.push(within("connect", client.connect(addr)).await.unwrap());
        kept.push(within("accept", listener.accept()).await.unwrap());
    }
    assert_eq!(server.runtime.counts.connections(), 2);
    assert!(within("connect", client.connect(addr)).await.is_err(), "a third connection was admitted");
    // Outgoing connections count too.
    let limited = transport(MsQuicConfig::default().with_limits(limits));
    let mut other = within("listen", client.listen(loopback())).await.unwrap();
    let _a = within("connect", limited.connect(other.local_addr())).await.unwrap();
    let _b = within("connect", limited.connect(other.local_addr())).await.unwrap();
    let refused = within("connect", limited.connect(other.local_addr())).await;
    assert!(matches!(refused, Err(TransportError::Refused(_))), "{:?}", refused.map(|_| ()));
    // A slot comes back when a connection goes.
    drop(kept.drain(..2));
    let _accepted = within("accept", other.accept()).await.unwrap();
    let deadline = Instant::now() + STEP;
    while server.runtime.counts.connections() > 1 {
        assert!(Instant::now() < deadline, "the closed connection's slot never came back");
        tokio::task::yield_now().await;
    }
    within("connect", client.connect(addr)).await.expect("a freed slot admits a connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hogged_buffers_stay_within_budget_and_small_messages_still_flow() {
    let limits = Limits {
        total_buffer: 512 * 1024,
        connection_reserve: 16 * 1024,
        stream_window: 64 * 1024,
        frame_deadline: Duration::from_secs(30),
        ..Limits::default()
    };
    let framing = Framing::new(4 * 1024 * 1024);
    let server = transport(MsQuicConfig::default().with_framing(framing).with_limits(limits.clone()));
    let client = transport(MsQuicConfig::default().with_framing(framing));
    let mut listener = within("listen", server.listen(loopback())).await.unwrap();
    let addr = listener.local_addr();
    // Four connections each announce 4 MiB and send 1 MiB of it.
    let partial: &'static [u8] = {
        let mut bytes = (4u32 * 1024 * 1024).to_be_bytes().to_vec();
        bytes.resize(4 + 1024 * 1024, 9);
        bytes.leak()
    };
    let mut hogs = Vec::new();
    for _ in 0..4 {
        let (tx, rx) = within("connect", client.connect(addr)).await.unwrap().split();
        tx.send_raw(partial).unwrap();
        hogs.push((tx, rx, within("accept", listener.accept()).await.unwrap().split()));
    }
    let (mut honest_tx, _honest_rx) = within("connect", client.connect(addr)).await.unwrap().split();
    let (_tx, mut honest_rx) = within("accept", listener.accept()).await.unwrap().split();
    for i in 0..50u8 {
        within("send", honest_tx.send(Bytes::from(vec![i; 200]))).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(1), honest_rx.recv()).await;
        assert_eq!(&got.expect("a small message waited over 1 s").unwrap()[..], &[i; 200][..]);
    }
    let excess = honest_rx.budget_excess();
    // Each connection stops after the receive that took it over: one
    // indication each (MsQuic may tune the window up, so allow 256 KiB).
    let bound = limits.total_buffer + 4 * 256 * 1024;
    assert!(excess <= bound, "connections hold {excess} bytes beyond their reserves, bound {bound}");
    assert!(excess >= limits.total_buffer / 2, "the hogs were never buffered: {excess}");
    drop(hogs);
    let deadline = Instant::now() + STEP;
    while honest_rx.budget_excess() > 0 {
        assert!(Instant::now() < deadline, "closed connections kept {} bytes", honest_rx.budget_excess());
        tokio::task::yield_now().await;
    }
}

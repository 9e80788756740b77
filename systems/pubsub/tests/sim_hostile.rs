//! A hostile peer on the simulated network: oversized and garbage frames
//! close its connection; the node survives and keeps serving others; fake
//! members gossiped in bulk stay bounded and cost a capped dial rate.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tandem::{Connection, Framing, MessageReceiver, MessageSender, Transport, TransportError};
use tandem_pubsub::node::wire::{MemberRecord, SignedRecord, Wire};
use tandem_pubsub::node::{Node, NodeConfig, NodeId};
use tandem_sim::{LinkTable, QuicModel, TurmoilTransport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;
use turmoil::net::TcpStream;

fn transport(host: &str) -> TurmoilTransport {
    TurmoilTransport::new(turmoil::lookup(host), Framing::default(), QuicModel::default(), LinkTable::new(0.0), 1)
}

/// Sends `bytes` raw to the node and returns whether the node closed the connection.
async fn node_hangs_up_on(node: SocketAddr, bytes: &[u8]) -> bool {
    let mut stream = TcpStream::connect(node).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    let mut buf = vec![0u8; 1024];
    // The node closes; keep-alives are the only thing we might read before that.
    timeout(Duration::from_secs(5), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => continue,
            }
        }
    })
    .await
    .unwrap_or(false)
}

#[test]
fn malformed_frames_close_only_that_connection() {
    let mut sim = turmoil::Builder::new().build();
    let node_addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 168, 0, 1)), 7000);
    sim.host("node", move || async move {
        let node = Node::start(NodeConfig::new(NodeId(0), node_addr), transport("node")).await?;
        let _keep = node;
        std::future::pending::<()>().await;
        Ok(())
    });
    sim.client("evil", async move {
        // 4 GiB announced: must be refused without allocating it.
        assert!(node_hangs_up_on(node_addr, &[0xff, 0xff, 0xff, 0xff, 1, 2, 3]).await, "oversized frame");
        // A well-sized frame that is not a protocol message.
        assert!(node_hangs_up_on(node_addr, &[0, 0, 0, 3, 0xde, 0xad, 0xbe]).await, "garbage frame");
        Ok(())
    });
    sim.client("good", async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        // After the attacks, an honest peer still completes a handshake.
        let connection = transport("good").connect(node_addr).await?;
        let (mut sender, mut receiver) = connection.split();
        let hello = Wire::Hello(SignedRecord::unsigned(MemberRecord {
            id: NodeId(1),
            incarnation: 0,
            version: 0,
            addr: SocketAddr::new(turmoil::lookup("good"), 7000),
        }));
        sender.send(hello.encode()).await?;
        let reply = timeout(Duration::from_secs(2), receiver.recv()).await??;
        let decoded = Wire::decode(&reply)?;
        assert!(matches!(decoded, Wire::Hello(ref r) if r.record.id == NodeId(0)), "{decoded:?}");
        Ok(())
    });
    sim.run().expect("the node survives hostile peers");
}

/// Counts the dials a node makes: what the harness sees, not what the node says.
struct Counting {
    inner: TurmoilTransport,
    dials: Arc<AtomicUsize>,
}

impl Transport for Counting {
    type Listener = <TurmoilTransport as Transport>::Listener;
    type Connection = <TurmoilTransport as Transport>::Connection;

    fn listen(&self, addr: SocketAddr) -> impl Future<Output = Result<Self::Listener, TransportError>> + Send {
        self.inner.listen(addr)
    }

    fn connect(&self, addr: SocketAddr) -> impl Future<Output = Result<Self::Connection, TransportError>> + Send {
        self.dials.fetch_add(1, Ordering::SeqCst);
        self.inner.connect(addr)
    }
}

#[test]
fn fake_members_stay_bounded_and_cost_a_capped_dial_rate() {
    let mut sim = turmoil::Builder::new().simulation_duration(Duration::from_secs(60)).build();
    let node_addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 168, 0, 1)), 7000);
    let dials = Arc::new(AtomicUsize::new(0));
    let (peers_tx, peers_rx) = std::sync::mpsc::channel();
    let counted = dials.clone();
    sim.host("node", move || {
        let (dials, peers_tx) = (counted.clone(), peers_tx.clone());
        async move {
            let config = NodeConfig { max_members: 100, ..NodeConfig::new(NodeId(0), node_addr) };
            let node = Node::start(config, Counting { inner: transport("node"), dials }).await?;
            let mut incoming = node.incoming;
            tokio::time::sleep(Duration::from_secs(12)).await;
            peers_tx.send(node.peers.borrow().len()).unwrap();
            let _keep = (node.handle, &mut incoming);
            std::future::pending::<()>().await;
            Ok(())
        }
    });
    sim.host("honest", move || async move {
        let config = NodeConfig {
            seeds: vec![node_addr],
            ..NodeConfig::new(NodeId(1), SocketAddr::new(turmoil::lookup("honest"), 7000))
        };
        let mut node = Node::start(config, transport("honest")).await?;
        std::future::pending::<()>().await;
        let _ = node.incoming.recv().await;
        Ok(())
    });
    sim.client("evil", async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (mut sender, mut receiver) = transport("evil").connect(node_addr).await?.split();
        let me = MemberRecord {
            id: NodeId(99),
            incarnation: 0,
            version: 0,
            addr: SocketAddr::new(turmoil::lookup("evil"), 7000),
        };
        sender.send(Wire::Hello(SignedRecord::unsigned(me)).encode()).await?;
        timeout(Duration::from_secs(2), receiver.recv()).await??;
        // 10,000 members on addresses where nobody answers.
        let fakes = (0..10_000u32)
            .map(|i| {
                let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 9, (i >> 8) as u8, i as u8)), 7000);
                SignedRecord::unsigned(MemberRecord { id: NodeId(1000 + i), incarnation: 0, version: 0, addr })
            })
            .collect();
        sender.send(Wire::Gossip(fakes).encode()).await?;
        let before = dials.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(10)).await;
        let dialled = dials.load(Ordering::SeqCst) - before;
        assert!(dialled >= 16, "the fakes were never dialled ({dialled})");
        assert!((dialled as f64) / 10.0 < 10.0, "{dialled} dials in 10 s to fake members");
        Ok(())
    });
    sim.client("check", async move {
        tokio::time::sleep(Duration::from_secs(13)).await;
        let known = peers_rx.try_recv().expect("the node reported its view");
        // Full (the fakes were believed, up to the bound), never beyond.
        assert_eq!(known, 100, "the view holds {known} members");
        Ok(())
    });
    sim.run().expect("fake members stay bounded");
}

//! A hostile peer on the simulated network: oversized and garbage frames
//! close its connection; the node survives and keeps serving others.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tandem::transport::{Connection, Framing, MessageReceiver, MessageSender, Transport};
use tandem_pubsub::node::wire::{MemberRecord, Wire};
use tandem_pubsub::node::{Node, NodeConfig, NodeId};
use tandem_sim::{LossTable, QuicModel, SimTransport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;
use turmoil::net::TcpStream;

fn transport(host: &str) -> SimTransport {
    SimTransport::new(turmoil::lookup(host), Framing::default(), QuicModel::default(), LossTable::new(0.0), 1)
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
        let hello = Wire::Hello(MemberRecord {
            id: NodeId(1),
            incarnation: 0,
            version: 0,
            addr: SocketAddr::new(turmoil::lookup("good"), 7000),
        });
        sender.send(hello.encode()).await?;
        let reply = timeout(Duration::from_secs(2), receiver.recv()).await??;
        let decoded = Wire::decode(&reply)?;
        assert!(matches!(decoded, Wire::Hello(r) if r.id == NodeId(0)), "{decoded:?}");
        Ok(())
    });
    sim.run().expect("the node survives hostile peers");
}

//! A hostile peer on the simulated network: an oversized frame and a frame
//! that is no message each close their connection; the node survives and
//! keeps serving its clients.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tandem::{FailStop, Framing, Knobs, NodeContext, Observer, Probe, Storage};
use tandem_primary::node::{Bugs, PrimaryNode, Timing};
use tandem_primary::wire::{ClientOp, Reply};
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
fn malformed_frames_close_their_connection_and_the_node_keeps_serving() {
    let mut sim = turmoil::Builder::new().build();
    let node_addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 168, 0, 1)), 7000);
    sim.client("node", async move {
        // A cluster of one: the node is its own majority.
        let ctx = NodeContext::<tandem_primary::PrimaryObservation, TurmoilTransport> {
            index: 0,
            incarnation: 0,
            listen: node_addr,
            addrs: vec![node_addr],
            seeds: vec![0],
            rng_seed: 1,
            run_id: 1,
            storage: Storage::in_memory(),
            transport: transport("node"),
            observer: Observer::discard(),
            probe: Probe::disabled(),
            fail_stop: FailStop::new(|why| panic!("the node fail-stopped: {why}")),
            planted_bug: None,
            knobs: Knobs::default(),
            identities: vec![None],
            secret: None,
            verifying_keys: vec![None],
        };
        let node = PrimaryNode::start(ctx, Timing::default(), Bugs::default()).await?;
        // The attacks happen meanwhile.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let append = ClientOp::Append { key: "a".into(), value: "x".into() };
        assert_eq!(node.call(1, append).await.expect("the append is served"), Reply::Done);
        let read = node.call(2, ClientOp::Get { key: "a".into() }).await.expect("the read is served");
        assert_eq!(read, Reply::Value(Some(vec!["x".to_string()])));
        Ok(())
    });
    sim.client("evil", async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        // 4 GiB announced: refused without allocating it.
        assert!(node_hangs_up_on(node_addr, &[0xff, 0xff, 0xff, 0xff, 1, 2, 3]).await, "oversized frame");
        // A well-sized frame that is not a message.
        assert!(node_hangs_up_on(node_addr, &[0, 0, 0, 3, 0xde, 0xad, 0xbe]).await, "garbage frame");
        // A whole message (a stray response, ignored), then garbage.
        let bogus =
            tandem_primary::wire::encode(&tandem_primary::wire::Message::Response { id: 1, answer: Ok(Reply::Done) });
        let mut framed = (bogus.len() as u32).to_be_bytes().to_vec();
        framed.extend_from_slice(&bogus);
        framed.extend_from_slice(&[0, 0, 0, 2, 9, 9]);
        assert!(node_hangs_up_on(node_addr, &framed).await, "a message, then garbage");
        Ok(())
    });
    sim.run().expect("the node survives hostile peers");
}

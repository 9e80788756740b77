//! The node on an in-memory transport, under tokio's paused clock: no
//! simulator needed.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tandem::{
    Connection, ConnectionInfo, Framing, Listener, MessageReceiver, MessageSender, Transport, TransportError,
};
use tokio::sync::mpsc;

use super::*;
use crate::wire::{self, Body, Member, Message};

/// Listeners by address; connections are pairs of channels.
#[derive(Clone, Default)]
struct Net {
    listeners: Arc<Mutex<BTreeMap<SocketAddr, mpsc::UnboundedSender<MemConn>>>>,
    next_port: Arc<Mutex<u16>>,
}

#[derive(Clone)]
struct Mem {
    net: Net,
    ip: IpAddr,
}

struct MemListener {
    addr: SocketAddr,
    incoming: mpsc::UnboundedReceiver<MemConn>,
}

struct MemConn {
    info: ConnectionInfo,
    tx: mpsc::UnboundedSender<Bytes>,
    rx: mpsc::UnboundedReceiver<Bytes>,
}

struct MemSender(Option<mpsc::UnboundedSender<Bytes>>);
struct MemReceiver(mpsc::UnboundedReceiver<Bytes>);

impl Transport for Mem {
    type Listener = MemListener;
    type Connection = MemConn;

    async fn listen(&self, addr: SocketAddr) -> Result<MemListener, TransportError> {
        let addr = if addr.port() == 0 {
            let mut port = self.net.next_port.lock().unwrap();
            *port += 1;
            SocketAddr::new(self.ip, 20000 + *port)
        } else {
            addr
        };
        let (tx, incoming) = mpsc::unbounded_channel();
        let mut listeners = self.net.listeners.lock().unwrap();
        if listeners.get(&addr).is_some_and(|l| !l.is_closed()) {
            return Err(TransportError::Listen(format!("{addr} in use")));
        }
        listeners.insert(addr, tx);
        Ok(MemListener { addr, incoming })
    }

    async fn connect(&self, addr: SocketAddr) -> Result<MemConn, TransportError> {
        let listener = self.net.listeners.lock().unwrap().get(&addr).cloned();
        let listener = listener.ok_or_else(|| TransportError::Refused(addr.to_string()))?;
        let local = SocketAddr::new(self.ip, 40000);
        let (a_tx, a_rx) = mpsc::unbounded_channel();
        let (b_tx, b_rx) = mpsc::unbounded_channel();
        let theirs =
            MemConn { info: ConnectionInfo { local: addr, remote: local, peer_identity: None }, tx: b_tx, rx: a_rx };
        listener.send(theirs).map_err(|_| TransportError::Refused(addr.to_string()))?;
        Ok(MemConn { info: ConnectionInfo { local, remote: addr, peer_identity: None }, tx: a_tx, rx: b_rx })
    }
}

impl Listener for MemListener {
    type Connection = MemConn;

    fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    async fn accept(&mut self) -> Result<MemConn, TransportError> {
        self.incoming.recv().await.ok_or(TransportError::Closed)
    }
}

impl Connection for MemConn {
    type Sender = MemSender;
    type Receiver = MemReceiver;

    fn info(&self) -> ConnectionInfo {
        self.info.clone()
    }

    fn split(self) -> (MemSender, MemReceiver) {
        (MemSender(Some(self.tx)), MemReceiver(self.rx))
    }
}

impl MessageSender for MemSender {
    async fn send(&mut self, message: Bytes) -> Result<(), TransportError> {
        self.0.as_ref().ok_or(TransportError::Closed)?.send(message).map_err(|_| TransportError::Closed)
    }

    async fn close(&mut self) {
        self.0 = None;
    }
}

impl MessageReceiver for MemReceiver {
    async fn recv(&mut self) -> Result<Bytes, TransportError> {
        self.0.recv().await.ok_or(TransportError::Closed)
    }
}

fn addrs(n: u8) -> Vec<SocketAddr> {
    (0..n).map(|i| SocketAddr::new(IpAddr::from([10, 0, 0, i + 1]), 7000)).collect()
}

fn transport(net: &Net, addr: SocketAddr) -> Mem {
    Mem { net: net.clone(), ip: addr.ip() }
}

async fn start(net: &Net, index: u32, incarnation: u64, addrs: &[SocketAddr]) -> KvNode {
    let config = Config { incarnation, listen: addrs[index as usize], ..Config::new(index, addrs.to_vec()) };
    KvNode::start(config, transport(net, addrs[index as usize])).await.unwrap()
}

/// Waits (paused time: instantly) until `node` reads `value` at `key`.
async fn until_holds(node: &KvNode, key: &str, value: Option<&str>) {
    for _ in 0..200 {
        if node.get(key).await.unwrap().as_deref() == value {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("node {} never held {key} = {value:?}: {:?}", node.index(), node.snapshot().await);
}

#[tokio::test(start_paused = true)]
async fn writes_and_deletes_replicate() {
    let net = Net::default();
    let addrs = addrs(3);
    let mut nodes = Vec::new();
    for i in 0..3 {
        nodes.push(start(&net, i, 0, &addrs).await);
    }
    nodes[0].put("a", "1").await.unwrap();
    nodes[1].put("b", "2").await.unwrap();
    until_holds(&nodes[2], "a", Some("1")).await;
    until_holds(&nodes[2], "b", Some("2")).await;
    nodes[2].delete("a").await.unwrap();
    until_holds(&nodes[0], "a", None).await;
    let expected = BTreeMap::from([("b".to_string(), "2".to_string())]);
    for node in &nodes {
        until_holds(node, "a", None).await;
        assert_eq!(node.snapshot().await.unwrap(), expected);
    }
}

#[tokio::test(start_paused = true)]
async fn a_restarted_node_catches_up_and_its_writes_win() {
    let net = Net::default();
    let addrs = addrs(2);
    let a = start(&net, 0, 0, &addrs).await;
    let b = start(&net, 1, 0, &addrs).await;
    for i in 0..5 {
        a.put("k", format!("a{i}")).await.unwrap();
    }
    until_holds(&b, "k", Some("a4")).await;
    b.shutdown().await;
    a.put("later", "x").await.unwrap();
    let b = start(&net, 1, 1, &addrs).await;
    until_holds(&b, "k", Some("a4")).await;
    until_holds(&b, "later", Some("x")).await;
    // Having caught up, its clock is past a's writes: its own write wins everywhere.
    b.put("k", "b").await.unwrap();
    until_holds(&a, "k", Some("b")).await;
}

#[tokio::test(start_paused = true)]
async fn peers_follow_a_rebind() {
    let net = Net::default();
    let addrs = addrs(3);
    let nodes = [start(&net, 0, 0, &addrs).await, start(&net, 1, 0, &addrs).await, start(&net, 2, 0, &addrs).await];
    nodes[0].put("before", "1").await.unwrap();
    until_holds(&nodes[1], "before", Some("1")).await;
    let old = nodes[1].addr();
    let new = nodes[1].rebind(SocketAddr::new(old.ip(), 0)).await.unwrap();
    assert_ne!(new, old);
    assert_eq!(nodes[1].addr(), new);
    // The old address is gone: nobody can dial it.
    assert!(transport(&net, addrs[0]).connect(old).await.is_err());
    nodes[0].put("after", "2").await.unwrap();
    nodes[1].put("from-mover", "3").await.unwrap();
    until_holds(&nodes[1], "after", Some("2")).await;
    until_holds(&nodes[2], "from-mover", Some("3")).await;
    until_holds(&nodes[0], "from-mover", Some("3")).await;
}

/// A raw client's connection to node 0's listener.
async fn raw_connection(net: &Net, to: SocketAddr) -> (MemSender, MemReceiver) {
    transport(net, SocketAddr::from(([10, 0, 0, 99], 1))).connect(to).await.unwrap().split()
}

async fn closed(receiver: &mut MemReceiver) -> bool {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), receiver.recv()).await {
            Ok(Ok(_)) => continue, // The node's own messages.
            Ok(Err(_)) => return true,
            Err(_) => return false,
        }
    }
}

#[tokio::test(start_paused = true)]
async fn malformed_or_oversized_frames_close_the_connection_only() {
    let net = Net::default();
    let addrs = addrs(2);
    let node = start(&net, 0, 0, &addrs).await;
    let framing = Framing::new(DEFAULT_MAX_FRAME);
    let bad_frames: Vec<Bytes> = vec![
        framing.encode(b"\x63garbage").unwrap(), // another wire version
        framing.encode(&[wire::WIRE_VERSION, 0xff, 0xff, 0xff]).unwrap(), // undecodable
        Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3]), // 4 GiB announced
    ];
    for frame in bad_frames {
        let (mut sender, mut receiver) = raw_connection(&net, node.addr()).await;
        sender.send(frame).await.unwrap();
        assert!(closed(&mut receiver).await, "the node closes the connection");
    }
    // A message claiming to come from the node itself, or from no node of the cluster.
    for index in [0, 7] {
        let (mut sender, mut receiver) = raw_connection(&net, node.addr()).await;
        let from = Member { index, incarnation: 0, epoch: 0, addr: addrs[0] };
        let frame = wire::encode(&framing, &Message { from, body: Body::Digest { versions: vec![] } }).unwrap();
        sender.send(frame).await.unwrap();
        assert!(closed(&mut receiver).await);
    }
    // The node still serves, and a well-formed peer still syncs with it.
    node.put("k", "v").await.unwrap();
    let (mut sender, mut receiver) = raw_connection(&net, node.addr()).await;
    let from = Member { index: 1, incarnation: 0, epoch: 0, addr: addrs[1] };
    let frame = wire::encode(&framing, &Message { from, body: Body::Digest { versions: vec![] } }).unwrap();
    sender.send(frame).await.unwrap();
    let reply = receiver.recv().await.unwrap();
    match wire::decode(&reply[4..]).unwrap().body {
        Body::Entries { entries, want, repair } => {
            assert!(repair && want.is_empty());
            assert_eq!(entries.len(), 1);
            assert_eq!(entries[0].1.value.as_deref(), Some("v"));
        }
        other => panic!("expected entries, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn unreachable_peers_are_redialled_with_capped_backoff() {
    let net = Net::default();
    let addrs = addrs(2);
    let node = start(&net, 0, 0, &addrs).await;
    node.put("k", "v").await.unwrap();
    // Node 1 comes up 20 s later, with a wrong address for node 0: only node
    // 0's redials (at most 1 s apart) can bring them together, and node 1
    // learns node 0's address from its messages.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let mut wrong = addrs.clone();
    wrong[0].set_port(1);
    let config = Config { listen: addrs[1], ..Config::new(1, wrong) };
    let late = KvNode::start(config, transport(&net, addrs[1])).await.unwrap();
    let started = tokio::time::Instant::now();
    until_holds(&late, "k", Some("v")).await;
    assert!(started.elapsed() <= Duration::from_millis(1500), "caught up in {:?}", started.elapsed());
}

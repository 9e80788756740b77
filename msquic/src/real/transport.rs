//! [`RelayedTransport`]: a node's transport whose dials to other nodes go
//! through fault-injecting relays.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tandem::scenario::NodeIdx;
use tandem::transport::{Listener, Transport, TransportError};
use tokio::runtime::Handle;

use super::faults::FaultTable;
use super::relay::Relay;

/// How often a patient listen tries its port again while it is taken.
const LISTEN_RETRY: Duration = Duration::from_millis(50);

/// The relays of a real cluster and the map from listen addresses to nodes.
#[derive(Debug)]
pub struct RelayNet {
    faults: FaultTable,
    directory: Mutex<Directory>,
    relays: tokio::sync::Mutex<BTreeMap<(NodeIdx, SocketAddr), Relay>>,
    /// The runtime the relays run on, whichever node's dial starts them.
    relays_on: Handle,
}

/// Which node each node address belongs to, and where a node listens now.
#[derive(Debug, Default)]
struct Directory {
    /// Every address a node was given or listened at, and the node.
    nodes: BTreeMap<SocketAddr, NodeIdx>,
    /// The listeners open at each address.
    listening: BTreeMap<SocketAddr, usize>,
}

impl RelayNet {
    /// A network applying `faults` between nodes that will listen at
    /// `node_addrs` (node `i` at `node_addrs[i]`), its relays running on
    /// `relays_on` (not on a node's runtime: a paused or crashed node stops
    /// none of them).
    pub fn new(faults: FaultTable, node_addrs: &[SocketAddr], relays_on: Handle) -> Arc<Self> {
        let nodes = node_addrs.iter().enumerate().map(|(node, &addr)| (addr, node as NodeIdx)).collect();
        let directory = Mutex::new(Directory { nodes, listening: BTreeMap::new() });
        Arc::new(RelayNet { faults, directory, relays: Default::default(), relays_on })
    }

    /// The faults the relays apply.
    pub fn faults(&self) -> &FaultTable {
        &self.faults
    }

    fn directory(&self) -> std::sync::MutexGuard<'_, Directory> {
        self.directory.lock().expect("directory lock")
    }

    /// Records that `node` listens at `addr` (every listen of a node's transport).
    fn register(&self, addr: SocketAddr, node: NodeIdx) {
        let mut directory = self.directory();
        directory.nodes.insert(addr, node);
        *directory.listening.entry(addr).or_default() += 1;
    }

    /// Records that a listener at `addr` closed.
    fn unregister(&self, addr: SocketAddr) {
        let mut directory = self.directory();
        if let Some(open) = directory.listening.get_mut(&addr) {
            *open -= 1;
            if *open == 0 {
                directory.listening.remove(&addr);
            }
        }
    }

    /// The address `client` should dial to reach `target`: a relay when
    /// `target` is a node's address, `target` itself when it is no node's.
    /// Where the node does not listen now (not started yet, crashed, moved
    /// away), the dial is refused at once, as the closed port would refuse
    /// it, unless a partition cuts the link (then nothing would come back,
    /// and the dial times out through the relay). Never dialled directly:
    /// the connection could reach the node once it listens and bypass every
    /// fault.
    async fn route(&self, client: NodeIdx, target: SocketAddr) -> Result<SocketAddr, TransportError> {
        let (server, listening) = {
            let directory = self.directory();
            let Some(&server) = directory.nodes.get(&target) else {
                return Ok(target);
            };
            (server, directory.listening.contains_key(&target))
        };
        if !listening && !self.faults.partitioned(client, server) && !self.faults.partitioned(server, client) {
            return Err(TransportError::Refused(format!("node {server} does not listen at {target}")));
        }
        let mut relays = self.relays.lock().await;
        if let Some(relay) = relays.get(&(client, target)) {
            return Ok(relay.addr());
        }
        let started = self.relays_on.spawn(Relay::start(client, server, target, self.faults.clone())).await;
        let relay = started
            .map_err(|e| e.to_string())
            .and_then(|relay| relay.map_err(|e| e.to_string()))
            .map_err(|e| TransportError::Refused(format!("cannot start a relay: {e}")))?;
        let addr = relay.addr();
        relays.insert((client, target), relay);
        Ok(addr)
    }
}

/// A node's listener: while it is open, dials to its address cross the
/// node's relays; once it closes, they are refused.
#[derive(Debug)]
pub struct RelayedListener<L> {
    inner: L,
    addr: SocketAddr,
    net: Arc<RelayNet>,
}

impl<L: Listener> Listener for RelayedListener<L> {
    type Connection = L::Connection;

    fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    fn accept(&mut self) -> impl std::future::Future<Output = Result<L::Connection, TransportError>> + Send {
        self.inner.accept()
    }
}

impl<L> Drop for RelayedListener<L> {
    fn drop(&mut self) {
        self.net.unregister(self.addr);
    }
}

/// Wraps node `node`'s transport so that its dials cross relays.
#[derive(Debug)]
pub struct RelayedTransport<T> {
    inner: T,
    node: NodeIdx,
    net: Arc<RelayNet>,
    patience: Option<Instant>,
}

impl<T: Transport> RelayedTransport<T> {
    /// `inner` for node `node` on `net`.
    pub fn new(inner: T, node: NodeIdx, net: Arc<RelayNet>) -> Self {
        RelayedTransport { inner, node, net, patience: None }
    }

    /// Until `deadline`, a listen on a given port that finds it taken tries
    /// again instead of failing: a restarted node binds its old address
    /// while the previous incarnation's socket is still closing.
    pub fn patient_until(mut self, deadline: Instant) -> Self {
        self.patience = Some(deadline);
        self
    }
}

impl<T: Transport> Transport for RelayedTransport<T> {
    type Listener = RelayedListener<T::Listener>;
    type Connection = T::Connection;

    async fn listen(&self, addr: SocketAddr) -> Result<RelayedListener<T::Listener>, TransportError> {
        let listener = loop {
            match self.inner.listen(addr).await {
                Ok(listener) => break listener,
                // Real network only (wall-clock time): the OS gives no signal
                // when a closing socket lets go of its port, so try again.
                Err(TransportError::Listen(_))
                    if addr.port() != 0 && self.patience.is_some_and(|d| Instant::now() < d) =>
                {
                    tokio::time::sleep(LISTEN_RETRY).await;
                }
                Err(error) => return Err(error),
            }
        };
        // Known before the node can advertise it, so no dial ever bypasses a relay.
        let addr = listener.local_addr();
        self.net.register(addr, self.node);
        Ok(RelayedListener { inner: listener, addr, net: self.net.clone() })
    }

    async fn connect(&self, addr: SocketAddr) -> Result<T::Connection, TransportError> {
        let via = self.net.route(self.node, addr).await?;
        self.inner.connect(via).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::{Limits, MsQuicConfig, MsQuicTransport};
    use std::net::Ipv4Addr;
    use tandem::scenario::{LatencyRange, LinkChange, Network, Scope};
    use tandem::transport::Connection;

    fn quic() -> MsQuicTransport {
        MsQuicTransport::new(MsQuicConfig::default()).expect("transport")
    }

    fn no_faults() -> FaultTable {
        FaultTable::new(&Network { latency: LatencyRange::fixed(Duration::ZERO), loss: 0.0 })
    }

    /// A port on 127.0.0.1 that nothing listens at.
    fn free_addr() -> SocketAddr {
        let socket = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("a free port");
        socket.local_addr().expect("its address")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dial_to_a_node_that_does_not_listen_is_refused_and_never_bypasses_its_relay() {
        let addr = free_addr();
        let net = RelayNet::new(no_faults(), &[free_addr(), addr], Handle::current());
        // Node 0 dials once a second: a dial waits its turn after its route
        // is chosen, long enough for node 1 to start listening meanwhile.
        let limits = Limits { max_dials_per_second: 1, ..Limits::default() };
        let slow = MsQuicTransport::new(MsQuicConfig::default().with_limits(limits)).expect("transport");
        let dialler = Arc::new(RelayedTransport::new(slow, 0, net.clone()));
        // This second's turn: no node's address, dialled directly, refused by the OS.
        assert!(dialler.connect(free_addr()).await.is_err());
        let early = tokio::spawn({
            let dialler = dialler.clone();
            async move { dialler.connect(addr).await.map(|connection| connection.info()) }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let node = RelayedTransport::new(quic(), 1, net.clone());
        let mut listener = node.listen(addr).await.expect("listen");
        // Refused, as the closed port would: never sent there directly, where
        // it would have reached the listener and bypassed every fault.
        let early = tokio::time::timeout(Duration::from_secs(10), early).await.expect("in time").unwrap();
        assert!(matches!(early, Err(TransportError::Refused(_))), "{early:?}");

        // Once the node listens, dials cross its relay: it sees the relay's
        // address, not the dialler's.
        let outgoing = tokio::time::timeout(Duration::from_secs(10), dialler.connect(addr)).await.expect("in time");
        let incoming = tokio::time::timeout(Duration::from_secs(10), listener.accept()).await.expect("in time");
        let (outgoing, incoming) = (outgoing.expect("connect"), incoming.expect("accept"));
        assert_ne!(incoming.info().remote, outgoing.info().local, "the connection bypassed the relay");

        // Once it stops listening (a crash), dials are refused at once, as
        // its closed port would refuse them...
        drop(listener);
        let started = Instant::now();
        let refused = dialler.connect(addr).await.map(|connection| connection.info());
        assert!(matches!(refused, Err(TransportError::Refused(_))), "{refused:?}");
        assert!(started.elapsed() < Duration::from_millis(500), "refused only after {:?}", started.elapsed());
        // ... unless a partition cuts the link: then they go to the relay.
        net.faults().apply(&LinkChange::Partition { oneway: true }, &Scope::Between { a: vec![1], b: vec![0] });
        assert_ne!(net.route(0, addr).await.expect("a relay"), addr);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_patient_listen_waits_for_its_port_and_registers_it() {
        let net = RelayNet::new(no_faults(), &[], Handle::current());
        let old = quic();
        let held = old.listen(SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("listen");
        let addr = held.local_addr();

        // Without patience, or once it has run out, a taken port fails at once.
        let impatient = RelayedTransport::new(quic(), 1, net.clone());
        assert!(matches!(impatient.listen(addr).await, Err(TransportError::Listen(_))));
        let expired = RelayedTransport::new(quic(), 1, net.clone()).patient_until(Instant::now());
        assert!(matches!(expired.listen(addr).await, Err(TransportError::Listen(_))));

        // With patience, the listen waits while the port is taken...
        let patient =
            RelayedTransport::new(quic(), 1, net.clone()).patient_until(Instant::now() + Duration::from_secs(5));
        let mut waiting = tokio::spawn(async move {
            let listener = patient.listen(addr).await;
            (listener, patient)
        });
        assert!(
            tokio::time::timeout(Duration::from_millis(200), &mut waiting).await.is_err(),
            "the port is still taken"
        );
        // ... and binds it once the previous owner lets go.
        drop(held);
        let (listener, _patient) =
            tokio::time::timeout(Duration::from_secs(10), waiting).await.expect("in time").unwrap();
        let listener = listener.expect("listen");
        assert_eq!(listener.local_addr(), addr);
        assert_eq!(net.directory().nodes.get(&addr), Some(&1), "dials to it cross a relay");
        assert!(net.directory().listening.contains_key(&addr), "while it listens");
    }
}

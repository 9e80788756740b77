//! [`RelayedTransport`]: a node's transport whose dials to other nodes go
//! through fault-injecting relays.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tandem::scenario::NodeIdx;
use tandem::transport::{Listener, Transport, TransportError};

use super::faults::FaultTable;
use super::relay::Relay;

/// How often a patient listen tries its port again while it is taken.
const LISTEN_RETRY: Duration = Duration::from_millis(50);

/// The relays of a real cluster and the map from listen addresses to nodes.
#[derive(Debug)]
pub struct RelayNet {
    faults: FaultTable,
    directory: Mutex<BTreeMap<SocketAddr, NodeIdx>>,
    relays: tokio::sync::Mutex<BTreeMap<(NodeIdx, SocketAddr), Relay>>,
}

impl RelayNet {
    /// A network applying `faults`.
    pub fn new(faults: FaultTable) -> Arc<Self> {
        Arc::new(RelayNet { faults, directory: Mutex::new(BTreeMap::new()), relays: Default::default() })
    }

    /// The faults the relays apply.
    pub fn faults(&self) -> &FaultTable {
        &self.faults
    }

    /// Records that `node` listens at `addr` (every listen of a node's transport).
    fn register(&self, addr: SocketAddr, node: NodeIdx) {
        self.directory.lock().expect("directory lock").insert(addr, node);
    }

    /// The address `client` should dial to reach `target`: a relay when
    /// `target` is a node's listener, `target` itself otherwise.
    async fn route(&self, client: NodeIdx, target: SocketAddr) -> Result<SocketAddr, TransportError> {
        let Some(server) = self.directory.lock().expect("directory lock").get(&target).copied() else {
            return Ok(target);
        };
        let mut relays = self.relays.lock().await;
        if let Some(relay) = relays.get(&(client, target)) {
            return Ok(relay.addr());
        }
        let relay = Relay::start(client, server, target, self.faults.clone())
            .await
            .map_err(|e| TransportError::Refused(format!("cannot start a relay: {e}")))?;
        let addr = relay.addr();
        relays.insert((client, target), relay);
        Ok(addr)
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
    type Listener = T::Listener;
    type Connection = T::Connection;

    async fn listen(&self, addr: SocketAddr) -> Result<T::Listener, TransportError> {
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
        self.net.register(listener.local_addr(), self.node);
        Ok(listener)
    }

    async fn connect(&self, addr: SocketAddr) -> Result<T::Connection, TransportError> {
        let via = self.net.route(self.node, addr).await?;
        self.inner.connect(via).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::{MsQuicConfig, MsQuicTransport};
    use tandem::scenario::{LatencyRange, Network};

    fn quic() -> MsQuicTransport {
        MsQuicTransport::new(MsQuicConfig::default()).expect("transport")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_patient_listen_waits_for_its_port_and_registers_it() {
        let net = RelayNet::new(FaultTable::new(&Network { latency: LatencyRange::fixed(Duration::ZERO), loss: 0.0 }));
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
        assert_eq!(listener.expect("listen").local_addr(), addr);
        assert_eq!(net.directory.lock().unwrap().get(&addr), Some(&1), "dials to it cross a relay");
    }
}

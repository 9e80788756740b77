//! [`RelayedTransport`]: a node's transport whose dials to other nodes go
//! through fault-injecting relays.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use super::faults::FaultTable;
use super::relay::Relay;
use crate::transport::{Listener, Transport, TransportError};

/// The relays of a real cluster and the map from listen addresses to nodes.
#[derive(Debug)]
pub struct RelayNet {
    faults: FaultTable,
    directory: Mutex<BTreeMap<SocketAddr, u32>>,
    relays: tokio::sync::Mutex<BTreeMap<(u32, SocketAddr), Relay>>,
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
    fn register(&self, addr: SocketAddr, node: u32) {
        self.directory.lock().expect("directory lock").insert(addr, node);
    }

    /// The address `client` should dial to reach `target`: a relay when
    /// `target` is a node's listener, `target` itself otherwise.
    async fn route(&self, client: u32, target: SocketAddr) -> Result<SocketAddr, TransportError> {
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
    node: u32,
    net: Arc<RelayNet>,
}

impl<T: Transport> RelayedTransport<T> {
    /// `inner` for node `node` on `net`.
    pub fn new(inner: T, node: u32, net: Arc<RelayNet>) -> Self {
        RelayedTransport { inner, node, net }
    }
}

impl<T: Transport> Transport for RelayedTransport<T> {
    type Listener = T::Listener;
    type Connection = T::Connection;

    async fn listen(&self, addr: SocketAddr) -> Result<T::Listener, TransportError> {
        let listener = self.inner.listen(addr).await?;
        // Known before the node can advertise it, so no dial ever bypasses a relay.
        self.net.register(listener.local_addr(), self.node);
        Ok(listener)
    }

    async fn connect(&self, addr: SocketAddr) -> Result<T::Connection, TransportError> {
        let via = self.net.route(self.node, addr).await?;
        self.inner.connect(via).await
    }
}

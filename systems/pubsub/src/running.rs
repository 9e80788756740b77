//! [`Running`]: a started node as the adapter holds it, and the task that
//! forwards what it delivers and sees to the harness.

use std::net::SocketAddr;

use tandem::Observer;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::node::{BroadcastSender, Delivery, DirectSender, Node, NodeHandle, PeerMap};
use crate::observation::Observation;

/// A running pub/sub node: the [`Adapter::Node`](tandem::Adapter::Node) of
/// [`PubSub`](crate::PubSub).
#[derive(Debug)]
pub struct Running {
    /// Controls the node; dropping it stops the node.
    pub handle: NodeHandle,
    /// Sends direct messages.
    pub direct: DirectSender,
    /// Sends broadcasts.
    pub broadcast: BroadcastSender,
    /// Forwards deliveries and views to the harness.
    forward: JoinHandle<()>,
}

impl Running {
    /// Takes over a started node: one task forwards what it delivers and
    /// every change of its view to `observer`.
    pub fn new(node: Node, observer: Observer<Observation>) -> Running {
        let Node { handle, direct, broadcast, peers, incoming } = node;
        let forward = tokio::spawn(forward(incoming, peers, observer));
        Running { handle, direct, broadcast, forward }
    }

    /// Where the node listens now.
    pub fn addr(&self) -> SocketAddr {
        self.handle.addr()
    }

    /// Stops the node: its tasks end and its connections drop; then the
    /// forwarding task hands over what the node delivered before it stopped
    /// and ends. Dropping a `Running` stops the node too (the forwarding
    /// task then ends by itself).
    pub async fn stop(self) {
        let Running { handle, forward, .. } = self;
        handle.shutdown().await;
        let _ = forward.await;
    }
}

/// Forwards deliveries (first) and views until the node has stopped and
/// everything it delivered is forwarded.
async fn forward(
    mut incoming: mpsc::UnboundedReceiver<Delivery>,
    mut peers: watch::Receiver<PeerMap>,
    observer: Observer<Observation>,
) {
    loop {
        tokio::select! {
            biased;
            Some(delivery) = incoming.recv() => observer.observe(Observation::delivered(&delivery)),
            Ok(()) = peers.changed() => {
                let view = peers.borrow_and_update().clone();
                observer.observe(Observation::View { peers: view });
            }
            else => return,
        }
    }
}

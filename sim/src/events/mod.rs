//! The discrete-event simulation backend, the default: a system's nodes as
//! tasks of one current-thread tokio runtime whose paused clock jumps to the
//! next timer whenever every task waits, on a simulated network of its own
//! ([`Network`]) that models the same QUIC behaviour as the turmoil backend
//! ([`crate::quic`]). A run costs what happens in it, not how long it lasts
//! or how many nodes idle through it.

mod cluster;
mod network;
mod transport;

pub use cluster::EventCluster;
pub use network::{host_ip, Network, World};
pub use transport::{EventConnection, EventListener, EventReceiver, EventSender, EventTransport};

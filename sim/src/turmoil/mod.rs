//! The turmoil backend: a system's nodes as turmoil 0.7 hosts, every host
//! stepped every tick, over turmoil's TCP with the QUIC behaviour of
//! [`crate::quic`] layered on it.

mod cluster;
mod net;
mod transport;

pub use cluster::{network, TurmoilCluster};
pub use net::LinkTable;
pub use transport::{TurmoilConnection, TurmoilListener, TurmoilReceiver, TurmoilSender, TurmoilTransport};

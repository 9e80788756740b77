//! # tandem-msquic
//!
//! tandem's real network. Two parts:
//!
//! - [`transport`]: [`MsQuicTransport`], an implementation of
//!   [`tandem::transport::Transport`] over MsQuic (QUIC + TLS 1.3, ALPN
//!   [`ALPN`]), with pinned or open trust ([`TrustPolicy`]) and per-node TLS
//!   identities ([`TlsIdentity`]). A node written against `Transport` runs
//!   on it unchanged.
//! - [`real`]: [`RealCluster`], any [`tandem::System`]'s nodes over MsQuic
//!   on loopback, hosted by [`tandem::engine::host`] and driven through
//!   [`tandem::engine::cluster::Cluster`], with partitions, loss and latency
//!   injected by UDP relays; [`run_real`] runs a scenario on it.
//!
//! Everything here uses the real network and wall-clock time; nothing of it
//! runs in the simulation.
//!
//! A scenario of the reference pub/sub system over MsQuic:
//!
//! ```
//! use std::sync::Arc;
//! use tandem::scenario::Scenario;
//! use tandem_pubsub::PubSub;
//!
//! let text = r#"
//! nodes = 2
//! seeds = [0, 1]
//! duration = "500ms"
//! settle = "200ms"
//!
//! [[step]]
//! await = { converged = true, timeout = "5s" }
//! [[step]]
//! broadcast = { from = 0, tag = "hello" }
//! [[step]]
//! await = { node = 1, received = 1, timeout = "5s" }
//!
//! [[expect]]
//! node = 1
//! received_tags = ["hello"]
//! "#;
//! let scenario = Scenario::parse(text, "hello.toml", &PubSub).unwrap();
//! let run = tandem_msquic::run_real(Arc::new(PubSub), &scenario).unwrap();
//! assert!(run.outcome.passed(), "{:?}", run.outcome.failure);
//! ```

#![warn(missing_docs)]

pub mod real;
pub mod transport;

pub use real::{node_secret, run_real, verifying_key, RealCluster, RealOptions};
pub use transport::{
    close, identity_of, Limits, MsQuicConfig, MsQuicConnection, MsQuicListener, MsQuicReceiver, MsQuicSender,
    MsQuicTransport, TlsIdentity, TrustPolicy, ALPN,
};

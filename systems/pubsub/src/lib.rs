//! # tandem-pubsub
//!
//! tandem's reference system: a pub/sub node over gossip membership
//! ([`node`]), the adapter that lets tandem drive it ([`PubSub`]), and a
//! property set any message-passing system can reuse ([`messaging`]).
//!
//! It is written only against tandem's public API, the way a user's system
//! is: the node is an ordinary async node over
//! [`tandem::Transport`]; [`PubSub`] implements
//! [`tandem::System`] around it.
//!
//! - Operations ([`Op`]): `broadcast = { from, tag?, size? }` and
//!   `direct = { from, to, tag?, size? }`; the payload is a pure function of
//!   origin, tag and size ([`payload`]), so the harness knows every byte.
//! - Observations ([`Observation`]): what the node delivers, its membership
//!   view, and its internal events.
//! - Conditions ([`Condition`]): `received`, `received_tags`,
//!   `not_received_tags`, `peers`, `converged`.
//! - Properties ([`messaging::properties`]): S1 no self-delivery, S2 no
//!   duplicates, S3 integrity, S4 addressing, L1 membership convergence,
//!   L2 delivery, and coverage goals.
//! - Knobs ([`knobs`]): the outbox capacity and the node's timers.
//! - Planted bugs (feature `mutations`): `no-dedup`, `self-delivery`,
//!   `stale-rebind`, `no-retransmit`, `forget-on-restart`,
//!   `rebind-drops-outbox`, `version-before-incarnation` (see
//!   [`node::mutation`]).
//!
//! A scenario for it, parsed and checked before anything runs:
//!
//! ```
//! use tandem::scenario::{Action, Scenario};
//! use tandem_pubsub::{Op, PubSub};
//!
//! let text = r#"
//! nodes = 2
//! seeds = [0, 1]
//! duration = "10s"
//!
//! [[step]]
//! await = { converged = true, timeout = "5s" }
//!
//! [[step]]
//! broadcast = { from = 0, tag = "data-1" }
//!
//! [[expect]]
//! node = 1
//! received_tags = ["data-1"]
//! "#;
//! let scenario = Scenario::parse(text, "hello.toml", &PubSub).unwrap();
//! let Action::Op(call) = &scenario.steps[1].action else { panic!() };
//! let op: Op = call.typed().unwrap();
//! assert_eq!(op, Op::Broadcast { from: 0, tag: Some("data-1".into()), size: None });
//! assert_eq!(op.size(), 32);
//! ```
//!
//! Running it needs a backend: `tandem_sim::run_scenario(Arc::new(PubSub),
//! &scenario, seed)` in the simulation, `tandem confirm` over MsQuic.

#![warn(missing_docs)]

pub mod condition;
pub mod knobs;
pub mod messaging;
pub mod node;
pub mod observation;
pub mod op;
pub mod outcome;
pub mod payload;
pub mod running;
mod system;
pub mod workload;

pub use condition::Condition;
pub use observation::Observation;
pub use op::{Op, Output, DEFAULT_MESSAGE_SIZE, MAX_MESSAGE_SIZE};
pub use outcome::NodeOutcome;
pub use running::Running;
pub use system::{cluster_credentials, PubSub};

//! The engine: what runs a scenario and reports on it, for the backends
//! (`tandem-sim`, `tandem-msquic`) and the command line rather than for a
//! system's author, whose API is the crate root.
//!
//! - [`cluster`]: the driving API every backend implements, and its `Setup`;
//! - [`execute`]: the one interpreter of a scenario's timeline;
//! - [`host`]: the node-hosting layer the backends share (start, serve);
//! - [`recorder`]: the one owner of a run's history;
//! - [`links`]: every link's state, folded from link actions;
//! - [`clock`]: a node's clocks as `clock` steps set them;
//! - [`coverage`]: a run's coverage signature;
//! - [`picture`]: the timeline picture, a run's history as one HTML page;
//! - [`profile`]: the calibration profile the simulation takes its disk
//!   latency from.

pub mod clock;
pub mod cluster;
pub mod coverage;
pub mod execute;
pub mod host;
pub mod links;
pub mod nodes;
pub mod picture;
pub mod profile;
pub mod recorder;

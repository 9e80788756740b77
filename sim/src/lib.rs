//! tandem-sim

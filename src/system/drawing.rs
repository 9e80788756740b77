//! [`Drawing`]: how the timeline picture (`--html`) draws a system's events.

use super::oracle::Oracle;
use crate::engine::picture::Mark;
use crate::history::{Event, History};

/// How the timeline picture (`--html`) draws a system's events. Every
/// method has a default, so a system that draws nothing special writes
/// `impl Drawing for MySystem {}`.
pub trait Drawing: Oracle {
    /// How the picture draws one of the node's events (an invocation,
    /// completion, observation or assertion), given the whole history: its
    /// kind, label, and the key that joins it to the events it causes or was
    /// caused by. `None` draws a generic dot.
    ///
    /// ```
    /// # use tandem::engine::picture::Mark;
    /// // A delivery, joined to the send of message 7 by the key "7".
    /// let mark = Mark::new("deliver", "deliver m7").effect("7");
    /// assert!(!mark.cause);
    /// ```
    fn mark(&self, _history: &History<Self>, _event: &Event<Self>) -> Option<Mark> {
        None
    }
}

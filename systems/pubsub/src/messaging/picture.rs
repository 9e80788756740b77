//! How the timeline picture (`--html`) draws a messaging system's events:
//! sends joined to their deliveries, the addressees L2 still waits for
//! marked missing, and membership views.

use tandem::{Event, EventKind, History, Mark, NodeIdx, OpResult};

use super::properties::{undelivered, with_ledger};
use super::Messaging;

/// What joins a send to its deliveries: the origin and the message id (an
/// id's `Display` need not name the origin).
fn key(origin: NodeIdx, id: &impl std::fmt::Display) -> String {
    format!("{origin}:{id}")
}

/// The mark of a send (a completed send operation), a delivery or a view;
/// `None` for anything else. Return it from [`Drawing::mark`](tandem::Drawing::mark).
pub fn mark<S: Messaging>(history: &History<S>, event: &Event<S>) -> Option<Mark> {
    match &event.event {
        EventKind::Complete { result: OpResult::Ok(output), .. } => {
            let id = S::sent(output)?;
            with_ledger(history, |ledger| {
                let sent = ledger.sent(&id)?;
                let message = &sent.outgoing.message;
                let to = message.to.map(|to| format!(" to {to}")).unwrap_or_default();
                let label = format!("send \"{}\"{to}", message.tag);
                let key = key(sent.outgoing.origin, &id);
                Some(Mark::new("send", label).cause(key).expect(undelivered(history, ledger, sent)))
            })
        }
        EventKind::Observe(observation) => {
            if let Some(delivery) = S::delivery(observation) {
                let mark = Mark::new("deliver", format!("deliver \"{}\" from {}", delivery.tag, delivery.origin))
                    .effect(key(delivery.origin, &delivery.id));
                return Some(match event.node == Some(delivery.origin) {
                    true => mark.problem("its own message"),
                    false => mark,
                });
            }
            let view = S::view(observation)?;
            let members: Vec<String> = view.keys().map(ToString::to_string).collect();
            Some(Mark::new("view", format!("view: {}", members.join(", "))))
        }
        _ => None,
    }
}

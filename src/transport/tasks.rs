//! The two tasks every node runs around its connections: a listener's
//! accept loop and a connection's writer. A node keeps its own reader
//! (what it decodes is its own).

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{Listener, MessageSender, TransportError};

/// What a node hands its connection's writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// Send this message.
    Frame(Bytes),
    /// Close the connection because the peer broke the protocol, with this
    /// code ([`MessageSender::reject`]).
    Reject(u64),
}

/// Accepts connections until the listener fails or `accepted` returns
/// `false` (its node is gone). Returns the listener's error, if that ended it.
pub async fn accept_loop<L: Listener>(
    mut listener: L,
    mut accepted: impl FnMut(L::Connection) -> bool,
) -> Option<TransportError> {
    loop {
        match listener.accept().await {
            Ok(connection) => {
                if !accepted(connection) {
                    return None;
                }
            }
            Err(error) => return Some(error),
        }
    }
}

/// Sends what `outgoing` brings, in order, until it closes or a send
/// fails, then closes the connection; returns the failed send's error. A
/// `Reject` closes the connection with its code instead.
pub async fn write_loop<S: MessageSender>(
    mut sender: S,
    mut outgoing: mpsc::UnboundedReceiver<Outgoing>,
) -> Result<(), TransportError> {
    let mut ended = Ok(());
    while let Some(next) = outgoing.recv().await {
        match next {
            Outgoing::Frame(frame) => {
                if let Err(error) = sender.send(frame).await {
                    ended = Err(error);
                    break;
                }
            }
            Outgoing::Reject(code) => {
                sender.reject(code).await;
                return Ok(());
            }
        }
    }
    sender.close().await;
    ended
}

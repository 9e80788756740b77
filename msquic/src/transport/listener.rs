//! Listeners: accept incoming connections once their handshake (and trust
//! check) has completed.

use std::net::SocketAddr;
use std::sync::Arc;

use msquic::{
    Addr, BufferRef, Connection as QuicConnection, ConnectionShutdownFlags, Listener as QuicListener, ListenerEvent,
    Status, StatusCode,
};
use tokio::sync::mpsc;

use super::close;
use super::config::ALPN;
use super::connection::{map_status, server_callback, MsQuicConnection, Slot};
use super::runtime::{close_later, guarded, Runtime};
use tandem::transport::{Listener, TransportError};

/// A bound MsQuic listener.
pub struct MsQuicListener {
    listener: Option<QuicListener>,
    accepted: mpsc::UnboundedReceiver<MsQuicConnection>,
    local: SocketAddr,
    // Keeps the registration open until this listener's close is queued.
    _runtime: Arc<Runtime>,
}

impl MsQuicListener {
    pub(super) fn bind(runtime: Arc<Runtime>, addr: SocketAddr) -> Result<Self, TransportError> {
        let (tx, accepted) = mpsc::unbounded_channel();
        let callback_runtime = runtime.clone();
        let listener = QuicListener::open(runtime.registration(), move |_, event| {
            guarded(|| {
                if let ListenerEvent::NewConnection { info, connection } = event {
                    // MsQuic always gives the remote address; an unknown one shares one count.
                    let source = info.remote_address.as_socket().unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
                    let Some(slot) = Slot::take(&callback_runtime, Some(source)) else {
                        // Refused before the handshake: MsQuic keeps the
                        // handle and closes it. Logged at most once a second.
                        if let Some(refused) = callback_runtime.counts.refused() {
                            tracing::warn!(
                                refused,
                                total = callback_runtime.counts.refusals(),
                                "refusing connections: connection or handshake limit reached (latest from {source})"
                            );
                        }
                        return Err(Status::new(StatusCode::QUIC_STATUS_CONNECTION_REFUSED));
                    };
                    // SAFETY: MsQuic hands us ownership of the new handle.
                    let owned = unsafe { QuicConnection::from_raw(connection.as_raw()) };
                    connection.set_callback_handler(server_callback(owned, slot, callback_runtime.clone(), tx.clone()));
                    if let Err(status) = connection.set_configuration(callback_runtime.server_config()) {
                        // Accepting it and shutting it down keeps ownership simple:
                        // it closes through the usual SHUTDOWN_COMPLETE path.
                        tracing::warn!(%status, "cannot configure an incoming connection");
                        connection.shutdown(ConnectionShutdownFlags::NONE, close::INTERNAL);
                    }
                }
                Ok(())
            })
        })
        .map_err(|e| TransportError::Listen(format!("opening a listener: {e}")))?;
        // From here on, an error drops `bound`, whose close goes to the closer.
        let mut bound = MsQuicListener { listener: Some(listener), accepted, local: addr, _runtime: runtime };
        let listener = bound.listener.as_ref().expect("just set");
        listener.start(&[BufferRef::from(ALPN)], Some(&Addr::from(addr))).map_err(|e| match map_status(&e) {
            err @ TransportError::Listen(_) => err,
            _ => TransportError::Listen(format!("binding {addr}: {e}")),
        })?;
        bound.local = listener
            .get_local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .ok_or_else(|| TransportError::Listen(format!("no local address for {addr}")))?;
        Ok(bound)
    }
}

impl Listener for MsQuicListener {
    type Connection = MsQuicConnection;

    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    async fn accept(&mut self) -> Result<MsQuicConnection, TransportError> {
        // The callback holds a sender for as long as the listener is open.
        self.accepted.recv().await.ok_or(TransportError::Closed)
    }
}

impl Drop for MsQuicListener {
    fn drop(&mut self) {
        if let Some(listener) = self.listener.take() {
            // Closing waits for the listener to stop: not on this thread.
            close_later(move || drop(listener));
        }
    }
}

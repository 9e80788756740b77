//! Connections: one bidirectional stream of length-prefixed frames, bridged
//! from MsQuic's callback threads to tokio.
//!
//! The server opens the stream as soon as its handshake completes, and the
//! client's `connect` finishes only when that stream arrives. In TLS 1.3 the
//! client finishes its handshake before the server has checked the client's
//! certificate, so waiting for the server's stream is what makes `connect`
//! fail, rather than succeed and then drop, when a pinned server refuses us.
//! One long-lived stream (rather than one per message) keeps messages
//! ordered for free and costs one stream-open per connection.
//!
//! Callbacks never block: they push decoded frames into the shared state and
//! wake the tokio side with `Notify`. Handles are closed on the closer thread
//! (see `runtime`) once MsQuic reports SHUTDOWN_COMPLETE.

use std::collections::VecDeque;
use std::ffi::c_void;
use std::mem::ManuallyDrop;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use msquic::{
    Addr, BufferRef, Connection as QuicConnection, ConnectionEvent, ConnectionRef,
    ConnectionShutdownFlags, SendFlags, Status, StatusCode, Stream, StreamEvent, StreamOpenFlags,
    StreamRef, StreamShutdownFlags, StreamStartFlags,
};
use tokio::sync::{mpsc, oneshot, Notify};

use super::identity::{identity_of, portable_certificate};
use super::runtime::{close_later, guarded, Runtime};
use tandem::transport::framing::HEADER_LEN;
use tandem::transport::{
    Connection, ConnectionInfo, FrameDecoder, Framing, MessageReceiver, MessageSender,
    PeerIdentity, TransportError,
};

/// Application error code of an orderly close.
const CODE_NORMAL: u64 = 0;
/// Application error code when the peer broke the framing.
const CODE_PROTOCOL: u64 = 1;
/// Application error code when this side could not set the connection up.
pub(super) const CODE_INTERNAL: u64 = 2;

/// Bytes handed to MsQuic and not yet completed beyond which `send` waits.
const MAX_IN_FLIGHT: usize = 4 * 1024 * 1024;
/// Received-but-unread bytes beyond which reading from the peer pauses, so a
/// slow reader pushes back on the sender through QUIC flow control.
const MAX_UNREAD: usize = 8 * 1024 * 1024;
/// How long `close` waits for the peer to acknowledge what was sent.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// Handles of one connection, in the order they must close.
struct Handles {
    stream: Option<Stream>,
    conn: QuicConnection,
    _runtime: Arc<Runtime>,
}

/// Owns a connection's handles for the Rust side. Dropping it shuts the
/// connection down; the handles close once MsQuic reports shutdown complete.
pub(super) struct Owner {
    handles: Option<Handles>,
    shared: Arc<Shared>,
}

impl Owner {
    fn new(conn: QuicConnection, shared: Arc<Shared>, runtime: Arc<Runtime>) -> Self {
        Owner {
            handles: Some(Handles {
                stream: None,
                conn,
                _runtime: runtime,
            }),
            shared,
        }
    }

    fn handles(&self) -> &Handles {
        self.handles.as_ref().expect("handles live until drop")
    }

    fn conn(&self) -> &QuicConnection {
        &self.handles().conn
    }

    fn stream(&self) -> Option<&Stream> {
        self.handles().stream.as_ref()
    }

    fn set_stream(&mut self, stream: Stream) {
        if let Some(handles) = self.handles.as_mut() {
            handles.stream = Some(stream);
        }
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        let Some(handles) = self.handles.take() else {
            return;
        };
        // Never blocks, also when called from a callback.
        handles
            .conn
            .shutdown(ConnectionShutdownFlags::NONE, CODE_NORMAL);
        let mut state = self.shared.lock();
        if state.shutdown_complete {
            drop(state);
            close_later(move || drop(handles));
        } else {
            // The SHUTDOWN_COMPLETE callback queues the close.
            state.orphan = Some(handles);
        }
    }
}

/// State shared between a connection's callbacks and its tokio halves.
#[derive(Default)]
pub(super) struct Shared {
    state: Mutex<State>,
    /// Wakes the receiver: a message arrived or the connection closed.
    recv_ready: Notify,
    /// Wakes the sender: a send completed, the FIN was acknowledged, or the
    /// connection closed.
    send_ready: Notify,
}

#[derive(Default)]
struct State {
    inbox: VecDeque<Bytes>,
    unread: usize,
    /// Length of the receive indication left pending because `unread` was
    /// over the limit; completing it resumes reading.
    paused: Option<u64>,
    in_flight: usize,
    /// No more messages will arrive and none can be sent.
    closed: bool,
    fin_acked: bool,
    shutdown_complete: bool,
    /// Handles dropped by the Rust side before shutdown completed.
    orphan: Option<Handles>,
    peer_identity: Option<PeerIdentity>,
    /// Why the connection went down, reported by a failing `connect`.
    failure: Option<TransportError>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not cascade; the state stays usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn mark_closed(&self) {
        self.lock().closed = true;
        self.recv_ready.notify_one();
        self.send_ready.notify_one();
    }

    fn record_failure(&self, error: TransportError) {
        self.lock().failure.get_or_insert(error);
    }

    fn take_failure(&self) -> TransportError {
        self.lock().failure.take().unwrap_or(TransportError::Closed)
    }

    fn on_shutdown_complete(&self) {
        let orphan = {
            let mut state = self.lock();
            state.shutdown_complete = true;
            state.closed = true;
            state.orphan.take()
        };
        if let Some(handles) = orphan {
            close_later(move || drop(handles));
        }
        self.recv_ready.notify_one();
        self.send_ready.notify_one();
    }

    /// Queues decoded messages; true when reading must pause.
    fn deliver(&self, frames: Vec<Bytes>, indicated: u64) -> bool {
        let pause = {
            let mut state = self.lock();
            for frame in frames {
                // Count the header too, so empty messages are not free.
                state.unread += HEADER_LEN + frame.len();
                state.inbox.push_back(frame);
            }
            let pause = state.unread > MAX_UNREAD;
            if pause {
                state.paused = Some(indicated);
            }
            pause
        };
        self.recv_ready.notify_one();
        pause
    }

    async fn reserve(&self, len: usize) -> Result<(), TransportError> {
        loop {
            {
                let mut state = self.lock();
                if state.closed {
                    return Err(TransportError::Closed);
                }
                // A message larger than the window goes alone.
                if state.in_flight == 0 || state.in_flight + len <= MAX_IN_FLIGHT {
                    state.in_flight += len;
                    return Ok(());
                }
            }
            self.send_ready.notified().await;
        }
    }

    fn release(&self, len: usize) {
        {
            let mut state = self.lock();
            state.in_flight = state.in_flight.saturating_sub(len);
        }
        self.send_ready.notify_one();
    }

    async fn wait_fin_acked(&self) {
        loop {
            {
                let state = self.lock();
                if state.fin_acked || state.closed {
                    return;
                }
            }
            self.send_ready.notified().await;
        }
    }
}

/// A raw connection handle for a stream callback: valid while the stream's
/// callbacks run, since a stream is closed before its connection.
#[derive(Clone, Copy)]
struct RawConn(msquic::ffi::HQUIC);

impl RawConn {
    fn of(conn: &QuicConnection) -> Self {
        // SAFETY: only used while the connection handle is open (see above).
        RawConn(unsafe { conn.as_raw() })
    }

    fn shutdown(self, code: u64) {
        // Borrow, never close: the owner closes the handle.
        let conn = ManuallyDrop::new(unsafe { QuicConnection::from_raw(self.0) });
        conn.shutdown(ConnectionShutdownFlags::NONE, code);
    }
}

/// Maps an MsQuic status onto the transport's error kinds.
pub(super) fn map_status(status: &Status) -> TransportError {
    use StatusCode::*;
    match status.try_as_status_code() {
        Ok(
            QUIC_STATUS_CONNECTION_REFUSED | QUIC_STATUS_UNREACHABLE | QUIC_STATUS_INVALID_ADDRESS,
        ) => TransportError::Refused(status.to_string()),
        Ok(QUIC_STATUS_CONNECTION_TIMEOUT | QUIC_STATUS_CONNECTION_IDLE) => {
            TransportError::TimedOut(status.to_string())
        }
        Ok(QUIC_STATUS_ABORTED) => TransportError::Closed,
        Ok(QUIC_STATUS_ADDRESS_IN_USE) => TransportError::Listen(status.to_string()),
        _ => TransportError::Protocol(status.to_string()),
    }
}

/// What a connection callback does beyond the common events.
enum Role {
    /// An incoming connection, owned by the callback until it is accepted.
    Server {
        pending: Option<Owner>,
        accepted: mpsc::UnboundedSender<MsQuicConnection>,
    },
    /// An outgoing connection whose `connect` waits for the server's stream.
    Client {
        ready: Option<oneshot::Sender<Result<(Stream, ConnectionInfo), TransportError>>>,
    },
}

/// The state of one connection callback.
struct ConnHandler {
    shared: Arc<Shared>,
    runtime: Arc<Runtime>,
    role: Role,
}

impl ConnHandler {
    fn into_callback(
        mut self,
    ) -> impl FnMut(ConnectionRef, ConnectionEvent) -> Result<(), Status> + 'static {
        move |conn, event| guarded(|| self.on_event(&conn, event))
    }

    fn on_event(&mut self, conn: &QuicConnection, event: ConnectionEvent) -> Result<(), Status> {
        match event {
            ConnectionEvent::PeerCertificateReceived { certificate, .. } => {
                // SAFETY: the pointer comes from this very event.
                let der = unsafe { portable_certificate(certificate) };
                return self.check_peer(der.map(identity_of));
            }
            ConnectionEvent::Connected { .. } => self.on_connected(conn),
            ConnectionEvent::PeerStreamStarted { stream, .. } => self.on_peer_stream(conn, stream),
            ConnectionEvent::ShutdownInitiatedByTransport { status, .. } => {
                self.shared.record_failure(map_status(&status));
                self.fail_connect();
            }
            ConnectionEvent::ShutdownInitiatedByPeer { error_code } => {
                self.shared.record_failure(TransportError::Refused(format!(
                    "peer closed the connection (code {error_code})"
                )));
                self.fail_connect();
            }
            ConnectionEvent::ShutdownComplete { .. } => {
                self.shared.on_shutdown_complete();
                self.fail_connect();
                if let Role::Server { pending, .. } = &mut self.role {
                    // Shutdown is complete, so this closes the handles.
                    drop(pending.take());
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Admits or refuses the peer's certificate; an error status fails the
    /// handshake with a TLS alert before any stream exists.
    fn check_peer(&self, peer: Option<PeerIdentity>) -> Result<(), Status> {
        if self.runtime.config.trust.admits(peer.as_ref()) {
            self.shared.lock().peer_identity = peer;
            Ok(())
        } else {
            tracing::warn!(?peer, "refusing a peer whose certificate is not pinned");
            self.shared.record_failure(TransportError::Protocol(format!(
                "peer certificate {peer:?} is not trusted"
            )));
            Err(Status::new(StatusCode::QUIC_STATUS_BAD_CERTIFICATE))
        }
    }

    /// Server side: the client passed the trust check; open the stream and
    /// hand the connection to `accept`.
    fn on_connected(&mut self, conn: &QuicConnection) {
        let Role::Server { pending, accepted } = &mut self.role else {
            return;
        };
        let Some(mut owner) = pending.take() else {
            return;
        };
        match open_stream(conn, &self.shared, &self.runtime) {
            Ok(stream) => owner.set_stream(stream),
            Err(status) => {
                tracing::warn!(%status, "cannot open the stream of an accepted connection");
                conn.shutdown(ConnectionShutdownFlags::NONE, CODE_INTERNAL);
                *pending = Some(owner);
                return;
            }
        }
        let connection = MsQuicConnection {
            owner,
            shared: self.shared.clone(),
            info: connection_info(conn, &self.shared),
            framing: self.runtime.config.framing,
        };
        // With the listener gone the connection is dropped, which shuts it down.
        let _ = accepted.send(connection);
    }

    fn on_peer_stream(&mut self, conn: &QuicConnection, stream: StreamRef) {
        // SAFETY: the handle is new and ours to own from this event on.
        let stream = unsafe { Stream::from_raw(stream.as_raw()) };
        let ready = match &mut self.role {
            Role::Client { ready } => ready.take(),
            Role::Server { .. } => None,
        };
        let Some(ready) = ready else {
            // Only the server opens a stream, once; refuse anything else.
            stream.set_callback_handler(|_, _| Ok(()));
            let _ = stream.shutdown(StreamShutdownFlags::ABORT, CODE_PROTOCOL);
            // Closing inline is fine on the connection's own worker thread.
            drop(stream);
            return;
        };
        let handler = StreamHandler::new(self.shared.clone(), self.runtime.config.framing, conn);
        stream.set_callback_handler(handler.into_callback());
        let info = connection_info(conn, &self.shared);
        // If `connect` gave up, the stream comes back and closes inline here.
        let _ = ready.send(Ok((stream, info)));
    }

    fn fail_connect(&mut self) {
        if let Role::Client { ready } = &mut self.role {
            if let Some(ready) = ready.take() {
                let _ = ready.send(Err(self.shared.take_failure()));
            }
        }
        self.shared.mark_closed();
    }
}

fn open_stream(
    conn: &QuicConnection,
    shared: &Arc<Shared>,
    runtime: &Runtime,
) -> Result<Stream, Status> {
    let handler = StreamHandler::new(shared.clone(), runtime.config.framing, conn);
    let stream = Stream::open(conn, StreamOpenFlags::NONE, handler.into_callback())?;
    // IMMEDIATE tells the client at once, without waiting for data: that
    // is what completes its `connect`.
    stream.start(StreamStartFlags::IMMEDIATE)?;
    Ok(stream)
}

fn connection_info(conn: &QuicConnection, shared: &Shared) -> ConnectionInfo {
    let unknown = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
    let addr = |a: Result<Addr, Status>| a.ok().and_then(|a| a.as_socket()).unwrap_or(unknown);
    ConnectionInfo {
        local: addr(conn.get_local_addr()),
        remote: addr(conn.get_remote_addr()),
        peer_identity: shared.lock().peer_identity,
    }
}

/// The state of one stream callback: reassembles frames.
struct StreamHandler {
    shared: Arc<Shared>,
    decoder: FrameDecoder,
    conn: RawConn,
    /// The peer broke the framing; ignore whatever else it sends.
    failed: bool,
}

impl StreamHandler {
    fn new(shared: Arc<Shared>, framing: Framing, conn: &QuicConnection) -> Self {
        StreamHandler {
            shared,
            decoder: FrameDecoder::new(framing),
            conn: RawConn::of(conn),
            failed: false,
        }
    }

    fn into_callback(
        mut self,
    ) -> impl FnMut(StreamRef, StreamEvent) -> Result<(), Status> + 'static {
        move |_stream, event| guarded(|| self.on_event(event))
    }

    fn on_event(&mut self, event: StreamEvent) -> Result<(), Status> {
        match event {
            StreamEvent::Receive {
                buffers,
                total_buffer_length,
                ..
            } => {
                return self.on_receive(buffers, *total_buffer_length);
            }
            StreamEvent::SendComplete { client_context, .. } => {
                // SAFETY: every send passes a `SendBuffers` box as its context,
                // and MsQuic completes each send exactly once.
                let sent = unsafe { Box::from_raw(client_context as *mut SendBuffers) };
                self.shared.release(sent.len());
            }
            StreamEvent::SendShutdownComplete { .. } => {
                self.shared.lock().fin_acked = true;
                self.shared.send_ready.notify_one();
            }
            StreamEvent::PeerSendShutdown => {
                if self.decoder.has_partial() && !self.failed {
                    self.violation(TransportError::Protocol(
                        "stream ended inside a frame".into(),
                    ));
                }
                self.shared.mark_closed();
            }
            StreamEvent::PeerSendAborted { .. }
            | StreamEvent::PeerReceiveAborted { .. }
            | StreamEvent::ShutdownComplete { .. } => self.shared.mark_closed(),
            _ => {}
        }
        Ok(())
    }

    fn on_receive(&mut self, buffers: &[BufferRef], indicated: u64) -> Result<(), Status> {
        if self.failed {
            return Ok(());
        }
        for buffer in buffers {
            self.decoder.push(buffer.as_bytes());
        }
        let mut frames = Vec::new();
        let error = loop {
            match self.decoder.next_frame() {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        let pause = self.shared.deliver(frames, indicated);
        if let Some(error) = error {
            self.violation(error);
            return Ok(());
        }
        if pause {
            // The receiver completes this indication once it has caught up.
            return Err(Status::new(StatusCode::QUIC_STATUS_PENDING));
        }
        Ok(())
    }

    fn violation(&mut self, error: TransportError) {
        tracing::warn!(%error, "closing a connection whose peer broke the framing");
        self.failed = true;
        self.conn.shutdown(CODE_PROTOCOL);
        self.shared.mark_closed();
    }
}

/// One message on its way: header and payload, kept alive (with the buffer
/// descriptors MsQuic reads) until SEND_COMPLETE frees the box.
struct SendBuffers {
    header: [u8; HEADER_LEN],
    payload: Bytes,
    refs: [BufferRef; 2],
}

impl SendBuffers {
    fn len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    /// Hands `frame` (header + payload) to MsQuic without copying it.
    fn submit(stream: &Stream, header: [u8; HEADER_LEN], payload: Bytes) -> Result<(), Status> {
        let empty: &[u8] = &[];
        let mut boxed = Box::new(SendBuffers {
            header,
            payload,
            refs: [BufferRef::from(empty), BufferRef::from(empty)],
        });
        // The box's heap address and the payload's bytes no longer move.
        boxed.refs = [
            BufferRef::from(&boxed.header[..]),
            BufferRef::from(&boxed.payload[..]),
        ];
        let raw = Box::into_raw(boxed);
        // SAFETY: `raw` stays valid until SEND_COMPLETE, which frees it; on
        // a failed send there is no completion and we free it here.
        let result = unsafe { stream.send(&(*raw).refs, SendFlags::NONE, raw as *const c_void) };
        if result.is_err() {
            drop(unsafe { Box::from_raw(raw) });
        }
        result
    }
}

/// Opens a connection to `addr` and waits for the server's stream.
pub(super) async fn connect(
    runtime: Arc<Runtime>,
    addr: SocketAddr,
) -> Result<MsQuicConnection, TransportError> {
    let shared = Arc::new(Shared::default());
    let (ready_tx, ready_rx) = oneshot::channel();
    let handler = ConnHandler {
        shared: shared.clone(),
        runtime: runtime.clone(),
        role: Role::Client {
            ready: Some(ready_tx),
        },
    };
    let conn = QuicConnection::open(runtime.registration(), handler.into_callback())
        .map_err(|e| TransportError::Protocol(format!("opening a connection: {e}")))?;
    let mut owner = Owner::new(conn, shared.clone(), runtime.clone());
    if let Err(status) =
        owner
            .conn()
            .start(runtime.client_config(), &addr.ip().to_string(), addr.port())
    {
        // Never started, so no SHUTDOWN_COMPLETE will come: close at once.
        shared.lock().shutdown_complete = true;
        return Err(map_status(&status));
    }
    // MsQuic's handshake timeout fires first; this only guards against a
    // missing callback.
    let limit = runtime.config.connect_timeout + Duration::from_secs(2);
    let (stream, info) = match tokio::time::timeout(limit, ready_rx).await {
        Ok(Ok(result)) => result?,
        Ok(Err(_)) => return Err(TransportError::Closed),
        Err(_) => return Err(TransportError::TimedOut(format!("connecting to {addr}"))),
    };
    owner.set_stream(stream);
    Ok(MsQuicConnection {
        owner,
        shared,
        info,
        framing: runtime.config.framing,
    })
}

/// An established MsQuic connection.
pub struct MsQuicConnection {
    owner: Owner,
    shared: Arc<Shared>,
    info: ConnectionInfo,
    framing: Framing,
}

impl Connection for MsQuicConnection {
    type Sender = MsQuicSender;
    type Receiver = MsQuicReceiver;

    fn info(&self) -> ConnectionInfo {
        self.info.clone()
    }

    fn split(self) -> (MsQuicSender, MsQuicReceiver) {
        let MsQuicConnection {
            owner,
            shared,
            framing,
            ..
        } = self;
        let owner = Arc::new(owner);
        let sender = MsQuicSender {
            owner: owner.clone(),
            shared: shared.clone(),
            framing,
        };
        (sender, MsQuicReceiver { owner, shared })
    }
}

/// The sending half of an [`MsQuicConnection`].
pub struct MsQuicSender {
    owner: Arc<Owner>,
    shared: Arc<Shared>,
    framing: Framing,
}

impl MsQuicSender {
    /// Writes raw bytes (at least a header's worth), bypassing the framing:
    /// lets tests play a hostile peer.
    #[cfg(test)]
    pub(super) fn send_raw(&self, bytes: &'static [u8]) -> Result<(), TransportError> {
        let stream = self.owner.stream().ok_or(TransportError::Closed)?;
        let (header, rest) = bytes
            .split_first_chunk::<HEADER_LEN>()
            .expect("a header's worth");
        self.shared.lock().in_flight += bytes.len();
        SendBuffers::submit(stream, *header, Bytes::from_static(rest)).map_err(|e| map_status(&e))
    }
}

impl MessageSender for MsQuicSender {
    async fn send(&mut self, message: Bytes) -> Result<(), TransportError> {
        if message.len() > self.framing.max_frame() {
            return Err(TransportError::FrameTooLarge {
                len: message.len() as u64,
                max: self.framing.max_frame() as u64,
            });
        }
        let len = HEADER_LEN + message.len();
        self.shared.reserve(len).await?;
        let stream = self.owner.stream().ok_or(TransportError::Closed)?;
        let header = (message.len() as u32).to_be_bytes();
        SendBuffers::submit(stream, header, message).map_err(|status| {
            self.shared.release(len);
            tracing::debug!(%status, "send failed");
            TransportError::Closed
        })
    }

    async fn close(&mut self) {
        // FIN after whatever is queued, so the peer reads everything sent so
        // far before it sees the close.
        if let Some(stream) = self.owner.stream() {
            let _ = stream.shutdown(StreamShutdownFlags::GRACEFUL, CODE_NORMAL);
        }
        let _ = tokio::time::timeout(CLOSE_LINGER, self.shared.wait_fin_acked()).await;
        self.owner
            .conn()
            .shutdown(ConnectionShutdownFlags::NONE, CODE_NORMAL);
        self.shared.mark_closed();
    }
}

/// The receiving half of an [`MsQuicConnection`].
pub struct MsQuicReceiver {
    owner: Arc<Owner>,
    shared: Arc<Shared>,
}

impl MessageReceiver for MsQuicReceiver {
    async fn recv(&mut self) -> Result<Bytes, TransportError> {
        loop {
            let (message, resume) = {
                let mut state = self.shared.lock();
                match state.inbox.pop_front() {
                    Some(message) => {
                        state.unread -= HEADER_LEN + message.len();
                        let resume = if state.unread <= MAX_UNREAD / 2 {
                            state.paused.take()
                        } else {
                            None
                        };
                        (Some(message), resume)
                    }
                    None if state.closed => return Err(TransportError::Closed),
                    None => (None, None),
                }
            };
            if let (Some(indicated), Some(stream)) = (resume, self.owner.stream()) {
                stream.receive_complete(indicated);
            }
            if let Some(message) = message {
                return Ok(message);
            }
            self.shared.recv_ready.notified().await;
        }
    }
}

/// Builds the callback of a connection a listener just received: it owns the
/// connection until the handshake completes and then hands it to `accepted`.
pub(super) fn server_callback(
    conn: QuicConnection,
    runtime: Arc<Runtime>,
    accepted: mpsc::UnboundedSender<MsQuicConnection>,
) -> impl FnMut(ConnectionRef, ConnectionEvent) -> Result<(), Status> + 'static {
    let shared = Arc::new(Shared::default());
    let owner = Owner::new(conn, shared.clone(), runtime.clone());
    ConnHandler {
        shared,
        runtime,
        role: Role::Server {
            pending: Some(owner),
            accepted,
        },
    }
    .into_callback()
}

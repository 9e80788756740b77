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
// Real network only: frame deadlines are wall-clock.
use std::time::{Duration, Instant};

use bytes::Bytes;
use msquic::{
    Addr, BufferRef, Connection as QuicConnection, ConnectionEvent, ConnectionRef, ConnectionShutdownFlags, SendFlags,
    Status, StatusCode, Stream, StreamEvent, StreamOpenFlags, StreamRef, StreamShutdownFlags, StreamStartFlags,
};
use tokio::sync::{mpsc, oneshot, Notify};

use super::close;
use super::identity::{identity_of, portable_certificate};
use super::limits::Limits;
use super::runtime::{close_later, guarded, Runtime};
use tandem::transport::framing::HEADER_LEN;
use tandem::transport::{
    Connection, ConnectionInfo, FrameDecoder, Framing, MessageReceiver, MessageSender, PeerIdentity, TransportError,
};

/// Bytes handed to MsQuic and not yet completed beyond which `send` waits
/// (each send charged [`SEND_OVERHEAD`] more than its bytes).
const MAX_IN_FLIGHT: usize = 4 * 1024 * 1024;
/// What one send costs beyond its bytes (its [`SendBuffers`] box and
/// MsQuic's send request), charged against [`MAX_IN_FLIGHT`]: a peer that
/// grants no flow control holds at most about 15,000 tiny frames, not
/// 300,000.
const SEND_OVERHEAD: usize = 256;
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
        Owner { handles: Some(Handles { stream: None, conn, _runtime: runtime }), shared }
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

    /// Shuts the connection down for a violation with `code` (or the code
    /// of a violation recorded before it); the receiver then sees it closed.
    fn close_for(&self, code: u64) {
        let code = self.shared.record_close(code);
        self.release_paused();
        self.conn().shutdown(ConnectionShutdownFlags::NONE, code);
        self.shared.mark_closed();
    }

    /// Completes a receive left pending while the connection held too much:
    /// MsQuic resumes reading, and a stream with a pending receive never
    /// completes its shutdown (nor frees its buffers).
    fn release_paused(&self) {
        // Taken in its own statement: completing can call back inline.
        let paused = self.shared.lock().paused.take();
        let stream = self.handles.as_ref().and_then(|handles| handles.stream.as_ref());
        if let (Some(indicated), Some(stream)) = (paused, stream) {
            stream.receive_complete(indicated);
        }
    }

    fn set_stream(&mut self, stream: Stream) {
        if let Some(handles) = self.handles.as_mut() {
            handles.stream = Some(stream);
        }
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.release_paused();
        let Some(handles) = self.handles.take() else {
            return;
        };
        // Never blocks, also when called from a callback.
        let code = self.shared.close_code();
        handles.conn.shutdown(ConnectionShutdownFlags::NONE, code);
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
pub(super) struct Shared {
    state: Mutex<State>,
    /// The transport's runtime: its limits and buffer budget.
    runtime: Arc<Runtime>,
    /// Wakes the receiver: a message arrived or the connection closed.
    recv_ready: Notify,
    /// Wakes the sender: a send completed, the FIN was acknowledged, or the
    /// connection closed.
    send_ready: Notify,
}

#[derive(Default)]
struct State {
    inbox: VecDeque<Bytes>,
    /// Bytes in `inbox`, headers counted.
    unread: usize,
    /// Bytes of the frame being reassembled.
    partial: usize,
    /// When the frame being reassembled began (wall-clock: real network only).
    partial_since: Option<Instant>,
    /// What this connection holds beyond its reserve, as counted in the
    /// transport's budget.
    excess: usize,
    /// Length of the receive indication left pending because the connection
    /// holds too much; completing it resumes reading.
    paused: Option<u64>,
    /// The close code of the first violation; every later shutdown uses it.
    close_code: Option<u64>,
    /// The code the peer closed the connection with.
    peer_close_code: Option<u64>,
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
    fn new(runtime: Arc<Runtime>) -> Arc<Self> {
        Arc::new(Shared { state: Mutex::default(), runtime, recv_ready: Notify::new(), send_ready: Notify::new() })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not cascade; the state stays usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn limits(&self) -> &Limits {
        &self.runtime.config.limits
    }

    /// The code every shutdown from this side uses: the first violation's,
    /// else an orderly close.
    fn close_code(&self) -> u64 {
        self.lock().close_code.unwrap_or(close::NORMAL)
    }

    /// Records `code` as the connection's close code unless a violation
    /// came first; the code to shut down with.
    fn record_close(&self, code: u64) -> u64 {
        let mut state = self.lock();
        *state.close_code.get_or_insert(code)
    }

    /// Re-counts what `state` holds beyond the reserve in the budget.
    fn rebalance(&self, state: &mut State) {
        let excess = (state.unread + state.partial).saturating_sub(self.limits().connection_reserve);
        self.runtime.budget.shift(state.excess, excess);
        state.excess = excess;
    }

    /// Whether the connection must stop reading: it holds more than its own
    /// limit, or more than its reserve while the transport is over budget.
    fn over_limit(&self, state: &State) -> bool {
        let limits = self.limits();
        let held = state.unread + state.partial;
        held > limits.connection_buffer
            || (held > limits.connection_reserve && self.runtime.budget.excess() > limits.total_buffer)
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

    /// Queues decoded messages and counts the partial frame left; true when
    /// reading must pause.
    fn deliver(&self, frames: Vec<Bytes>, partial: usize, indicated: u64) -> bool {
        let pause = {
            let mut state = self.lock();
            if !frames.is_empty() || partial == 0 {
                // A frame ended here; a partial one left began here.
                state.partial_since = None;
            }
            for frame in frames {
                // Count the header too, so empty messages are not free.
                state.unread += HEADER_LEN + frame.len();
                state.inbox.push_back(frame);
            }
            state.partial = partial;
            if partial > 0 && state.partial_since.is_none() {
                state.partial_since = Some(Instant::now());
            }
            self.rebalance(&mut state);
            let pause = self.over_limit(&state);
            if pause {
                state.paused = Some(indicated);
            }
            pause
        };
        self.recv_ready.notify_one();
        pause
    }

    /// Forgets the partial frame of a connection closed for a violation.
    fn drop_partial(&self) {
        let mut state = self.lock();
        state.partial = 0;
        state.partial_since = None;
        self.rebalance(&mut state);
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

impl Drop for Shared {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        self.runtime.budget.shift(state.excess, 0);
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
        Ok(QUIC_STATUS_CONNECTION_REFUSED | QUIC_STATUS_UNREACHABLE | QUIC_STATUS_INVALID_ADDRESS) => {
            TransportError::Refused(status.to_string())
        }
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
    Server { pending: Option<Owner>, accepted: mpsc::UnboundedSender<MsQuicConnection> },
    /// An outgoing connection whose `connect` waits for the server's stream.
    Client { ready: Option<oneshot::Sender<Result<(Stream, ConnectionInfo), TransportError>>> },
}

/// The state of one connection callback.
struct ConnHandler {
    shared: Arc<Shared>,
    role: Role,
    /// The connection's place in the transport's counts, given back when
    /// the handler goes (at SHUTDOWN_COMPLETE, or with a handle never started).
    slot: Option<Slot>,
}

/// A counted connection, and for an inbound one a counted handshake.
pub(super) struct Slot {
    runtime: Arc<Runtime>,
    /// The source of an inbound connection still in its handshake.
    handshaking: Option<SocketAddr>,
}

impl Slot {
    /// Takes a slot (for an inbound connection from `source`, a handshake
    /// slot too), or none when the transport is at its limits.
    pub(super) fn take(runtime: &Arc<Runtime>, inbound: Option<SocketAddr>) -> Option<Slot> {
        runtime
            .counts
            .admit(&runtime.config.limits, inbound)
            .then(|| Slot { runtime: runtime.clone(), handshaking: inbound })
    }

    fn authenticated(&mut self) {
        if let Some(source) = self.handshaking.take() {
            self.runtime.counts.handshake_done(source);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.authenticated();
        self.runtime.counts.connection_gone();
    }
}

impl ConnHandler {
    fn into_callback(mut self) -> impl FnMut(ConnectionRef, ConnectionEvent) -> Result<(), Status> + 'static {
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
                self.shared.lock().peer_close_code = Some(error_code);
                self.shared
                    .record_failure(TransportError::Refused(format!("peer closed the connection (code {error_code})")));
                self.fail_connect();
            }
            ConnectionEvent::ShutdownComplete { .. } => {
                self.slot = None;
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
        if self.shared.runtime.config.trust.admits(peer.as_ref()) {
            self.shared.lock().peer_identity = peer;
            Ok(())
        } else {
            tracing::warn!(?peer, "refusing a peer without a trusted certificate");
            self.shared.record_failure(TransportError::Protocol(match peer {
                Some(peer) => format!("peer certificate {peer:?} is not trusted"),
                None => "the peer presented no certificate".into(),
            }));
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
        if let Some(slot) = &mut self.slot {
            slot.authenticated();
        }
        match open_stream(conn, &self.shared) {
            Ok(stream) => owner.set_stream(stream),
            Err(status) => {
                tracing::warn!(%status, "cannot open the stream of an accepted connection");
                conn.shutdown(ConnectionShutdownFlags::NONE, self.shared.record_close(close::INTERNAL));
                *pending = Some(owner);
                return;
            }
        }
        let connection = MsQuicConnection {
            owner,
            shared: self.shared.clone(),
            info: connection_info(conn, &self.shared),
            framing: self.shared.runtime.config.framing,
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
            let _ = stream.shutdown(StreamShutdownFlags::ABORT, close::STREAM);
            // Closing inline is fine on the connection's own worker thread.
            drop(stream);
            return;
        };
        let handler = StreamHandler::new(self.shared.clone(), conn);
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

fn open_stream(conn: &QuicConnection, shared: &Arc<Shared>) -> Result<Stream, Status> {
    let handler = StreamHandler::new(shared.clone(), conn);
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
    fn new(shared: Arc<Shared>, conn: &QuicConnection) -> Self {
        StreamHandler {
            decoder: FrameDecoder::new(shared.runtime.config.framing),
            shared,
            conn: RawConn::of(conn),
            failed: false,
        }
    }

    fn into_callback(mut self) -> impl FnMut(StreamRef, StreamEvent) -> Result<(), Status> + 'static {
        move |_stream, event| guarded(|| self.on_event(event))
    }

    fn on_event(&mut self, event: StreamEvent) -> Result<(), Status> {
        match event {
            StreamEvent::Receive { buffers, total_buffer_length, .. } => {
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
                    self.violation(TransportError::Protocol("stream ended inside a frame".into()));
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
        if let Some(error) = error {
            self.shared.deliver(frames, 0, indicated);
            self.violation(error);
            return Ok(());
        }
        let pause = self.shared.deliver(frames, self.decoder.buffered(), indicated);
        if pause {
            // The receiver completes this indication once it has caught up.
            return Err(Status::new(StatusCode::QUIC_STATUS_PENDING));
        }
        Ok(())
    }

    fn violation(&mut self, error: TransportError) {
        tracing::warn!(%error, "closing a connection whose peer broke the framing");
        self.failed = true;
        self.decoder.clear();
        self.shared.drop_partial();
        self.conn.shutdown(self.shared.record_close(close::FRAMING));
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
    /// What it is charged against [`MAX_IN_FLIGHT`].
    fn len(&self) -> usize {
        HEADER_LEN + self.payload.len() + SEND_OVERHEAD
    }

    /// Hands `frame` (header + payload) to MsQuic without copying it.
    fn submit(stream: &Stream, header: [u8; HEADER_LEN], payload: Bytes) -> Result<(), Status> {
        let empty: &[u8] = &[];
        let mut boxed =
            Box::new(SendBuffers { header, payload, refs: [BufferRef::from(empty), BufferRef::from(empty)] });
        // The box's heap address and the payload's bytes no longer move.
        boxed.refs = [BufferRef::from(&boxed.header[..]), BufferRef::from(&boxed.payload[..])];
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
pub(super) async fn connect(runtime: Arc<Runtime>, addr: SocketAddr) -> Result<MsQuicConnection, TransportError> {
    let _turn = runtime.dials.turn().await?;
    let slot = Slot::take(&runtime, None).ok_or_else(|| {
        TransportError::Refused(format!("connection limit ({}) reached", runtime.config.limits.max_connections))
    })?;
    let shared = Shared::new(runtime.clone());
    let (ready_tx, ready_rx) = oneshot::channel();
    let handler =
        ConnHandler { shared: shared.clone(), role: Role::Client { ready: Some(ready_tx) }, slot: Some(slot) };
    let conn = QuicConnection::open(runtime.registration(), handler.into_callback())
        .map_err(|e| TransportError::Protocol(format!("opening a connection: {e}")))?;
    let mut owner = Owner::new(conn, shared.clone(), runtime.clone());
    if let Err(status) = owner.conn().start(runtime.client_config(), &addr.ip().to_string(), addr.port()) {
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
    Ok(MsQuicConnection { owner, shared, info, framing: runtime.config.framing })
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
        let MsQuicConnection { owner, shared, framing, .. } = self;
        let owner = Arc::new(owner);
        let sender = MsQuicSender { owner: owner.clone(), shared: shared.clone(), framing };
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
        let (header, rest) = bytes.split_first_chunk::<HEADER_LEN>().expect("a header's worth");
        self.shared.lock().in_flight += bytes.len() + SEND_OVERHEAD;
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
        let len = HEADER_LEN + message.len() + SEND_OVERHEAD;
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
            let _ = stream.shutdown(StreamShutdownFlags::GRACEFUL, close::NORMAL);
        }
        let _ = tokio::time::timeout(CLOSE_LINGER, self.shared.wait_fin_acked()).await;
        self.owner.conn().shutdown(ConnectionShutdownFlags::NONE, self.shared.close_code());
        self.shared.mark_closed();
    }

    async fn reject(&mut self, code: u64) {
        self.owner.close_for(code);
    }
}

/// The receiving half of an [`MsQuicConnection`].
pub struct MsQuicReceiver {
    owner: Arc<Owner>,
    shared: Arc<Shared>,
}

impl MsQuicReceiver {
    /// Closes the connection because its partial frame missed the deadline.
    fn frame_deadline_passed(&self) -> TransportError {
        let deadline = self.shared.limits().frame_deadline;
        tracing::warn!(?deadline, "closing a connection whose frame did not complete in time");
        self.shared.drop_partial();
        self.owner.close_for(close::FRAME_DEADLINE);
        TransportError::Protocol(format!("a frame did not complete within {deadline:?}"))
    }
}

#[cfg(test)]
impl MsQuicReceiver {
    /// The code the peer closed the connection with, if it did.
    pub(super) fn peer_close_code(&self) -> Option<u64> {
        self.shared.lock().peer_close_code
    }

    /// Bytes the transport's connections hold beyond their reserves.
    pub(super) fn budget_excess(&self) -> usize {
        self.shared.runtime.budget.excess()
    }
}

impl MessageReceiver for MsQuicReceiver {
    async fn recv(&mut self) -> Result<Bytes, TransportError> {
        let budget = &self.shared.runtime.budget;
        loop {
            // Registered before the checks, so no wake-up is missed.
            let received = self.shared.recv_ready.notified();
            let freed = budget.freed.notified();
            let (message, resume, paused, deadline) = {
                let mut state = self.shared.lock();
                let message = state.inbox.pop_front();
                if let Some(message) = &message {
                    state.unread -= HEADER_LEN + message.len();
                    self.shared.rebalance(&mut state);
                } else if state.closed {
                    return Err(TransportError::Closed);
                }
                let paused = state.paused.is_some();
                let resume = paused && !self.shared.over_limit(&state);
                let deadline = state.partial_since.map(|since| since + self.shared.limits().frame_deadline);
                (message, resume, paused, deadline)
            };
            if resume {
                self.owner.release_paused();
            }
            if let Some(message) = message {
                return Ok(message);
            }
            // Only a paused connection waits for the budget to free up.
            let freed = async {
                if paused {
                    freed.await
                } else {
                    std::future::pending().await
                }
            };
            let deadline = async {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                () = received => {}
                () = freed => {}
                () = deadline => {
                    let still_partial = self.shared.lock().partial_since.is_some_and(|since| {
                        since.elapsed() >= self.shared.limits().frame_deadline
                    });
                    if still_partial {
                        return Err(self.frame_deadline_passed());
                    }
                }
            }
        }
    }
}

/// Builds the callback of a connection a listener just received: it owns the
/// connection until the handshake completes and then hands it to `accepted`.
pub(super) fn server_callback(
    conn: QuicConnection,
    slot: Slot,
    runtime: Arc<Runtime>,
    accepted: mpsc::UnboundedSender<MsQuicConnection>,
) -> impl FnMut(ConnectionRef, ConnectionEvent) -> Result<(), Status> + 'static {
    let shared = Shared::new(runtime.clone());
    let owner = Owner::new(conn, shared.clone(), runtime);
    ConnHandler { shared, role: Role::Server { pending: Some(owner), accepted }, slot: Some(slot) }.into_callback()
}

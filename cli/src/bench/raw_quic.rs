//! The baseline of the transport benchmarks: raw MsQuic streams driven
//! through the msquic crate directly, with no framing, no tokio bridge and
//! no node. The same MsQuic settings as [`MsQuicTransport`]'s (flow-control
//! window, timeouts) and the same in-flight limit, so the comparison isolates
//! what tandem's layers cost.
//!
//! A client opens a stream per connection and writes payloads back to back;
//! the server counts the bytes each `Receive` event hands it.
//!
//! [`MsQuicTransport`]: tandem_msquic::MsQuicTransport

use std::ffi::c_void;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{mpsc, Arc, Condvar, Mutex};
// Wall-clock `Instant`: benchmarks time real work, outside any simulation.
use std::time::{Duration, Instant};

use bytes::Bytes;
use msquic::{
    Addr, BufferRef, Configuration, Connection, ConnectionEvent, ConnectionShutdownFlags, CredentialFlags, Listener,
    ListenerEvent, Registration, RegistrationConfig, SendFlags, Stream, StreamEvent, StreamOpenFlags, StreamStartFlags,
};
use tandem_msquic::{MsQuicConfig, TlsIdentity, ALPN};

/// Bytes in flight beyond which the sender waits: `MsQuicTransport`'s limit.
const MAX_IN_FLIGHT: usize = 4 * 1024 * 1024;
/// How long a handshake or a transfer may take before the benchmark gives up.
const PATIENCE: Duration = Duration::from_secs(60);

type Failure = String;

fn fail(what: &str) -> impl Fn(msquic::Status) -> Failure + '_ {
    move |status| format!("raw MsQuic {what}: {status}")
}

/// Bytes received by the server side, and when the latest arrived.
#[derive(Default)]
struct Sink {
    state: Mutex<(u64, Option<Instant>)>,
    arrived: Condvar,
}

impl Sink {
    fn add(&self, bytes: u64) {
        let mut state = self.state.lock().expect("sink lock");
        state.0 += bytes;
        state.1 = Some(Instant::now());
        self.arrived.notify_all();
    }

    /// Waits until `total` bytes have arrived; returns when the last did.
    fn wait_for(&self, total: u64) -> Result<Instant, Failure> {
        let state = self.state.lock().expect("sink lock");
        let (state, timeout) = self.arrived.wait_timeout_while(state, PATIENCE, |s| s.0 < total).expect("sink lock");
        match state.1 {
            Some(at) if !timeout.timed_out() => Ok(at),
            _ => Err(format!("raw MsQuic: {} of {total} bytes arrived", state.0)),
        }
    }
}

/// Server-side handles, closed by [`RawQuic`]'s drop (never in a callback).
#[derive(Default)]
struct ServerHandles {
    streams: Vec<Stream>,
    connections: Vec<Connection>,
}

/// A registration with a listener on loopback that counts what it receives.
pub struct RawQuic {
    // Field order is drop order: connections before the listener, the
    // listener and configurations before the registration.
    server: Arc<Mutex<ServerHandles>>,
    listener: Listener,
    addr: SocketAddr,
    sink: Arc<Mutex<Arc<Sink>>>,
    client_config: Configuration,
    _server_config: Arc<Configuration>,
    registration: Registration,
}

/// An open client connection with its stream and send window.
struct Client {
    stream: Stream,
    connection: Connection,
    in_flight: Arc<(Mutex<usize>, Condvar)>,
}

/// One payload on its way; freed on SEND_COMPLETE.
struct Pending {
    _payload: Bytes,
    refs: [BufferRef; 1],
}

impl RawQuic {
    /// Opens the registration, both configurations and the listener.
    pub fn open() -> Result<RawQuic, Failure> {
        let registration = Registration::new(&RegistrationConfig::new().set_app_name("tandem-bench-raw".into()))
            .map_err(fail("registration"))?;
        let settings = MsQuicConfig::default();
        let alpn = [BufferRef::from(ALPN)];
        let identity = TlsIdentity::generate().map_err(|e| e.to_string())?;
        // The client opens the stream here, so the server must allow one.
        let server_config =
            Configuration::open(&registration, &alpn, Some(&settings.settings(true).set_PeerBidiStreamCount(1)))
                .map_err(fail("server configuration"))?;
        identity.load_into(&server_config, CredentialFlags::NO_CERTIFICATE_VALIDATION).map_err(|e| e.to_string())?;
        let client_config = Configuration::open(&registration, &alpn, Some(&settings.settings(false)))
            .map_err(fail("client configuration"))?;
        identity
            .load_into(&client_config, CredentialFlags::CLIENT | CredentialFlags::NO_CERTIFICATE_VALIDATION)
            .map_err(|e| e.to_string())?;
        let server_config = Arc::new(server_config);
        let server = Arc::new(Mutex::new(ServerHandles::default()));
        let sink = Arc::new(Mutex::new(Arc::new(Sink::default())));
        let listener = Listener::open(&registration, {
            let (server, sink, config) = (server.clone(), sink.clone(), server_config.clone());
            move |_, event| {
                if let ListenerEvent::NewConnection { connection, .. } = event {
                    // SAFETY: MsQuic hands the new connection's ownership to us.
                    let owned = unsafe { Connection::from_raw(connection.as_raw()) };
                    connection.set_callback_handler(server_connection(server.clone(), sink.clone()));
                    connection.set_configuration(&config)?;
                    server.lock().expect("handles lock").connections.push(owned);
                }
                Ok(())
            }
        })
        .map_err(fail("listener"))?;
        let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        listener.start(&alpn, Some(&Addr::from(loopback))).map_err(fail("listen"))?;
        let addr =
            listener.get_local_addr().ok().and_then(|a| a.as_socket()).ok_or("raw MsQuic: no listener address")?;
        Ok(RawQuic { server, listener, addr, sink, client_config, _server_config: server_config, registration })
    }

    /// Starts counting afresh.
    fn reset(&self) -> Arc<Sink> {
        let sink = Arc::new(Sink::default());
        *self.sink.lock().expect("sink lock") = sink.clone();
        sink
    }

    fn connect(&self) -> Result<Client, Failure> {
        let (connected_tx, connected) = mpsc::channel();
        let connection = Connection::open(&self.registration, move |_, event| {
            if let ConnectionEvent::Connected { .. } = event {
                let _ = connected_tx.send(());
            }
            Ok(())
        })
        .map_err(fail("connection"))?;
        connection
            .start(&self.client_config, &self.addr.ip().to_string(), self.addr.port())
            .map_err(fail("connect"))?;
        connected.recv_timeout(PATIENCE).map_err(|_| "raw MsQuic: handshake timed out".to_string())?;
        let in_flight = Arc::new((Mutex::new(0usize), Condvar::new()));
        let window = in_flight.clone();
        let stream = Stream::open(&connection, StreamOpenFlags::NONE, move |_, event| {
            if let StreamEvent::SendComplete { client_context, .. } = event {
                // SAFETY: every send passes a `Pending` box, completed exactly once.
                let sent = unsafe { Box::from_raw(client_context as *mut Pending) };
                let (count, freed) = &*window;
                *count.lock().expect("window lock") -= sent.refs[0].as_bytes().len();
                freed.notify_all();
            }
            Ok(())
        })
        .map_err(fail("stream"))?;
        stream.start(StreamStartFlags::IMMEDIATE).map_err(fail("stream start"))?;
        Ok(Client { stream, connection, in_flight })
    }

    /// Seconds to move `count` payloads of `size` bytes over each of
    /// `connections` connections (written in turn), until all arrived.
    pub fn throughput(&self, size: usize, count: usize, connections: usize) -> Result<f64, Failure> {
        // Streams take the sink current when they arrive: reset first.
        let sink = self.reset();
        let clients = (0..connections).map(|_| self.connect()).collect::<Result<Vec<_>, _>>()?;
        let payload = Bytes::from(vec![7u8; size]);
        let start = Instant::now();
        for _ in 0..count {
            for client in &clients {
                client.send(&payload)?;
            }
        }
        let last = sink.wait_for((size * count * connections) as u64)?;
        Ok(last.duration_since(start).as_secs_f64())
    }

    /// One-way latencies of `samples` payloads of `size` bytes, each sent
    /// once the previous one arrived.
    pub fn latencies(&self, size: usize, samples: usize) -> Result<Vec<Duration>, Failure> {
        let sink = self.reset();
        let client = self.connect()?;
        let payload = Bytes::from(vec![7u8; size]);
        let mut latencies = Vec::with_capacity(samples);
        for sent in 1..=samples {
            let start = Instant::now();
            client.send(&payload)?;
            latencies.push(sink.wait_for((sent * size) as u64)?.duration_since(start));
        }
        Ok(latencies)
    }
}

impl Client {
    /// Queues `payload` without copying it, waiting while the window is full.
    fn send(&self, payload: &Bytes) -> Result<(), Failure> {
        let (count, freed) = &*self.in_flight;
        let mut in_flight = count.lock().expect("window lock");
        while *in_flight != 0 && *in_flight + payload.len() > MAX_IN_FLIGHT {
            in_flight = freed.wait(in_flight).expect("window lock");
        }
        *in_flight += payload.len();
        drop(in_flight);
        let mut pending = Box::new(Pending { _payload: payload.clone(), refs: [BufferRef::from(&b""[..])] });
        pending.refs = [BufferRef::from(&payload[..])];
        let raw = Box::into_raw(pending);
        // SAFETY: the box (and the payload it holds) lives until SEND_COMPLETE frees it.
        let result = unsafe { self.stream.send(&(*raw).refs, SendFlags::NONE, raw as *const c_void) };
        result.map_err(|status| {
            drop(unsafe { Box::from_raw(raw) });
            fail("send")(status)
        })
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.connection.shutdown(ConnectionShutdownFlags::NONE, 0);
    }
}

impl Drop for RawQuic {
    fn drop(&mut self) {
        let handles = std::mem::take(&mut *self.server.lock().expect("handles lock"));
        for connection in &handles.connections {
            connection.shutdown(ConnectionShutdownFlags::NONE, 0);
        }
        drop(handles);
        self.listener.stop();
        self.registration.shutdown();
    }
}

/// The callback of an accepted connection: owns the client's stream and
/// counts what arrives on it.
fn server_connection(
    server: Arc<Mutex<ServerHandles>>,
    sink: Arc<Mutex<Arc<Sink>>>,
) -> impl FnMut(msquic::ConnectionRef, ConnectionEvent) -> Result<(), msquic::Status> + 'static {
    move |_, event| {
        if let ConnectionEvent::PeerStreamStarted { stream, .. } = event {
            let sink = sink.lock().expect("sink lock").clone();
            // SAFETY: MsQuic hands the new stream's ownership to us.
            let owned = unsafe { Stream::from_raw(stream.as_raw()) };
            owned.set_callback_handler(move |_, event| {
                if let StreamEvent::Receive { total_buffer_length, .. } = event {
                    sink.add(*total_buffer_length);
                }
                Ok(())
            });
            server.lock().expect("handles lock").streams.push(owned);
        }
        Ok(())
    }
}

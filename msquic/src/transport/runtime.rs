//! The registration and configurations shared by a transport's listeners and
//! connections, and the thread that closes MsQuic handles.
//!
//! Closing a handle blocks until MsQuic's worker has processed it, and
//! closing one from another handle's callback can deadlock on a shared worker.
//! So every close goes to one dedicated thread, in order: each listener and
//! connection holds an `Arc<Runtime>` and queues its own close before letting
//! go of it, so the registration (closed last, when the last `Arc` goes) never
//! waits for a live handle and dropping anything never blocks or hangs.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, Once, OnceLock, PoisonError, TryLockError};
// Wall-clock `Instant`: the MsQuic backend runs only on the real network.
use std::time::{Duration, Instant};

use msquic::{BufferRef, Configuration, CredentialFlags, Registration, RegistrationConfig, Status, StatusCode};

use super::config::{MsQuicConfig, ALPN};
use super::identity::TlsIdentity;
use super::limits::{Budget, Counts, DialGate};
use tandem::transport::TransportError;

type Job = Box<dyn FnOnce() + Send>;

/// Set when the process exits. The msquic crate drops its API table in an
/// exit-time destructor, after which closing a handle would panic; closes
/// left then are the OS's to clean up. The closer holds the lock while it
/// closes, so the exit waits for a close in progress.
static EXITING: Mutex<bool> = Mutex::new(false);

/// Runs at exit, before the msquic crate's destructor (`atexit` handlers
/// run in reverse order, and that destructor was registered first).
extern "C" fn stop_closing() {
    // A close in progress ends within MsQuic's worker loop; wait for it a
    // while, never forever.
    let patience = Instant::now() + Duration::from_secs(1);
    loop {
        match EXITING.try_lock() {
            Ok(mut exiting) => return *exiting = true,
            Err(TryLockError::Poisoned(poisoned)) => return *poisoned.into_inner() = true,
            Err(TryLockError::WouldBlock) if Instant::now() < patience => std::thread::sleep(Duration::from_millis(1)),
            Err(TryLockError::WouldBlock) => return,
        }
    }
}

/// Runs `job` (a handle close) on the closer thread, after every job queued
/// before it. Never blocks.
pub(super) fn close_later(job: impl FnOnce() + Send + 'static) {
    static CLOSER: OnceLock<mpsc::Sender<Job>> = OnceLock::new();
    let sender = CLOSER.get_or_init(|| {
        unsafe extern "C" {
            fn atexit(callback: extern "C" fn()) -> i32;
        }
        // SAFETY: registers a plain function; a failure only leaves the
        // exit-time race open.
        let _ = unsafe { atexit(stop_closing) };
        let (tx, rx) = mpsc::channel::<Job>();
        // If the thread cannot start, `rx` is dropped with the closure and
        // jobs run inline below instead.
        let _ = std::thread::Builder::new().name("msquic-closer".into()).spawn(move || {
            for job in rx {
                let exiting = EXITING.lock().unwrap_or_else(PoisonError::into_inner);
                if *exiting {
                    return;
                }
                let _ = catch_unwind(AssertUnwindSafe(job));
                drop(exiting);
            }
        });
        tx
    });
    if let Err(mpsc::SendError(job)) = sender.send(Box::new(job)) {
        job();
    }
}

/// Holds one extra reference to the MsQuic library for the rest of the
/// process. The msquic crate closes the library in an exit-time destructor,
/// which aborts the process if a registration is still open; with closes
/// running asynchronously on the closer thread, one can be at exit. Leaving
/// the library loaded until the OS reclaims it avoids that race.
fn keep_library_loaded() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        unsafe extern "C" {
            fn MsQuicOpenVersion(version: u32, api: *mut *const msquic::ffi::QUIC_API_TABLE) -> u32;
        }
        let mut table = std::ptr::null();
        // SAFETY: the documented entry point; the table is deliberately never
        // closed. A failure only means the reference was not taken.
        let _ = unsafe { MsQuicOpenVersion(2, &mut table) };
    });
}

/// Runs a callback body, turning a panic into an error status: a panic must
/// not unwind into MsQuic's C code.
pub(super) fn guarded(body: impl FnOnce() -> Result<(), Status>) -> Result<(), Status> {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|_| {
        tracing::error!("panic in an MsQuic callback");
        Err(Status::new(StatusCode::QUIC_STATUS_INTERNAL_ERROR))
    })
}

/// One registration with its server and client configurations.
pub(super) struct Runtime {
    // Options only so that `Drop` can move them to the closer thread.
    server: Option<Configuration>,
    client: Option<Configuration>,
    registration: Option<Registration>,
    /// The transport's configuration.
    pub(super) config: MsQuicConfig,
    /// Set once the registration has closed, i.e. after every handle.
    pub(super) closed: Arc<AtomicBool>,
    /// Bytes the connections hold beyond their reserves.
    pub(super) budget: Budget,
    /// Live connections and handshakes.
    pub(super) counts: Counts,
    /// Paces outgoing connects.
    pub(super) dials: DialGate,
}

impl Runtime {
    /// Opens the registration and both configurations with `identity` loaded.
    pub(super) fn open(config: MsQuicConfig, identity: &TlsIdentity) -> Result<Self, TransportError> {
        let setup = |what: &str, e: Status| TransportError::Protocol(format!("MsQuic {what}: {e}"));
        keep_library_loaded();
        let registration = Registration::new(&RegistrationConfig::new().set_app_name("tandem".into()))
            .map_err(|e| setup("registration", e))?;
        let alpn = [BufferRef::from(ALPN)];
        // Certificates are checked against the trust policy in the
        // PEER_CERTIFICATE_RECEIVED event, so MsQuic's own chain validation
        // (which would reject every self-signed certificate) is off. Portable
        // certificates hand us the DER to hash.
        let common = CredentialFlags::NO_CERTIFICATE_VALIDATION
            | CredentialFlags::INDICATE_CERTIFICATE_RECEIVED
            | CredentialFlags::USE_PORTABLE_CERTIFICATES;
        let server = Configuration::open(&registration, &alpn, Some(&config.settings(true)))
            .map_err(|e| setup("server configuration", e))?;
        // Every client must present a certificate, in every trust mode; the
        // trust policy refuses one that presents none.
        identity.load_into(&server, common | CredentialFlags::REQUIRE_CLIENT_AUTHENTICATION)?;
        let client = Configuration::open(&registration, &alpn, Some(&config.settings(false)))
            .map_err(|e| setup("client configuration", e))?;
        identity.load_into(&client, common | CredentialFlags::CLIENT)?;
        Ok(Runtime {
            server: Some(server),
            client: Some(client),
            registration: Some(registration),
            dials: DialGate::new(&config.limits),
            config,
            closed: Arc::new(AtomicBool::new(false)),
            budget: Budget::default(),
            counts: Counts::default(),
        })
    }

    pub(super) fn registration(&self) -> &Registration {
        self.registration.as_ref().expect("registration lives until drop")
    }

    pub(super) fn server_config(&self) -> &Configuration {
        self.server.as_ref().expect("configuration lives until drop")
    }

    pub(super) fn client_config(&self) -> &Configuration {
        self.client.as_ref().expect("configuration lives until drop")
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let (server, client, registration) = (self.server.take(), self.client.take(), self.registration.take());
        let closed = self.closed.clone();
        // Queued after the close of every handle that held this runtime:
        // configurations, then the registration.
        close_later(move || {
            drop(server);
            drop(client);
            if let Some(registration) = registration {
                registration.shutdown();
                drop(registration);
            }
            closed.store(true, Ordering::Release);
        });
    }
}

//! TLS identities: a certificate and its key, the SHA-256 that names a peer,
//! and loading them into an MsQuic configuration.

use std::fmt;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use msquic::{CertificateFile, Configuration, Credential, CredentialConfig, CredentialFlags};
use sha2::{Digest, Sha256};

use tandem::transport::{PeerIdentity, TransportError};

/// A certificate (DER) and its private key (PKCS#8 DER).
#[derive(Clone, PartialEq, Eq)]
pub struct TlsIdentity {
    /// The X.509 certificate, DER.
    pub cert_der: Vec<u8>,
    /// The private key, PKCS#8 DER.
    pub key_der: Vec<u8>,
}

impl fmt::Debug for TlsIdentity {
    // Never print the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity").field("id", &self.id()).finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// A fresh self-signed certificate (ECDSA P-256).
    pub fn generate() -> Result<Self, TransportError> {
        let certified = rcgen::generate_simple_self_signed(vec!["tandem".to_string()])
            .map_err(|e| TransportError::Protocol(format!("generating a certificate: {e}")))?;
        Ok(TlsIdentity { cert_der: certified.cert.der().to_vec(), key_der: certified.signing_key.serialize_der() })
    }

    /// The identity peers see: SHA-256 of the certificate DER.
    pub fn id(&self) -> PeerIdentity {
        identity_of(&self.cert_der)
    }

    /// Loads this identity into `config` with `flags`. MsQuic's OpenSSL
    /// backend takes PEM files (or PKCS#12, which we cannot build without
    /// another dependency), so the files live in a private temporary
    /// directory only while the credential loads (synchronously).
    pub fn load_into(&self, config: &Configuration, flags: CredentialFlags) -> Result<(), TransportError> {
        let files =
            PemFiles::write(self).map_err(|e| TransportError::Protocol(format!("writing TLS identity: {e}")))?;
        let credential = Credential::CertificateFile(CertificateFile::new(
            files.key.display().to_string(),
            files.cert.display().to_string(),
        ));
        let cred_config = CredentialConfig::new().set_credential_flags(flags).set_credential(credential);
        config.load_credential(&cred_config).map_err(|e| TransportError::Protocol(format!("loading TLS identity: {e}")))
    }
}

/// The identity of a certificate: SHA-256 of its DER.
pub fn identity_of(cert_der: &[u8]) -> PeerIdentity {
    PeerIdentity(Sha256::digest(cert_der).into())
}

/// The DER of the peer certificate handed to PEER_CERTIFICATE_RECEIVED when
/// the credential has `USE_PORTABLE_CERTIFICATES`: a `QUIC_BUFFER`, or null
/// when the peer sent none.
///
/// # Safety
/// `certificate` must be the pointer from that event, used only during it.
pub(super) unsafe fn portable_certificate<'a>(certificate: *const msquic::ffi::QUIC_CERTIFICATE) -> Option<&'a [u8]> {
    let buffer = certificate as *const msquic::ffi::QUIC_BUFFER;
    // SAFETY: with portable certificates MsQuic passes a QUIC_BUFFER (or null)
    // that is valid for the duration of the callback.
    let buffer = unsafe { buffer.as_ref() }?;
    if buffer.Buffer.is_null() || buffer.Length == 0 {
        return None;
    }
    Some(unsafe { std::slice::from_raw_parts(buffer.Buffer, buffer.Length as usize) })
}

/// PEM copies of an identity in a fresh 0700 directory, removed on drop.
struct PemFiles {
    dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl PemFiles {
    fn write(identity: &TlsIdentity) -> io::Result<PemFiles> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "tandem-msquic-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        // `create` fails if the path exists, so nobody can pre-plant it.
        DirBuilder::new().mode(0o700).create(&dir)?;
        let files = PemFiles { cert: dir.join("cert.pem"), key: dir.join("key.pem"), dir };
        let cert_pem = pem::encode(&pem::Pem::new("CERTIFICATE", identity.cert_der.clone()));
        let key_pem = pem::encode(&pem::Pem::new("PRIVATE KEY", identity.key_der.clone()));
        write_private(&files.cert, cert_pem.as_bytes())?;
        write_private(&files.key, key_pem.as_bytes())?;
        Ok(files)
    }
}

fn write_private(path: &PathBuf, contents: &[u8]) -> io::Result<()> {
    OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?.write_all(contents)
}

impl Drop for PemFiles {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

//! The payload of a message: a pure function of its origin, tag and size,
//! so that the harness knows every byte a receiver must hand over (S3).

use bytes::Bytes;
use xxhash_rust::xxh3::{xxh3_64, Xxh3};

/// The 8 bytes the payload of `(origin, tag)` repeats.
fn pattern(origin: u32, tag: &str) -> [u8; 8] {
    xxh3_64(format!("{origin}/{tag}").as_bytes()).to_le_bytes()
}

/// The payload the harness sends for a message of `size` bytes tagged `tag`
/// from node `origin`: deterministic, so the receiver's copy can be checked
/// byte for byte.
///
/// ```
/// use tandem_pubsub::payload::{digest_for, payload_digest, payload_for};
/// let payload = payload_for(0, "data-1", 32);
/// assert_eq!(payload.len(), 32);
/// assert_eq!(payload_digest(&payload), digest_for(0, "data-1", 32));
/// ```
pub fn payload_for(origin: u32, tag: &str, size: usize) -> Bytes {
    repeated(pattern(origin, tag), size).into()
}

/// `pattern` repeated to `len` bytes.
fn repeated(pattern: [u8; 8], len: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(len);
    while bytes.len() < len {
        let n = (len - bytes.len()).min(pattern.len());
        bytes.extend_from_slice(&pattern[..n]);
    }
    bytes
}

/// The digest used to compare payloads.
pub fn payload_digest(payload: &[u8]) -> u64 {
    xxh3_64(payload)
}

/// `payload_digest(&payload_for(origin, tag, size))`, without building the
/// payload.
pub fn digest_for(origin: u32, tag: &str, size: usize) -> u64 {
    // A multiple of the pattern's length, so every chunk starts the pattern anew.
    const CHUNK: usize = 4096;
    let block = repeated(pattern(origin, tag), size.min(CHUNK));
    let mut hasher = Xxh3::new();
    let mut left = size;
    while left > 0 {
        let n = left.min(CHUNK);
        hasher.update(&block[..n]);
        left -= n;
    }
    hasher.digest()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_streamed_digest_is_the_payload_digest() {
        for size in [0, 1, 7, 8, 32, 4095, 4096, 4097, 100_000] {
            assert_eq!(digest_for(3, "t", size), payload_digest(&payload_for(3, "t", size)), "size {size}");
        }
        assert_ne!(payload_for(0, "a", 16), payload_for(1, "a", 16));
        assert_ne!(payload_for(0, "a", 16), payload_for(0, "b", 16));
    }
}

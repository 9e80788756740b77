//! Length-prefixed framing shared by every stream-based transport.
//!
//! A frame is a 4-byte big-endian length followed by that many bytes. The
//! reader checks the length against the maximum *before* it allocates, so a
//! hostile peer that announces 4 GiB costs nothing but a closed connection.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::TransportError;

/// The default maximum frame size: 16 MiB of payload plus room for the envelope.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024 + 64 * 1024;

/// Bytes of the length prefix.
pub const HEADER_LEN: usize = 4;

/// Reads and writes length-prefixed frames with a size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framing {
    max_frame: usize,
}

impl Default for Framing {
    fn default() -> Self {
        Framing::new(DEFAULT_MAX_FRAME)
    }
}

impl Framing {
    /// A framing that accepts frames of at most `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        assert!(max_frame <= u32::MAX as usize, "frame limit must fit the 4-byte prefix");
        Framing { max_frame }
    }

    /// The largest frame this framing accepts.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Encodes `payload` as one frame (prefix + bytes).
    pub fn encode(&self, payload: &[u8]) -> Result<Bytes, TransportError> {
        self.check_len(payload.len() as u64)?;
        let mut out = BytesMut::with_capacity(HEADER_LEN + payload.len());
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(payload);
        Ok(out.freeze())
    }

    /// Writes one frame.
    pub async fn write<W: AsyncWrite + Unpin>(
        &self,
        writer: &mut W,
        payload: &[u8],
    ) -> Result<(), TransportError> {
        let frame = self.encode(payload)?;
        writer.write_all(&frame).await.map_err(TransportError::from_io)?;
        writer.flush().await.map_err(TransportError::from_io)
    }

    /// Reads one frame. A clean end of stream before a header is `Closed`; an
    /// end of stream inside a frame is a `Protocol` error (truncated frame).
    pub async fn read<R: AsyncRead + Unpin>(&self, reader: &mut R) -> Result<Bytes, TransportError> {
        let mut header = [0u8; HEADER_LEN];
        let mut filled = 0;
        while filled < HEADER_LEN {
            match reader.read(&mut header[filled..]).await.map_err(TransportError::from_io)? {
                0 if filled == 0 => return Err(TransportError::Closed),
                0 => return Err(TransportError::Protocol("truncated frame header".into())),
                n => filled += n,
            }
        }
        let len = u32::from_be_bytes(header) as u64;
        self.check_len(len)?;
        let mut body = vec![0u8; len as usize];
        match reader.read_exact(&mut body).await {
            Ok(_) => Ok(Bytes::from(body)),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(TransportError::Protocol(
                format!("truncated frame: announced {len} bytes"),
            )),
            Err(e) => Err(TransportError::from_io(e)),
        }
    }

    fn check_len(&self, len: u64) -> Result<(), TransportError> {
        if len > self.max_frame as u64 {
            return Err(TransportError::FrameTooLarge { len, max: self.max_frame as u64 });
        }
        Ok(())
    }
}

/// Incremental decoder for transports that receive bytes in chunks (QUIC
/// stream callbacks): push bytes in, take whole frames out.
#[derive(Debug)]
pub struct FrameDecoder {
    framing: Framing,
    buf: BytesMut,
}

impl FrameDecoder {
    /// A decoder enforcing `framing`'s maximum.
    pub fn new(framing: Framing) -> Self {
        FrameDecoder { framing, buf: BytesMut::new() }
    }

    /// Appends received bytes. A frame's buffer is allocated at its exact
    /// size once its header is known, never doubled past it.
    pub fn push(&mut self, mut bytes: &[u8]) {
        if self.buf.len() < HEADER_LEN {
            let head = (HEADER_LEN - self.buf.len()).min(bytes.len());
            self.buf.extend_from_slice(&bytes[..head]);
            bytes = &bytes[head..];
            if self.buf.len() == HEADER_LEN {
                let len = u32::from_be_bytes(self.buf[..HEADER_LEN].try_into().expect("4 bytes")) as u64;
                // An oversized length is refused by `next_frame`; reserve nothing for it.
                if self.framing.check_len(len).is_ok() {
                    self.buf.reserve(len as usize);
                }
            }
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Drops everything buffered, frees its memory.
    pub fn clear(&mut self) {
        self.buf = BytesMut::new();
    }

    /// Bytes held: the partial frame and any whole frames not yet taken.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next whole frame, `Ok(None)` when more bytes are needed, or an error
    /// for an oversized announcement (checked before any allocation).
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, TransportError> {
        if self.buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let len = u32::from_be_bytes(self.buf[..HEADER_LEN].try_into().expect("4 bytes")) as u64;
        self.framing.check_len(len)?;
        if self.buf.len() < HEADER_LEN + len as usize {
            return Ok(None);
        }
        let mut frame = self.buf.split_to(HEADER_LEN + len as usize);
        Ok(Some(frame.split_off(HEADER_LEN).freeze()))
    }

    /// Whether a partial frame is buffered (an end of stream now means truncation).
    pub fn has_partial(&self) -> bool {
        !self.buf.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip() {
        let framing = Framing::new(1024);
        let mut wire = Vec::new();
        framing.write(&mut wire, b"hello").await.unwrap();
        framing.write(&mut wire, b"").await.unwrap();
        let mut reader = &wire[..];
        assert_eq!(&framing.read(&mut reader).await.unwrap()[..], b"hello");
        assert!(framing.read(&mut reader).await.unwrap().is_empty());
        assert!(matches!(framing.read(&mut reader).await, Err(TransportError::Closed)));
    }

    #[tokio::test]
    async fn oversized_prefix_is_rejected_before_allocation() {
        let framing = Framing::new(1024);
        // Announces 4 GiB - 1: allocating it would abort the test process.
        let wire = [0xffu8, 0xff, 0xff, 0xff, 1, 2, 3];
        let err = framing.read(&mut &wire[..]).await.unwrap_err();
        assert!(matches!(err, TransportError::FrameTooLarge { len: 0xffff_ffff, max: 1024 }));
        let mut decoder = FrameDecoder::new(framing);
        decoder.push(&wire);
        assert!(matches!(decoder.next_frame(), Err(TransportError::FrameTooLarge { .. })));
    }

    #[tokio::test]
    async fn truncated_frames_are_protocol_errors() {
        let framing = Framing::new(1024);
        let body = [0u8, 0, 0, 10, 1, 2, 3];
        assert!(matches!(framing.read(&mut &body[..]).await, Err(TransportError::Protocol(_))));
        let header = [0u8, 0];
        assert!(matches!(framing.read(&mut &header[..]).await, Err(TransportError::Protocol(_))));
    }

    #[test]
    fn decoder_reassembles_split_frames() {
        let framing = Framing::new(1024);
        let frame = framing.encode(b"abcdef").unwrap();
        let mut decoder = FrameDecoder::new(framing);
        decoder.push(&frame[..3]);
        assert!(decoder.next_frame().unwrap().is_none());
        assert!(decoder.has_partial());
        decoder.push(&frame[3..]);
        assert_eq!(&decoder.next_frame().unwrap().unwrap()[..], b"abcdef");
        assert!(!decoder.has_partial());
    }

    #[test]
    fn a_partial_frame_holds_its_size_not_double() {
        let len = 1 << 20;
        let mut decoder = FrameDecoder::new(Framing::new(len));
        decoder.push(&(len as u32).to_be_bytes());
        for _ in 0..(len / 1000) {
            decoder.push(&[7; 1000]);
        }
        assert_eq!(decoder.buffered(), HEADER_LEN + len / 1000 * 1000);
        assert!(decoder.buf.capacity() <= HEADER_LEN + len + 64, "capacity {}", decoder.buf.capacity());
        assert!(decoder.next_frame().unwrap().is_none());
    }

    #[test]
    fn oversized_send_is_refused() {
        let framing = Framing::new(4);
        assert!(matches!(framing.encode(b"12345"), Err(TransportError::FrameTooLarge { len: 5, max: 4 })));
    }
}

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
    pub async fn write<W: AsyncWrite + Unpin>(&self, writer: &mut W, payload: &[u8]) -> Result<(), TransportError> {
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
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err(TransportError::Protocol(format!("truncated frame: announced {len} bytes")))
            }
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

/// Frame bodies larger than this are reassembled in pieces of at most this
/// size. A frame that never completes then holds only what arrived, in
/// allocations small enough for the allocator to reuse: one allocation the
/// size of the frame per partial frame is, once freed, kept by the
/// allocator rather than reused or returned.
const PIECE: usize = 64 * 1024;

/// Incremental decoder for transports that receive bytes in chunks (QUIC
/// stream callbacks): push bytes in, take whole frames out.
#[derive(Debug)]
pub struct FrameDecoder {
    framing: Framing,
    /// Bytes not yet taken: headers and small frames.
    buf: BytesMut,
    /// The large frame being reassembled, whose header `buf` had.
    large: Option<Pieces>,
}

/// A large frame's body, arriving.
#[derive(Debug)]
struct Pieces {
    len: usize,
    held: usize,
    pieces: Vec<BytesMut>,
}

impl Pieces {
    fn missing(&self) -> usize {
        self.len - self.held
    }

    /// Keeps what of `bytes` belongs to the frame; the rest.
    fn fill<'a>(&mut self, bytes: &'a [u8]) -> &'a [u8] {
        let (mut mine, rest) = bytes.split_at(self.missing().min(bytes.len()));
        while !mine.is_empty() {
            let room = self.pieces.last().map_or(0, |piece| piece.capacity() - piece.len());
            if room == 0 {
                self.pieces.push(BytesMut::with_capacity(PIECE.min(self.missing())));
                continue;
            }
            let (now, later) = mine.split_at(room.min(mine.len()));
            self.pieces.last_mut().expect("a piece with room").extend_from_slice(now);
            self.held += now.len();
            mine = later;
        }
        rest
    }

    /// The whole frame, each piece freed once copied.
    fn into_frame(self) -> Bytes {
        assert_eq!(self.held, self.len, "a large frame taken before it was whole");
        let mut frame = BytesMut::with_capacity(self.len);
        for piece in self.pieces {
            frame.extend_from_slice(&piece);
        }
        frame.freeze()
    }
}

impl FrameDecoder {
    /// A decoder enforcing `framing`'s maximum.
    pub fn new(framing: Framing) -> Self {
        FrameDecoder { framing, buf: BytesMut::new(), large: None }
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        let rest = match &mut self.large {
            Some(large) => large.fill(bytes),
            None => bytes,
        };
        self.buf.extend_from_slice(rest);
    }

    /// Drops everything buffered, frees its memory.
    pub fn clear(&mut self) {
        self.buf = BytesMut::new();
        self.large = None;
    }

    /// Bytes held: the partial frame and any whole frames not yet taken.
    pub fn buffered(&self) -> usize {
        self.buf.len() + self.large.as_ref().map_or(0, |large| large.held)
    }

    /// The next whole frame, `Ok(None)` when more bytes are needed, or an error
    /// for an oversized announcement (checked before any allocation).
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, TransportError> {
        if let Some(large) = &self.large {
            if large.missing() > 0 {
                return Ok(None);
            }
            return Ok(self.large.take().map(Pieces::into_frame));
        }
        if self.buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let len = u32::from_be_bytes(self.buf[..HEADER_LEN].try_into().expect("4 bytes")) as u64;
        self.framing.check_len(len)?;
        let len = len as usize;
        if len > PIECE {
            // From here on its body goes to pieces, whatever else `buf` held back.
            let body = self.buf.split_off(HEADER_LEN);
            self.buf.clear();
            let mut large = Pieces { len, held: 0, pieces: Vec::new() };
            self.buf.extend_from_slice(large.fill(&body));
            self.large = Some(large);
            return self.next_frame();
        }
        if self.buf.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let mut frame = self.buf.split_to(HEADER_LEN + len);
        Ok(Some(frame.split_off(HEADER_LEN).freeze()))
    }

    /// Whether a partial frame is buffered (an end of stream now means truncation).
    pub fn has_partial(&self) -> bool {
        !self.buf.is_empty() || self.large.is_some()
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
    fn a_partial_frame_holds_what_arrived_in_pieces() {
        let len = 1 << 20;
        let mut decoder = FrameDecoder::new(Framing::new(len));
        decoder.push(&(len as u32).to_be_bytes());
        for _ in 0..(len / 1000) {
            decoder.push(&[7; 1000]);
            assert!(decoder.next_frame().unwrap().is_none());
        }
        let arrived = len / 1000 * 1000;
        assert_eq!(decoder.buffered(), arrived);
        let large = decoder.large.as_ref().expect("a large frame in progress");
        let capacity: usize = large.pieces.iter().map(|piece| piece.capacity()).sum();
        assert!(capacity <= arrived + PIECE, "capacity {capacity} for {arrived} bytes");
        assert!(large.pieces.iter().all(|piece| piece.capacity() <= PIECE));
    }

    #[test]
    fn large_and_small_frames_reassemble_whatever_the_chunking() {
        let framing = Framing::new(1 << 20);
        let bodies: Vec<Vec<u8>> = [3, PIECE + 1, 0, 5 * PIECE + 17, PIECE, 9]
            .iter()
            .enumerate()
            .map(|(i, &len)| (0..len).map(|j| (i * 31 + j) as u8).collect())
            .collect();
        let stream: Vec<u8> = bodies.iter().flat_map(|body| framing.encode(body).unwrap().to_vec()).collect();
        for step in [1, 7, 1000, PIECE - 1, PIECE + 3, stream.len()] {
            let mut decoder = FrameDecoder::new(framing);
            let mut frames = Vec::new();
            for chunk in stream.chunks(step) {
                decoder.push(chunk);
                while let Some(frame) = decoder.next_frame().unwrap() {
                    frames.push(frame.to_vec());
                }
            }
            assert_eq!(frames, bodies, "chunks of {step}");
            assert!(!decoder.has_partial());
            assert_eq!(decoder.buffered(), 0);
        }
    }

    #[test]
    fn oversized_send_is_refused() {
        let framing = Framing::new(4);
        assert!(matches!(framing.encode(b"12345"), Err(TransportError::FrameTooLarge { len: 5, max: 4 })));
    }
}

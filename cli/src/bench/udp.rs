//! The machine's ceiling: a raw UDP echo on loopback, with no QUIC, crypto,
//! congestion control or framing at all.

use std::net::{Ipv4Addr, UdpSocket};
// Wall-clock `Instant`: benchmarks time real work, outside any simulation.
use std::time::{Duration, Instant};

/// The largest datagram the echo sends; larger messages go as several.
const MAX_DATAGRAM: usize = 60_000;
/// Bytes the client keeps outstanding (well under the default socket buffer).
const WINDOW: usize = 128 * 1024;
/// Datagrams the client keeps outstanding: each costs buffer space too.
const WINDOW_DATAGRAMS: usize = 32;
/// How long a datagram may take before it counts as lost.
const LOSS_TIMEOUT: Duration = Duration::from_millis(200);

/// A UDP echo server on a loopback port, answering until dropped.
pub struct Echo {
    client: UdpSocket,
}

impl Echo {
    /// Binds the server and a connected client.
    pub fn start() -> std::io::Result<Echo> {
        let server = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        let client = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        client.connect(server.local_addr()?)?;
        client.set_read_timeout(Some(LOSS_TIMEOUT))?;
        // Real network, outside any simulation. Detached: it ends on the stop datagram the drop sends.
        std::thread::spawn(move || {
            let mut buffer = vec![0u8; 65_536];
            // An empty datagram tells the server to stop.
            while let Ok((len, from)) = server.recv_from(&mut buffer) {
                if len == 0 || server.send_to(&buffer[..len], from).is_err() {
                    return;
                }
            }
        });
        Ok(Echo { client })
    }

    /// Echoes `count` messages of `size` bytes (as datagrams of at most
    /// 60 000 bytes) with up to 128 KiB and 32 datagrams outstanding; returns the seconds it
    /// took and the bytes that came back (lost datagrams are not resent).
    pub fn throughput(&self, size: usize, count: usize) -> std::io::Result<(f64, u64)> {
        let datagram = vec![7u8; size.min(MAX_DATAGRAM)];
        let mut to_send: Vec<usize> = Vec::new();
        for _ in 0..count {
            let mut left = size;
            while left > 0 {
                to_send.push(left.min(MAX_DATAGRAM));
                left -= left.min(MAX_DATAGRAM);
            }
        }
        let mut buffer = vec![0u8; 65_536];
        let (mut outstanding, mut in_flight, mut echoed) = (0usize, 0usize, 0u64);
        let start = Instant::now();
        let mut next = to_send.into_iter().peekable();
        while next.peek().is_some() || outstanding > 0 {
            while let Some(&len) = next.peek() {
                if outstanding > 0 && (outstanding + len > WINDOW || in_flight == WINDOW_DATAGRAMS) {
                    break;
                }
                self.client.send(&datagram[..len])?;
                outstanding += len;
                in_flight += 1;
                next.next();
            }
            match self.client.recv(&mut buffer) {
                Ok(len) => {
                    outstanding -= len;
                    in_flight -= 1;
                    echoed += len as u64;
                }
                // Whatever is outstanding is lost.
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    (outstanding, in_flight) = (0, 0);
                }
                Err(e) => return Err(e),
            }
        }
        Ok((start.elapsed().as_secs_f64(), echoed))
    }

    /// Round-trip times of `samples` echoes of `size` bytes, one at a time.
    pub fn round_trips(&self, size: usize, samples: usize) -> std::io::Result<Vec<Duration>> {
        let datagram = vec![7u8; size];
        let mut buffer = vec![0u8; 65_536];
        let mut rtts = Vec::with_capacity(samples);
        for _ in 0..samples {
            let start = Instant::now();
            self.client.send(&datagram)?;
            self.client.recv(&mut buffer)?;
            rtts.push(start.elapsed());
        }
        Ok(rtts)
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.client.send(&[]);
    }
}

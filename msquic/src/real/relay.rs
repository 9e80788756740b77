//! UDP relays: every packet between two real nodes crosses one, which drops,
//! delays or forwards it according to the [`FaultTable`].
//!
//! A relay stands for one directed dial: node `client` dialling the real
//! address `target` of node `server`. The client sends to the relay's front
//! socket; the relay forwards each packet (`client -> server` faults) from a
//! back socket of its own, one per client source address, so replies find
//! their way back (`server -> client` faults). Nodes still dial the address
//! that membership gave them: the relay is chosen by that address, so a
//! rebind is never hidden.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use tandem::scenario::NodeIdx;

use super::faults::{FaultTable, Verdict};

/// The largest UDP datagram a relay forwards.
const MAX_DATAGRAM: usize = 65_535;

/// A running relay; dropping it stops its tasks.
#[derive(Debug)]
pub struct Relay {
    front: SocketAddr,
    _tasks: JoinSet<()>,
}

impl Relay {
    /// Starts a relay on 127.0.0.1 for packets between `client` and the
    /// `server` listening at `target`.
    pub async fn start(
        client: NodeIdx,
        server: NodeIdx,
        target: SocketAddr,
        faults: FaultTable,
    ) -> std::io::Result<Relay> {
        let front = Arc::new(UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?);
        let addr = front.local_addr()?;
        let mut tasks = JoinSet::new();
        tasks.spawn(front_loop(front, client, server, target, faults));
        Ok(Relay { front: addr, _tasks: tasks })
    }

    /// The address the client dials instead of the target.
    pub fn addr(&self) -> SocketAddr {
        self.front
    }
}

/// Sends `packet` to `to` from `socket` after the verdict's delay.
fn forward(socket: Arc<UdpSocket>, to: SocketAddr, packet: Vec<u8>, verdict: Verdict) {
    if let Verdict::Forward(delay) = verdict {
        tokio::spawn(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            // UDP is lossy by nature: a failed send is a lost packet.
            let _ = socket.send_to(&packet, to).await;
        });
    }
}

async fn front_loop(front: Arc<UdpSocket>, client: NodeIdx, server: NodeIdx, target: SocketAddr, faults: FaultTable) {
    let mut rng = StdRng::from_os_rng();
    let mut backs: BTreeMap<SocketAddr, Arc<UdpSocket>> = BTreeMap::new();
    let mut back_tasks = JoinSet::new();
    let (dead_tx, mut dead) = mpsc::unbounded_channel::<SocketAddr>();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        tokio::select! {
            biased;
            Some(source) = dead.recv() => {
                backs.remove(&source);
            }
            received = front.recv_from(&mut buf) => {
                // ICMP errors surface here on some systems: not fatal for a relay.
                let Ok((len, source)) = received else { continue };
                let back = match backs.get(&source) {
                    Some(back) => back.clone(),
                    None => {
                        let Ok(back) = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await else { continue };
                        let back = Arc::new(back);
                        backs.insert(source, back.clone());
                        back_tasks.spawn(back_loop(back.clone(), front.clone(), source, server, client, faults.clone(), dead_tx.clone()));
                        back
                    }
                };
                forward(back, target, buf[..len].to_vec(), faults.judge(client, server, &mut rng));
            }
        }
    }
}

/// Carries the server's replies from one back socket to its client.
async fn back_loop(
    back: Arc<UdpSocket>,
    front: Arc<UdpSocket>,
    client_addr: SocketAddr,
    server: NodeIdx,
    client: NodeIdx,
    faults: FaultTable,
    dead: mpsc::UnboundedSender<SocketAddr>,
) {
    let mut rng = StdRng::from_os_rng();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        match back.recv_from(&mut buf).await {
            Ok((len, _)) => {
                forward(front.clone(), client_addr, buf[..len].to_vec(), faults.judge(server, client, &mut rng))
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
            Err(_) => break,
        }
    }
    let _ = dead.send(client_addr);
}

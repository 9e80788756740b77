//! The simulation's side of a calibration: `tandem calibrate`'s
//! measurements (ping-pong, dials with and without loss, dead peers after a
//! cut, disk writes and syncs) run again on the discrete-event network and a
//! simulated disk, so that each real quantity has its simulated one beside it
//! (BENCHMARKS.md).
//!
//! The simulated links get a fixed latency of half the profile's measured
//! round trip; loss, cuts and the disk follow the QUIC model and the
//! profile's sync latency. Everything runs in simulated time on a paused
//! clock, from `seed`.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tandem::engine::profile::{DiskTimings, Percentiles, Profile, QuicTimings};
use tandem::storage::Storage;
use tandem::transport::{Connection, Framing, Listener, MessageReceiver, MessageSender, Transport};
use tokio::time::Instant;

use crate::events::{host_ip, EventTransport, Network};
use crate::quic::QuicModel;

/// The dialler, node 0, and the node it dials, node 1.
const CLIENT: u32 = 0;
const SERVER: u32 = 1;
/// How long a dial or a dead peer's detection may take before it counts as
/// failed.
const PATIENCE: Duration = Duration::from_secs(10);

/// The simulation's answers to `profile`'s measurements, `samples` of each
/// (the profile's QUIC part only when it has one).
pub fn measure(profile: &Profile, samples: usize, seed: u64) -> Profile {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime builds");
    let disk = runtime.block_on(disk(profile.sync_latency(), samples));
    let quic = profile.quic.map(|real| runtime.block_on(quic(real, samples, seed)));
    Profile { machine: format!("the simulation (events backend, seed {seed})"), disk, quic }
}

/// Writes and syncs of a simulated disk.
async fn disk(sync_latency: Duration, samples: usize) -> DiskTimings {
    let storage = Storage::in_memory_with_sync_latency(sync_latency);
    let (mut writes, mut syncs) = (Vec::new(), Vec::new());
    for _ in 0..samples {
        let began = Instant::now();
        storage.write("calibrate", &[7; 4096]).await.expect("a simulated write");
        writes.push(began.elapsed());
        let began = Instant::now();
        storage.sync("calibrate").await.expect("a simulated sync");
        syncs.push(began.elapsed());
    }
    DiskTimings { write: Percentiles::of(&writes, 0), sync: Percentiles::of(&syncs, 0) }
}

/// The QUIC measurements on a fresh network whose links take half `real`'s
/// round trip.
async fn quic(real: QuicTimings, samples: usize, seed: u64) -> QuicTimings {
    let one_way = real.round_trip.median() / 2;
    let network = Network::new(QuicModel::default(), (one_way, one_way), 0.0, seed, None);
    let transport =
        |node| EventTransport::new(network.clone(), host_ip(node), Framing::default(), Arc::new(AtomicBool::new(true)));
    let (client, server) = (transport(CLIENT), transport(SERVER));
    let listener = server.listen(SocketAddr::new(host_ip(SERVER), 7000)).await.expect("a simulated listen");
    let target = listener.local_addr();
    tokio::spawn(echo(listener));

    let connection = client.connect(target).await.expect("a simulated dial");
    let (mut tx, mut rx) = connection.split();
    let mut round_trips = Vec::new();
    for _ in 0..samples {
        let began = Instant::now();
        tx.send(Bytes::from_static(b"calibrat")).await.expect("a simulated send");
        rx.recv().await.expect("the echo");
        round_trips.push(began.elapsed());
    }

    let set_loss = |rate| {
        network.set_loss(host_ip(CLIENT), host_ip(SERVER), rate);
        network.set_loss(host_ip(SERVER), host_ip(CLIENT), rate);
    };
    let mut dials = Vec::new();
    for rate in [0.0, 0.1, 0.3, 0.5] {
        set_loss(rate);
        let (mut times, mut failures) = (Vec::new(), 0);
        for _ in 0..samples {
            let began = Instant::now();
            let dialled = tokio::time::timeout(PATIENCE, client.connect(target)).await;
            failures += usize::from(!matches!(dialled, Ok(Ok(_))));
            times.push(began.elapsed());
        }
        dials.push(Percentiles::of(&times, failures));
    }
    set_loss(0.0);

    let set_cut = |cut| {
        network.set_cut(host_ip(CLIENT), host_ip(SERVER), cut);
        network.set_cut(host_ip(SERVER), host_ip(CLIENT), cut);
    };
    let mut dead_peers = Vec::new();
    for sending in [false, true] {
        let (mut times, mut failures) = (Vec::new(), 0);
        for _ in 0..samples {
            let (mut tx, mut rx) = client.connect(target).await.expect("a simulated dial").split();
            // Idle for a part of a keep-alive interval, different each time.
            let idle = QuicModel::default().keep_alive * times.len() as u32 / samples as u32;
            tokio::time::sleep(idle).await;
            set_cut(true);
            let began = Instant::now();
            if sending {
                // A send into the cut is queued; the break shows on the receiver.
                let _ = tx.send(Bytes::from_static(b"calibrat")).await;
            }
            let noticed = tokio::time::timeout(PATIENCE, rx.recv()).await;
            failures += usize::from(!matches!(noticed, Ok(Err(_))));
            times.push(began.elapsed());
            set_cut(false);
        }
        dead_peers.push(Percentiles::of(&times, failures));
    }
    QuicTimings {
        round_trip: Percentiles::of(&round_trips, 0),
        handshake: dials[0],
        dial_loss_10: dials[1],
        dial_loss_30: dials[2],
        dial_loss_50: dials[3],
        dead_peer_idle: dead_peers[0],
        dead_peer_sending: dead_peers[1],
    }
}

/// Sends back every message of every connection `listener` accepts, on
/// any transport (`tandem calibrate`'s real ping-pong uses it too).
pub async fn echo(mut listener: impl Listener) {
    while let Ok(connection) = listener.accept().await {
        tokio::spawn(async move {
            let (mut tx, mut rx) = connection.split();
            while let Ok(message) = rx.recv().await {
                if tx.send(message).await.is_err() {
                    break;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simulation_answers_every_measurement_from_the_model_and_the_profile() {
        let profile = Profile::default();
        let real = profile.quic.expect("the default profile has QUIC timings");
        let simulated = measure(&profile, 20, 1);
        assert_eq!(simulated, measure(&profile, 20, 1), "a function of the seed");
        assert_eq!(simulated.disk.sync.median(), profile.sync_latency());
        assert_eq!(simulated.disk.write.p99_us, 0.0, "a simulated write takes no time");
        let quic = simulated.quic.expect("measured");
        assert!(quic.round_trip.median() >= real.round_trip.median() / 2);
        assert!(quic.dial_loss_50.p90_us > quic.dial_loss_10.p90_us, "loss slows dials");
        let model = QuicModel::default();
        let noticed = model.idle_timeout..=model.idle_timeout + model.keep_alive;
        assert!(noticed.contains(&quic.dead_peer_idle.median()), "a cut breaks a connection after the idle timeout");
        assert_eq!(quic.dead_peer_idle.failures + quic.dead_peer_sending.failures, 0);
    }
}

//! `tandem calibrate [--samples N] [--out FILE]`: measures the real stack
//! (MsQuic on loopback, as the real backend runs it, and the local disk, as
//! its `Storage` uses it), never through the simulator, and writes a
//! calibration profile ([`tandem::engine::profile`]). It then prints each quantity
//! beside what the simulation gives with that profile
//! ([`tandem_sim::calibration`]).
//!
//! Real-only code: it measures wall-clock time (`std::time::Instant`) and
//! dates the profile (tracing-subscriber's system clock), outside any
//! simulation.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use tandem::engine::profile::{DiskTimings, Percentiles, Profile};
use tandem::storage::Storage;
use tandem_cli::Exit;

use crate::bench::Machine;

/// Arguments of `tandem calibrate`.
#[derive(Debug, Args)]
pub struct CalibrateArgs {
    /// Samples of each quantity.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    samples: u32,
    /// Where to write the profile.
    #[arg(long, value_name = "FILE", default_value = "profiles/local.toml")]
    out: PathBuf,
}

/// Bytes of each measured write: a few log records.
const WRITE_SIZE: usize = 4096;

/// Measures, writes the profile, prints the real and simulated quantities.
pub fn calibrate(args: CalibrateArgs) -> Exit {
    let samples = args.samples as usize;
    match measure(samples) {
        Ok(profile) => match write(&profile, samples, &args.out) {
            Ok(()) => {
                print!("{}", table(&profile, &tandem_sim::calibration::measure(&profile, samples, 1)));
                println!("wrote {}; use it with --profile {0} or TANDEM_PROFILE", args.out.display());
                Exit::Pass
            }
            Err(error) => {
                eprintln!("{}: {error}", args.out.display());
                Exit::Fail
            }
        },
        Err(error) => {
            eprintln!("calibrate: {error}");
            Exit::Fail
        }
    }
}

fn measure(samples: usize) -> Result<Profile, String> {
    let machine = Machine::this();
    let machine = format!("{} ({} cores), {}", machine.cpu, machine.cores, today());
    let disk = disk(samples).map_err(|e| format!("disk: {e}"))?;
    #[cfg(feature = "msquic")]
    let quic = Some(quic::measure(samples)?);
    #[cfg(not(feature = "msquic"))]
    let quic = {
        eprintln!(
            "built without MsQuic: measuring the disk only (for QUIC: cargo run --release -p tandem-cli --features msquic -- calibrate)"
        );
        None
    };
    Ok(Profile { machine, disk, quic })
}

/// Writes and syncs through a real backend's storage, in a directory of
/// its own beside the real runs'.
fn disk(samples: usize) -> std::io::Result<DiskTimings> {
    let dir = std::env::temp_dir().join(format!("tandem-calibrate-{}", std::process::id()));
    let storage = Storage::in_directory(&dir)?;
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let timings = runtime.block_on(async {
        let (mut writes, mut syncs) = (Vec::new(), Vec::new());
        for _ in 0..samples {
            let began = Instant::now();
            storage.write("calibrate", &[7; WRITE_SIZE]).await?;
            writes.push(began.elapsed());
            let began = Instant::now();
            storage.sync("calibrate").await?;
            syncs.push(began.elapsed());
        }
        Ok::<_, std::io::Error>(DiskTimings { write: Percentiles::of(&writes, 0), sync: Percentiles::of(&syncs, 0) })
    });
    std::fs::remove_dir_all(&dir)?;
    timings
}

/// Today's date, UTC, as `YYYY-MM-DD`: the start of an RFC 3339 time.
fn today() -> String {
    use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
    let mut now = String::new();
    let _ = SystemTime.format_time(&mut tracing_subscriber::fmt::format::Writer::new(&mut now));
    now.chars().take("YYYY-MM-DD".len()).collect()
}

/// The profile file: a header saying where it comes from, then the profile.
fn write(profile: &Profile, samples: usize, out: &Path) -> std::io::Result<()> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().next().unwrap_or("unknown");
    let header = format!(
        "# A tandem calibration profile: `tandem calibrate --samples {samples}` on\n# {}, load average {load}.\n# The simulation takes the disk's sync latency (its p50) from it.\n\n",
        profile.machine
    );
    std::fs::write(out, header + &profile.to_toml())
}

/// Each quantity's real and simulated percentiles, as a Markdown table.
fn table(real: &Profile, simulated: &Profile) -> String {
    let ms = |us: f64| format!("{:.3}", us / 1000.0);
    let row = |name: &str, real: &Percentiles, sim: &Percentiles| {
        let failed = |p: &Percentiles| if p.failures > 0 { format!(" ({} failed)", p.failures) } else { String::new() };
        format!(
            "| {name} | {} / {} / {}{} | {} / {} / {}{} |\n",
            ms(real.p50_us),
            ms(real.p90_us),
            ms(real.p99_us),
            failed(real),
            ms(sim.p50_us),
            ms(sim.p90_us),
            ms(sim.p99_us),
            failed(sim)
        )
    };
    let mut out =
        String::from("| quantity | real p50 / p90 / p99 (ms) | simulated p50 / p90 / p99 (ms) |\n|---|---|---|\n");
    if let (Some(real), Some(sim)) = (&real.quic, &simulated.quic) {
        out += &row("round trip, 8 B", &real.round_trip, &sim.round_trip);
        out += &row("handshake (dial)", &real.handshake, &sim.handshake);
        out += &row("dial, 10% loss", &real.dial_loss_10, &sim.dial_loss_10);
        out += &row("dial, 30% loss", &real.dial_loss_30, &sim.dial_loss_30);
        out += &row("dial, 50% loss", &real.dial_loss_50, &sim.dial_loss_50);
        out += &row("dead peer, idle", &real.dead_peer_idle, &sim.dead_peer_idle);
        out += &row("dead peer, frame sent", &real.dead_peer_sending, &sim.dead_peer_sending);
    }
    out += &row("disk write, 4 KiB", &real.disk.write, &simulated.disk.write);
    out += &row("disk sync", &real.disk.sync, &simulated.disk.sync);
    out
}

/// The QUIC measurements, over `MsQuicTransport` and the real backend's
/// fault relays.
#[cfg(feature = "msquic")]
mod quic {
    use std::net::{Ipv4Addr, SocketAddr};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use tandem::engine::profile::{Percentiles, QuicTimings};
    use tandem::scenario::{LatencyRange, LinkChange, Network, Scope};
    use tandem::transport::{Connection, Listener, MessageReceiver, MessageSender, Transport};
    use tandem_msquic::real::faults::FaultTable;
    use tandem_msquic::real::transport::{RelayNet, RelayedTransport};
    use tandem_msquic::{MsQuicConfig, MsQuicTransport};
    use tokio::task::JoinSet;

    use crate::bench::quic::{runtime, transport};

    /// The dialler and the node it dials, as the relays know them.
    const CLIENT: u32 = 0;
    const SERVER: u32 = 1;
    /// Dials under loss overlap while they wait for retransmissions, but
    /// start this far apart, so that their handshakes' CPU work (a few
    /// milliseconds each) does not queue up and count as network time.
    const DIAL_SPACING: Duration = Duration::from_millis(20);
    /// How long a dead peer may go unnoticed before the sample counts as failed.
    const PATIENCE: Duration = Duration::from_secs(10);

    /// Every QUIC quantity, `samples` of each.
    pub fn measure(samples: usize) -> Result<QuicTimings, String> {
        runtime().block_on(async {
            let faults = FaultTable::new(&Network { latency: LatencyRange::fixed(Duration::ZERO), loss: 0.0 });
            let net = RelayNet::new(faults.clone(), &[], tokio::runtime::Handle::current());
            let server = RelayedTransport::new(transport()?, SERVER, net.clone());
            let listener =
                server.listen(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await.map_err(|e| e.to_string())?;
            let target = listener.local_addr();
            tokio::spawn(tandem_sim::calibration::echo(listener));
            // A direct connection for the round trip; dials through the relay,
            // as the real backend's nodes dial, for the rest.
            let direct = transport()?;
            let relayed = Arc::new(RelayedTransport::new(transport()?, CLIENT, net.clone()));

            let (mut tx, mut rx) = direct.connect(target).await.map_err(|e| e.to_string())?.split();
            let mut round_trips = Vec::new();
            for _ in 0..samples {
                let began = Instant::now();
                tx.send(Bytes::from_static(b"calibrat")).await.map_err(|e| e.to_string())?;
                rx.recv().await.map_err(|e| e.to_string())?;
                round_trips.push(began.elapsed());
            }
            let mut dials = Vec::new();
            for rate in [0.0, 0.1, 0.3, 0.5] {
                faults.apply(&LinkChange::Loss(rate), &Scope::Every);
                dials.push(dial_times(&relayed, target, samples).await);
            }
            faults.apply(&LinkChange::Loss(0.0), &Scope::Every);
            let idle = dead_peer(&relayed, &faults, target, samples, false).await?;
            let sending = dead_peer(&relayed, &faults, target, samples, true).await?;
            Ok(QuicTimings {
                round_trip: Percentiles::of(&round_trips, 0),
                handshake: dials[0],
                dial_loss_10: dials[1],
                dial_loss_30: dials[2],
                dial_loss_50: dials[3],
                dead_peer_idle: idle,
                dead_peer_sending: sending,
            })
        })
    }

    /// `samples` dials through the relay, started [`DIAL_SPACING`] apart,
    /// each timed from `connect` to connected, or to its failure (MsQuic's
    /// connect timeout).
    async fn dial_times(
        client: &Arc<RelayedTransport<MsQuicTransport>>,
        target: SocketAddr,
        samples: usize,
    ) -> Percentiles {
        let mut dials = JoinSet::new();
        for _ in 0..samples {
            let client = client.clone();
            dials.spawn(async move {
                let began = Instant::now();
                let dialled = client.connect(target).await;
                (began.elapsed(), dialled.is_ok())
            });
            tokio::time::sleep(DIAL_SPACING).await;
        }
        let results = dials.join_all().await;
        let times: Vec<Duration> = results.iter().map(|&(time, _)| time).collect();
        Percentiles::of(&times, results.iter().filter(|&&(_, ok)| !ok).count())
    }

    /// `samples` idle connections, opened a fraction of a keep-alive
    /// interval apart; then a cut both ways, and each connection timed
    /// until its receiver reports it closed (with a frame sent into the cut
    /// when `sending`). The cut heals afterwards.
    async fn dead_peer(
        client: &Arc<RelayedTransport<MsQuicTransport>>,
        faults: &FaultTable,
        target: SocketAddr,
        samples: usize,
        sending: bool,
    ) -> Result<Percentiles, String> {
        let spacing = MsQuicConfig::default().keep_alive / samples as u32;
        let mut connections = Vec::new();
        for _ in 0..samples {
            connections.push(client.connect(target).await.map_err(|e| e.to_string())?.split());
            // Spreads the connections' keep-alive timers over an interval.
            tokio::time::sleep(spacing).await;
        }
        faults.apply(&LinkChange::Partition { oneway: false }, &Scope::Every);
        let cut = Instant::now();
        let mut watches = JoinSet::new();
        for (mut tx, mut rx) in connections {
            watches.spawn(async move {
                if sending {
                    // Queued into the cut; the break shows on the receiver.
                    let _ = tx.send(Bytes::from_static(b"calibrat")).await;
                }
                let noticed = tokio::time::timeout(PATIENCE, rx.recv()).await;
                (cut.elapsed(), matches!(noticed, Ok(Err(_))))
            });
        }
        let results = watches.join_all().await;
        faults.apply(&LinkChange::Heal, &Scope::Every);
        let times: Vec<Duration> = results.iter().map(|&(time, _)| time).collect();
        Ok(Percentiles::of(&times, results.iter().filter(|&&(_, noticed)| !noticed).count()))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn today_is_a_calendar_date() {
        let today = super::today();
        let parts: Vec<&str> = today.split('-').collect();
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [4, 2, 2], "{today}");
        assert!(today.chars().all(|c| c.is_ascii_digit() || c == '-'), "{today}");
        assert!(today.as_str() >= "2026-01-01", "{today}");
    }
}

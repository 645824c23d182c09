//! The `smplcast` command line. Thin: parses arguments, sets up logging, runs a subcommand.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
mod cli;

use cli::demo::{self, DemoOptions};
use cli::{bench, sub as subscribe};
use smplcast::{config, daemon};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(version, about = "Streams 3D human pose and shape (MPS-Net → SMPL) from cameras")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the daemon: source → model → SMPL → MQTT, until SIGTERM/SIGINT or the source ends.
    Run {
        /// Configuration file (TOML; see config.example.toml).
        #[arg(long, short, default_value = config::DEFAULT_PATH)]
        config: PathBuf,
        /// Save a sample of the person crops the backbone sees to this directory, as PNG (one
        /// per person per second): `models/run convert.py --calib-dir DIR` calibrates the
        /// int8 backbone on them (docs/MODEL.md).
        #[arg(long, value_name = "DIR")]
        save_crops: Option<PathBuf>,
        /// With --save-crops: how many at most.
        #[arg(long, default_value_t = 200, value_name = "N", requires = "save_crops")]
        save_crops_max: usize,
    },
    /// Checks a configuration file and that its models load; prints the effective config.
    CheckConfig {
        /// Configuration file.
        #[arg(default_value = config::DEFAULT_PATH)]
        file: PathBuf,
    },
    /// Runs the model on the built-in synthetic source, publishes every result to an embedded
    /// MQTT broker (or `--mqtt`), and prints one line per second of what a subscriber receives.
    Demo(DemoOptions),
    /// Serves the live viewer: a web page that subscribes to a broker over MQTT-over-WebSocket
    /// and draws each tracked person's skeleton in 3D (docs/VIEWER.md).
    View {
        /// The broker's MQTT-over-WebSocket URL, as the browser reaches it.
        #[arg(long, default_value = "ws://127.0.0.1:9001")]
        ws: String,
        /// Address to serve the page on.
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: std::net::SocketAddr,
        /// Topic prefix.
        #[arg(long, default_value = "smplcast")]
        prefix: String,
        /// Device id, or `+` for all devices.
        #[arg(long, default_value = "+")]
        device: String,
    },
    /// Measures the pipeline: per-stage times, throughput on 1..N threads, f32 and int8,
    /// latency capture → subscriber, RSS and bytes per person-frame (docs/performance.md).
    Bench(bench::Args),
    /// Lists V4L2 cameras with their formats, sizes and frame rates, and the video sources
    /// GStreamer's device monitor sees.
    Devices,
    /// Loads a model directory and prints its graphs, precision and widths.
    CheckModels {
        /// Model directory.
        dir: PathBuf,
    },
    /// Subscribes to pose, status and stats messages and prints each as one JSON line.
    Sub {
        /// The broker: its address, login and TLS, with the names of the daemon's `[mqtt]`
        /// keys.
        #[command(flatten)]
        broker: BrokerArgs,
        /// Topic prefix.
        #[arg(long, default_value = "smplcast")]
        prefix: String,
        /// Device id, or `+` for all devices.
        #[arg(long, default_value = "+")]
        device: String,
        /// Exit after this many pose messages.
        #[arg(long, conflicts_with = "replay")]
        count: Option<u64>,
        /// Also write every message received, raw and timestamped, to this file (a CBOR
        /// sequence, docs/WIRE.md "Recordings").
        #[arg(long, value_name = "FILE", conflicts_with = "replay")]
        record: Option<PathBuf>,
        /// Republish a recording to the broker instead of subscribing: the recorded topics,
        /// QoS, retain flags and payloads, at the recorded pace.
        #[arg(long, value_name = "FILE")]
        replay: Option<PathBuf>,
        /// With --replay: playback speed (2: twice as fast; 0: as fast as the broker takes
        /// them).
        #[arg(long, default_value_t = 1.0, requires = "replay")]
        speed: f64,
        /// Join the consumer group GROUP: an MQTT 5 shared subscription of the pose topic
        /// (`$share/GROUP/<prefix>/<device>/pose`, QoS 1), so that the group's members split
        /// the poses between them (docs/FLEET.md). Status and stats are not shared.
        #[arg(long, value_name = "GROUP", conflicts_with = "replay")]
        share: Option<String>,
    },
}

/// How `smplcast sub` reaches the broker: the daemon's `[mqtt]` keys, as flags.
#[derive(clap::Args)]
struct BrokerArgs {
    /// Broker host.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Broker port (default: 1883, or 8883 with --tls).
    #[arg(long)]
    port: Option<u16>,
    /// User name, for brokers that require a login.
    #[arg(long)]
    username: Option<String>,
    /// A file holding the password (its first line).
    #[arg(long, value_name = "FILE", requires = "username")]
    password_file: Option<PathBuf>,
    /// Connect with TLS, verifying the broker against --ca-file or the system's CAs.
    #[arg(long)]
    tls: bool,
    /// The CA (PEM) that signed the broker's certificate.
    #[arg(long, value_name = "FILE", requires = "tls")]
    ca_file: Option<PathBuf>,
    /// A client certificate (PEM), for brokers that require one.
    #[arg(long, value_name = "FILE", requires_all = ["tls", "client_key_file"])]
    client_cert_file: Option<PathBuf>,
    /// The client certificate's key (PEM).
    #[arg(long, value_name = "FILE", requires = "client_cert_file")]
    client_key_file: Option<PathBuf>,
    /// MQTT version: 5 (falls back to 3.1.1 when the broker refuses it) or 3.1.1.
    #[arg(long, default_value = "5")]
    protocol: String,
}

impl BrokerArgs {
    /// The broker, checked as the daemon checks its `[mqtt]` section.
    fn broker(self) -> Result<smplcast::mqtt::Broker> {
        let raw = config::RawMqtt {
            host: self.host,
            port: self.port,
            keep_alive_s: 30,
            username: self.username,
            password_file: self.password_file,
            tls: self.tls,
            ca_file: self.ca_file,
            client_cert_file: self.client_cert_file,
            client_key_file: self.client_key_file,
            protocol: self.protocol,
            ..config::RawMqtt::default()
        };
        config::broker(&raw, Path::new(".")).map_err(|problems| {
            // The checks speak of `mqtt.KEY`; here they are the flags above (the keys `sub`
            // has no flag for keep their valid defaults, so no problem names them).
            const KEYS: [&str; 8] = [
                "client_cert_file",
                "client_key_file",
                "password_file",
                "username",
                "ca_file",
                "host",
                "port",
                "protocol",
            ];
            let flag = |p: &String| {
                KEYS.iter().fold(p.replace("mqtt.tls", "--tls"), |p, key| {
                    p.replace(&format!("mqtt.{key}"), &format!("--{}", key.replace('_', "-")))
                })
            };
            anyhow::anyhow!("{}", problems.iter().map(flag).collect::<Vec<_>>().join("; "))
        })
    }
}

fn sub(settings: subscribe::Settings) -> Result<()> {
    until_interrupted(|shutdown| subscribe::run(settings, std::io::stdout().lock(), shutdown))??;
    Ok(())
}

fn view(settings: &cli::view::Settings) -> Result<()> {
    let server = cli::view::serve(settings)?;
    say!("viewer on {} (broker: {}); Ctrl-C stops", server.url(), settings.ws);
    until_interrupted(|shutdown| async move { shutdown.cancelled().await })?;
    Ok(())
}

fn replay(settings: &subscribe::Replay) -> Result<()> {
    anyhow::ensure!(
        settings.speed >= 0.0 && settings.speed.is_finite(),
        "--speed {} is not a playback speed: give 1 for the recorded pace, 2 for twice as fast, \
         0 for no pauses",
        settings.speed
    );
    let done = until_interrupted(|shutdown| subscribe::replay(settings, shutdown))??;
    eprintln!("Replayed {} messages from {}.", done.messages, settings.file.display());
    if done.truncated {
        eprintln!("The recording ends in an incomplete message (its recorder was cut off).");
    }
    Ok(())
}

/// Runs `task` on a current-thread runtime, its token cancelled by Ctrl-C.
fn until_interrupted<F: std::future::Future>(
    task: impl FnOnce(CancellationToken) -> F,
) -> Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    Ok(rt.block_on(async {
        let shutdown = CancellationToken::new();
        let on_signal = shutdown.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            on_signal.cancel();
        });
        task(shutdown).await
    }))
}

/// `smplcast devices`: the V4L2 nodes, then what GStreamer's device monitor sees, as far as
/// this build has either.
fn devices() -> Result<()> {
    if !cfg!(any(feature = "v4l2", feature = "gstreamer")) {
        anyhow::bail!(
            "this smplcast was built without V4L2 and GStreamer support; rebuild with \
             `cargo build --release --features v4l2,gstreamer` (needs libclang-dev and \
             libgstreamer-plugins-base1.0-dev)"
        );
    }
    #[cfg(feature = "v4l2")]
    print!("{}", smplcast::source::v4l2::list_devices());
    #[cfg(feature = "gstreamer")]
    print!("{}", smplcast::source::gst::list_devices());
    Ok(())
}

fn main() -> ExitCode {
    // Before any thread starts: one malloc arena for all threads (telemetry::memory).
    smplcast::telemetry::memory::one_arena();
    smplcast::telemetry::log::init();
    match run(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("smplcast: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Run { config, save_crops, save_crops_max } => {
            let mut config = config::Config::load(&config)?;
            config.save_crops = save_crops.map(|dir| (dir, save_crops_max));
            daemon::start(&config)?.wait()?;
            Ok(())
        }
        Command::CheckConfig { file } => {
            let config = daemon::check_config(&file)?;
            say!("{}: OK\n{}", file.display(), config.summary());
            Ok(())
        }
        Command::View { ws, listen, prefix, device } => {
            view(&cli::view::Settings { listen, ws, prefix, device })
        }
        Command::Demo(opts) => {
            let context = format!("demo on {}", opts.dir().display());
            demo::run(opts).context(context)
        }
        Command::Bench(args) => bench::main(args),
        Command::CheckModels { dir } => demo::check_models(&dir),
        Command::Devices => devices(),
        Command::Sub { broker, replay: Some(file), speed, .. } => {
            replay(&subscribe::Replay { broker: broker.broker()?, file, speed })
        }
        Command::Sub { broker, prefix, device, count, record, share, replay: None, .. } => {
            if let Some(group) =
                share.as_deref().filter(|g| g.is_empty() || g.contains(['/', '+', '#']))
            {
                anyhow::bail!(
                    "--share {group:?}: a group name is one topic level, without '/', '+' or '#'"
                );
            }
            let broker = broker.broker()?;
            sub(subscribe::Settings { broker, prefix, device, count, record, share })
        }
    }
}

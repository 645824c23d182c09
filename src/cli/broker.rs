//! The embedded MQTT broker of `smplcast demo`: rumqttd on a loopback port, on its own thread,
//! so the demo runs on a machine with nothing else installed. It also listens for MQTT over
//! WebSocket on a second port, for the viewer (`smplcast demo --view`).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

/// Errors starting the broker.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("embedded MQTT broker: no free loopback port: {0}")]
    Port(std::io::Error),
    #[error("embedded MQTT broker on port {0} did not start listening within 5 s")]
    NotListening(u16),
    #[error("embedded MQTT broker: cannot start its thread: {0}")]
    Thread(std::io::Error),
}

/// The embedded broker's loopback ports.
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    /// MQTT 3.1.1 over TCP.
    pub mqtt: u16,
    /// MQTT 3.1.1 over WebSocket (`ws://127.0.0.1:PORT`).
    pub ws: u16,
}

/// Starts rumqttd (MQTT 3.1.1) on 127.0.0.1 at two free ports, TCP and WebSocket, and returns
/// them once it accepts connections. The broker thread lives until the process exits.
///
/// # Errors
/// See [`Error`].
pub fn start() -> Result<Ports, Error> {
    let free = || {
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map_err(Error::Port)
            .map(|a| a.port())
    };
    let (port, ws_port) = (free()?, free()?);
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let server = |name: &str, listen| ServerSettings {
        name: name.into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: 1 << 20,
            max_inflight_count: 100,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    let ws_listen = SocketAddr::from((Ipv4Addr::LOCALHOST, ws_port));
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 64,
            max_outgoing_packet_count: 200,
            max_segment_size: 16 << 20,
            max_segment_count: 4,
            ..RouterConfig::default()
        },
        v4: Some(HashMap::from([("1".to_string(), server("v4-loopback", listen))])),
        ws: Some(HashMap::from([("1".to_string(), server("ws-loopback", ws_listen))])),
        ..Config::default()
    };
    std::thread::Builder::new()
        .name("broker".into())
        .spawn(move || {
            if let Err(e) = Broker::new(config).start() {
                tracing::error!(error = %e, "Embedded MQTT broker stopped.");
            }
        })
        .map_err(Error::Thread)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    // Both listeners start together; probing the WebSocket one would log a failed handshake.
    while TcpStream::connect(listen).is_err() {
        if Instant::now() > deadline {
            return Err(Error::NotListening(port));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Ports { mqtt: port, ws: ws_port })
}

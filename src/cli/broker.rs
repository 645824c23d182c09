//! The embedded MQTT broker of `smplcast demo`: rumqttd on a loopback port, on its own thread,
//! so the demo runs on a machine with nothing else installed. It also listens for MQTT over
//! WebSocket on a second port, for the viewer (`smplcast demo --view`).
//!
//! MQTT 5 and 3.1.1 clients share the one port: rumqttd has a listener per version, so a small
//! front accepts each connection, reads the protocol level of its CONNECT and relays it to the
//! listener of that version. The daemon of the demo (and the bench) publishes with 3.1.1:
//! rumqttd 0.20 panics, and loses its 3.1.1 listener, when it forwards a message with MQTT 5
//! properties to a 3.1.1 subscriber, which the viewer is.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
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
    /// MQTT 5 and 3.1.1 over TCP.
    pub mqtt: u16,
    /// MQTT 3.1.1 over WebSocket (`ws://127.0.0.1:PORT`).
    pub ws: u16,
}

/// How the demo's own clients connect to it (see the module's note on rumqttd).
pub fn client(port: u16) -> smplcast::mqtt::Broker {
    smplcast::mqtt::Broker {
        protocol: smplcast::mqtt::Protocol::V311,
        ..smplcast::mqtt::Broker::plain("127.0.0.1", port)
    }
}

/// Starts rumqttd on 127.0.0.1 at free ports: MQTT 5 and 3.1.1 over TCP on one port, and
/// WebSocket (3.1.1), and returns them once it accepts connections. The broker's threads live
/// until the process exits.
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
    let front = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(Error::Port)?;
    let port = front.local_addr().map_err(Error::Port)?.port();
    let (v4_port, v5_port, ws_port) = (free()?, free()?, free()?);
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, v4_port));
    let listen5 = SocketAddr::from((Ipv4Addr::LOCALHOST, v5_port));
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
        v5: Some(HashMap::from([("1".to_string(), server("v5-loopback", listen5))])),
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
    // The listeners start together; probing the WebSocket one would log a failed handshake.
    for backend in [listen, listen5] {
        while TcpStream::connect(backend).is_err() {
            if Instant::now() > deadline {
                return Err(Error::NotListening(backend.port()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    std::thread::Builder::new()
        .name("broker-front".into())
        .spawn(move || {
            for client in front.incoming().flatten() {
                let _ = std::thread::Builder::new()
                    .name("broker-relay".into())
                    .spawn(move || relay(client, listen, listen5));
            }
        })
        .map_err(Error::Thread)?;
    Ok(Ports { mqtt: port, ws: ws_port })
}

/// The protocol level of the CONNECT packet that `head` starts with (4: 3.1.1, 5: MQTT 5),
/// `None` while more bytes are needed; `Some(0)` for what is not an MQTT CONNECT.
fn connect_level(head: &[u8]) -> Option<u8> {
    let first = *head.first()?;
    if first != 0x10 {
        return Some(0);
    }
    // The remaining length: 1 to 4 bytes, 7 bits each, the high bit saying "more".
    let len_bytes = head[1..].iter().take(4).position(|b| b & 0x80 == 0)? + 1;
    // Then the protocol name ("MQTT", 2 + 4 bytes) and the level.
    head.get(1 + len_bytes + 6).copied()
}

/// Relays one client to rumqttd's listener of its protocol version, both ways, until either
/// side closes.
fn relay(client: TcpStream, v4: SocketAddr, v5: SocketAddr) {
    let mut head = [0u8; 16];
    let _ = client.set_read_timeout(Some(Duration::from_secs(10)));
    let level = loop {
        match client.peek(&mut head) {
            Ok(0) | Err(_) => return,
            Ok(n) => match connect_level(&head[..n]) {
                Some(level) => break level,
                None if n == head.len() => return,
                None => std::thread::sleep(Duration::from_millis(5)),
            },
        }
    };
    let _ = client.set_read_timeout(None);
    let Ok(backend) = TcpStream::connect(if level == 5 { v5 } else { v4 }) else { return };
    let _ = backend.set_nodelay(true);
    let _ = client.set_nodelay(true);
    let (Ok(client2), Ok(backend2)) = (client.try_clone(), backend.try_clone()) else { return };
    let up = std::thread::spawn(move || pipe(client, backend));
    pipe(backend2, client2);
    let _ = up.join();
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::connect_level;

    #[test]
    fn the_front_reads_the_protocol_level_of_a_connect() {
        // CONNECT, remaining length 16, "MQTT", level 5.
        let v5 = [0x10, 16, 0, 4, b'M', b'Q', b'T', b'T', 5, 2];
        assert_eq!(connect_level(&v5), Some(5));
        // A two-byte remaining length.
        let v4 = [0x10, 0x80, 0x01, 0, 4, b'M', b'Q', b'T', b'T', 4];
        assert_eq!(connect_level(&v4), Some(4));
        assert_eq!(connect_level(&v4[..6]), None);
        assert_eq!(connect_level(b"GET / HTTP/1.1"), Some(0));
    }
}

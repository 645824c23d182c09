//! `smplcast view`: serves the live viewer (viewer/: a static page, its pinned and vendored
//! JavaScript) over HTTP. The page itself subscribes to the broker over MQTT-over-WebSocket;
//! this server only hands out the files and `config.json` (the broker's WebSocket URL, the
//! topic prefix and the device). The files are compiled into the binary, so a deployed daemon
//! needs nothing else.

use std::net::SocketAddr;
use std::thread::JoinHandle;

use serde::Serialize;

/// Where the viewer is served and what it subscribes to.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    #[serde(skip)]
    pub listen: SocketAddr,
    /// The broker's MQTT-over-WebSocket URL, e.g. `ws://192.168.1.20:9001`, as the browser
    /// reaches it.
    pub ws: String,
    pub prefix: String,
    /// Device id, or `+` for every device.
    pub device: String,
}

/// The viewer's files: path, content type, bytes.
const FILES: &[(&str, &str, &[u8])] = &[
    ("/index.html", "text/html; charset=utf-8", include_bytes!("../../viewer/index.html")),
    ("/viewer.js", "text/javascript", include_bytes!("../../viewer/viewer.js")),
    ("/skeleton.js", "text/javascript", include_bytes!("../../viewer/skeleton.js")),
    (
        "/vendor/three.module.js",
        "text/javascript",
        include_bytes!("../../viewer/vendor/three.module.js"),
    ),
    (
        "/vendor/three.core.js",
        "text/javascript",
        include_bytes!("../../viewer/vendor/three.core.js"),
    ),
    (
        "/vendor/OrbitControls.js",
        "text/javascript",
        include_bytes!("../../viewer/vendor/OrbitControls.js"),
    ),
    ("/vendor/mqtt.esm.js", "text/javascript", include_bytes!("../../viewer/vendor/mqtt.esm.js")),
    (
        "/vendor/cbor-x.min.js",
        "text/javascript",
        include_bytes!("../../viewer/vendor/cbor-x.min.js"),
    ),
];

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("viewer: cannot listen on {addr} ({source}); is the port free? Choose another with --listen")]
    Listen { addr: SocketAddr, source: Box<dyn std::error::Error + Send + Sync> },
}

/// A running viewer server.
pub struct Server {
    server: std::sync::Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    pub addr: SocketAddr,
}

impl Server {
    /// The page's address.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts serving on `settings.listen` (port 0: any free port) on a thread of its own.
///
/// # Errors
/// [`Error::Listen`] when the address cannot be bound.
pub fn serve(settings: &Settings) -> Result<Server, Error> {
    let addr = settings.listen;
    let server = tiny_http::Server::http(addr).map_err(|source| Error::Listen { addr, source })?;
    let addr = server.server_addr().to_ip().unwrap_or(addr);
    let server = std::sync::Arc::new(server);
    let config = serde_json::to_vec(settings).unwrap_or_default();
    let thread = std::thread::Builder::new()
        .name("viewer".into())
        .spawn({
            let server = server.clone();
            move || {
                for request in server.incoming_requests() {
                    respond(request, &config);
                }
            }
        })
        .ok();
    tracing::info!(url = %format!("http://{addr}/"), ws = %settings.ws, "Viewer served.");
    Ok(Server { server, thread, addr })
}

fn respond(request: tiny_http::Request, config: &[u8]) {
    let url = request.url().split('?').next().unwrap_or("/").to_string();
    let path = if url == "/" { "/index.html" } else { url.as_str() };
    let (status, kind, body): (u16, &str, &[u8]) = if path == "/config.json" {
        (200, "application/json", config)
    } else if let Some((_, kind, bytes)) = FILES.iter().find(|(p, _, _)| *p == path) {
        (200, kind, bytes)
    } else {
        (404, "text/plain", b"not found")
    };
    let header = |k: &str, v: &str| tiny_http::Header::from_bytes(k, v).ok();
    let mut response = tiny_http::Response::from_data(body).with_status_code(status);
    for h in
        [header("Content-Type", kind), header("Cache-Control", "no-cache")].into_iter().flatten()
    {
        response.add_header(h);
    }
    if let Err(e) = request.respond(response) {
        tracing::debug!(error = %e, path, "Viewer client went away.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn serves_the_page_its_files_and_its_config() {
        let settings = Settings {
            listen: "127.0.0.1:0".parse().unwrap(),
            ws: "ws://10.0.0.5:9001".into(),
            prefix: "smplcast".into(),
            device: "+".into(),
        };
        let server = serve(&settings).unwrap();
        let page = get(server.addr, "/");
        assert!(page.starts_with("HTTP/1.0 200") && page.contains("smplcast viewer"), "{page}");
        let config = get(server.addr, "/config.json");
        assert!(config.contains(r#"{"ws":"ws://10.0.0.5:9001","prefix":"smplcast","device":"+"}"#));
        for (path, _, bytes) in FILES {
            let r = get(server.addr, path);
            assert!(r.starts_with("HTTP/1.0 200") && r.len() > bytes.len(), "{path}");
        }
        assert!(get(server.addr, "/../Cargo.toml").starts_with("HTTP/1.0 404"));
    }
}

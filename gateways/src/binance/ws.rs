//! The client side of a WebSocket to the venue, shared by the source (user
//! data streams) and the gateway (the WebSocket API): blocking, with a timeout
//! on every step, so each runs it on a thread of its own.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::WebSocket;

/// A connected WebSocket, plain or TLS.
pub(crate) type Ws = WebSocket<MaybeTlsStream<TcpStream>>;

/// Connects the WebSocket at `url` (`ws://` or `wss://`), the TCP connect and
/// the handshake each within `timeout`, then reads with a timeout of `tick`.
/// The error names what failed, never the URL (it holds the listen key).
pub(crate) fn connect(
    url: &str,
    timeout: Duration,
    tick: Duration,
    message_bytes_max: usize,
) -> Result<Ws, String> {
    let uri: tungstenite::http::Uri = url
        .parse()
        .map_err(|_| "the URL does not parse".to_string())?;
    let tls = match uri.scheme_str() {
        Some("wss") => true,
        Some("ws") => false,
        _ => return Err("the URL is neither ws:// nor wss://".into()),
    };
    let host = uri
        .host()
        .ok_or_else(|| "the URL has no host".to_string())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("resolving {host}: {e}"))?;
    let mut last = format!("{host} resolves to no address");
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = format!("connecting to {addr}: {e}"),
        }
    }
    let stream = stream.ok_or(last)?;
    let socket = stream.try_clone().map_err(|e| format!("the socket: {e}"))?;
    let io = |e: std::io::Error| format!("setting up the socket: {e}");
    stream.set_nodelay(true).map_err(io)?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let config = WebSocketConfig::default()
        .max_message_size(Some(message_bytes_max))
        .max_frame_size(Some(message_bytes_max));
    let (ws, _) = tungstenite::client_tls_with_config(url, stream, Some(config), None).map_err(
        |e| match e {
            tungstenite::HandshakeError::Failure(e) => format!("the WebSocket handshake: {e}"),
            tungstenite::HandshakeError::Interrupted(_) => {
                format!(
                    "the WebSocket handshake took more than {} ms",
                    timeout.as_millis()
                )
            }
        },
    )?;
    socket.set_read_timeout(Some(tick)).map_err(io)?;
    Ok(ws)
}

//! A TCP proxy in front of PostgreSQL that reads the protocol well enough to lose the
//! reply to a write after the server committed it, or to keep every byte that crossed it.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

/// What the proxy does besides forwarding.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Mode {
    /// Every other write of the collector's batch statement: forward it, let the server
    /// commit, then drop the reply and close the connection; `times` in all.
    LoseCommitReplies { times: u32 },
    /// Forward everything and keep a copy of both directions.
    Record,
}

pub(crate) struct PgProxy {
    pub(crate) addr: SocketAddr,
    shared: Arc<Shared>,
}

struct Shared {
    upstream: SocketAddr,
    mode: Mode,
    stop: AtomicBool,
    /// Batch writes seen (committed or not).
    writes: AtomicU32,
    /// Replies dropped after the server had committed.
    lost: AtomicU32,
    recorded: Mutex<Vec<u8>>,
}

impl PgProxy {
    pub(crate) fn start(upstream: SocketAddr, mode: Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            upstream,
            mode,
            stop: AtomicBool::new(false),
            writes: AtomicU32::new(0),
            lost: AtomicU32::new(0),
            recorded: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = client else { continue };
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = serve(client, &s);
                });
            }
        });
        Self { addr, shared }
    }

    /// Replies dropped after their commit.
    pub(crate) fn lost(&self) -> u32 {
        self.shared.lost.load(Ordering::Relaxed)
    }

    /// Every byte both ways so far.
    pub(crate) fn recorded(&self) -> Vec<u8> {
        self.shared.recorded.lock().unwrap().clone()
    }
}

impl Drop for PgProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

/// The SSLRequest code (PostgreSQL's protocol, "Message Formats").
const SSL_REQUEST: u32 = 80_877_103;

fn serve(mut client: TcpStream, s: &Arc<Shared>) -> std::io::Result<()> {
    let mut server = TcpStream::connect(s.upstream)?;
    let record = matches!(s.mode, Mode::Record);
    // The first message has no type byte: an SSLRequest (answered with one byte) or the
    // startup message.
    let mut first = read_untyped(&mut client)?;
    keep(s, record, &first);
    server.write_all(&first)?;
    if first.len() == 8
        && u32::from_be_bytes([first[4], first[5], first[6], first[7]]) == SSL_REQUEST
    {
        let mut answer = [0u8; 1];
        server.read_exact(&mut answer)?;
        keep(s, record, &answer);
        client.write_all(&answer)?;
        if answer[0] == b'S' || record {
            // Encrypted from here (or only kept): plain copying both ways.
            return copy_both(client, server, s);
        }
        first = read_untyped(&mut client)?;
        server.write_all(&first)?;
    }
    match s.mode {
        Mode::Record => copy_both(client, server, s),
        Mode::LoseCommitReplies { times } => lose_replies(client, server, s, times),
    }
}

fn keep(s: &Shared, record: bool, bytes: &[u8]) {
    if record {
        s.recorded.lock().unwrap().extend_from_slice(bytes);
    }
}

fn read_untyped(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let n = u32::from_be_bytes(len) as usize;
    let mut message = len.to_vec();
    message.resize(n.max(4), 0);
    stream.read_exact(&mut message[4..])?;
    Ok(message)
}

/// One typed message: its type byte and the whole message as sent.
fn read_typed(stream: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 5];
    stream.read_exact(&mut head)?;
    let n = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let mut message = head.to_vec();
    message.resize(1 + n.max(4), 0);
    stream.read_exact(&mut message[5..])?;
    Ok((head[0], message))
}

fn copy_both(client: TcpStream, server: TcpStream, s: &Arc<Shared>) -> std::io::Result<()> {
    let pump = |mut from: TcpStream, mut to: TcpStream, s: Arc<Shared>| {
        let record = matches!(s.mode, Mode::Record);
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    keep(&s, record, &buf[..n]);
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    };
    let (c2, s2) = (client.try_clone()?, server.try_clone()?);
    let shared = s.clone();
    let up = std::thread::spawn(move || pump(c2, s2, shared));
    pump(server, client, s.clone());
    let _ = up.join();
    Ok(())
}

/// Forwards messages both ways, noting the statement the collector prepares for its
/// batches; when a batch of it is chosen, the replies are held back until the server says
/// it is idle again (the batch's transaction has committed), then both connections are
/// closed.
fn lose_replies(
    mut client: TcpStream,
    server: TcpStream,
    s: &Arc<Shared>,
    times: u32,
) -> std::io::Result<()> {
    let armed = Arc::new(AtomicBool::new(false));
    let (mut to_server, from_server, to_client) =
        (server.try_clone()?, server, client.try_clone()?);
    let replies = {
        let (armed, s) = (armed.clone(), s.clone());
        std::thread::spawn(move || server_to_client(from_server, to_client, &armed, &s))
    };
    let mut batch_statement: Option<Vec<u8>> = None;
    while let Ok((kind, message)) = read_typed(&mut client) {
        let body = &message[5..];
        match kind {
            b'P' => {
                let mut parts = body.split(|b| *b == 0);
                let name = parts.next().unwrap_or_default();
                let query = parts.next().unwrap_or_default();
                // Statements are unnamed: each Parse says what the next Bind runs.
                batch_statement = contains(query, b"SELECT metrics_write(").then(|| name.to_vec());
            }
            b'B' => {
                // Decided at the Bind, before the server can answer any of the batch.
                let mut parts = body.split(|b| *b == 0);
                let _portal = parts.next();
                let statement = parts.next().unwrap_or_default();
                if batch_statement.as_deref() == Some(statement) {
                    let n = s.writes.fetch_add(1, Ordering::Relaxed);
                    if n.is_multiple_of(2) && s.lost.load(Ordering::Relaxed) < times {
                        armed.store(true, Ordering::SeqCst);
                    }
                }
            }
            _ => {}
        }
        if to_server.write_all(&message).is_err() {
            break;
        }
    }
    let _ = to_server.shutdown(Shutdown::Both);
    let _ = replies.join();
    Ok(())
}

fn server_to_client(
    mut from: TcpStream,
    mut to: TcpStream,
    armed: &AtomicBool,
    s: &Shared,
) -> std::io::Result<()> {
    while let Ok((kind, message)) = read_typed(&mut from) {
        if armed.load(Ordering::SeqCst) {
            // Ready for a query and idle (not in a transaction): the batch's transaction
            // has committed, and the client will never hear it.
            if kind == b'Z' && message.get(5) == Some(&b'I') {
                s.lost.fetch_add(1, Ordering::Relaxed);
                let _ = to.shutdown(Shutdown::Both);
                let _ = from.shutdown(Shutdown::Both);
                break;
            }
            continue;
        }
        to.write_all(&message)?;
    }
    let _ = to.shutdown(Shutdown::Both);
    Ok(())
}

pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

//! The OpenIGTLink TCP server: several clients, each with a reader that checks every size before it allocates and a
//! writer behind a bounded queue, so a hostile or stalled client costs at most its own connection.
//!
//! Replies go out in header v2 to a client that has spoken v2 (Slicer does, from its first STATUS), v1 otherwise.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::header::{Header, IgtlError, Limits, HEADER_SIZE};
use crate::message::{decode_body, Message};

/// A connected client, numbered from 1 in the order they connected.
pub type ClientId = u64;

/// Settings of the server.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Where to listen (default 127.0.0.1:18944: this host only).
    pub addr: SocketAddr,
    /// Size bounds applied before any body is read.
    pub limits: Limits,
    /// Messages queued per client before it counts as not reading and is disconnected.
    pub queue: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 18944)),
            limits: Limits::default(),
            queue: 256,
        }
    }
}

/// Why a connection closed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CloseReason {
    /// The client closed it between messages.
    #[error("closed by the client")]
    Eof,
    /// The client sent something that is not OpenIGTLink we accept.
    #[error("protocol error: {0}")]
    Protocol(IgtlError),
    /// The client stopped reading: its queue filled.
    #[error("the client stopped reading ({0} messages queued)")]
    SlowReader(usize),
    /// The socket failed.
    #[error("socket error: {0}")]
    Io(String),
}

/// What happens on the server, in order per client.
#[derive(Debug, Clone)]
pub enum Event {
    /// A client connected.
    Connected {
        /// Its number.
        client: ClientId,
        /// Its address.
        peer: SocketAddr,
    },
    /// A message arrived.
    Message {
        /// From whom.
        client: ClientId,
        /// The message.
        message: Message,
    },
    /// A well-formed message of a type we do not use was skipped.
    Skipped {
        /// From whom.
        client: ClientId,
        /// Its type.
        type_name: String,
    },
    /// A connection closed.
    Closed {
        /// Whose.
        client: ClientId,
        /// Why.
        reason: CloseReason,
    },
}

struct Client {
    queue: mpsc::Sender<Message>,
    tasks: [tokio::task::JoinHandle<()>; 2],
}

type Clients = Arc<Mutex<HashMap<ClientId, Client>>>;

/// A running server. Dropping it stops accepting and closes every connection.
pub struct Server {
    local_addr: SocketAddr,
    clients: Clients,
    events: mpsc::UnboundedSender<Event>,
    queue: usize,
    accept: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Listen on `config.addr`; events arrive on the returned receiver.
    pub async fn bind(config: ServerConfig) -> std::io::Result<(Server, mpsc::UnboundedReceiver<Event>)> {
        let listener = TcpListener::bind(config.addr).await?;
        let local_addr = listener.local_addr()?;
        let (events, rx) = mpsc::unbounded_channel();
        let clients: Clients = Arc::default();
        let next = Arc::new(AtomicU64::new(1));
        let accept = tokio::spawn(accept_loop(
            listener,
            config.clone(),
            Arc::clone(&clients),
            events.clone(),
            next,
        ));
        Ok((
            Server {
                local_addr,
                clients,
                events,
                queue: config.queue,
                accept,
            },
            rx,
        ))
    }

    /// The address it listens on (with the port chosen, if 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Queue `message` for every client; a client whose queue is full is disconnected.
    pub fn broadcast(&self, message: &Message) {
        let ids: Vec<ClientId> = match self.clients.lock() {
            Ok(c) => c.keys().copied().collect(),
            Err(_) => return,
        };
        for id in ids {
            self.send_to(id, message.clone());
        }
    }

    /// Queue `message` for `client`; returns false if it is not connected (or was just disconnected for not reading).
    pub fn send_to(&self, client: ClientId, message: Message) -> bool {
        let Ok(mut clients) = self.clients.lock() else {
            return false;
        };
        let Some(c) = clients.get(&client) else {
            return false;
        };
        match c.queue.try_send(message) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                if let Some(c) = clients.remove(&client) {
                    c.tasks.iter().for_each(|t| t.abort());
                }
                let _ = self.events.send(Event::Closed {
                    client,
                    reason: CloseReason::SlowReader(self.queue),
                });
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Clients connected now.
    pub fn clients(&self) -> Vec<ClientId> {
        self.clients
            .lock()
            .map(|c| c.keys().copied().collect())
            .unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.accept.abort();
        if let Ok(mut clients) = self.clients.lock() {
            for (_, c) in clients.drain() {
                c.tasks.iter().for_each(|t| t.abort());
            }
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    config: ServerConfig,
    clients: Clients,
    events: mpsc::UnboundedSender<Event>,
    next: Arc<AtomicU64>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("OpenIGTLink accept failed: {e}");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let client = next.fetch_add(1, Ordering::Relaxed);
        let (read, write) = stream.into_split();
        let (queue, outgoing) = mpsc::channel(config.queue.max(1));
        let speaks_v2 = Arc::new(AtomicBool::new(false));
        // Held while the tasks start and the client is entered: a task that ends at once finds itself to remove, and
        // the reader sends nothing before `Connected` (it takes the lock once before its first read).
        let Ok(mut map) = clients.lock() else { return };
        let reader = tokio::spawn(read_loop(
            client,
            read,
            config.limits,
            Arc::clone(&speaks_v2),
            events.clone(),
            Arc::clone(&clients),
        ));
        let writer = tokio::spawn(write_loop(
            client,
            write,
            outgoing,
            Arc::clone(&speaks_v2),
            events.clone(),
            Arc::clone(&clients),
        ));
        map.insert(
            client,
            Client {
                queue,
                tasks: [reader, writer],
            },
        );
        // Reported once the client is in the table, so that `send_to` on `Connected` reaches it.
        let _ = events.send(Event::Connected { client, peer });
        drop(map);
    }
}

/// Remove `client` and report why, once (whichever of its tasks ends first).
fn close(clients: &Clients, events: &mpsc::UnboundedSender<Event>, client: ClientId, reason: CloseReason) {
    let removed = clients.lock().ok().and_then(|mut c| c.remove(&client));
    if let Some(c) = removed {
        tracing::info!("OpenIGTLink client {client} closed: {reason}");
        let _ = events.send(Event::Closed { client, reason });
        c.tasks.iter().for_each(|t| t.abort());
    }
}

async fn read_loop(
    client: ClientId,
    mut read: tokio::net::tcp::OwnedReadHalf,
    limits: Limits,
    speaks_v2: Arc<AtomicBool>,
    events: mpsc::UnboundedSender<Event>,
    clients: Clients,
) {
    // Wait for the accept loop to enter this client and report it connected (it holds the lock until then).
    drop(clients.lock());
    let reason = loop {
        match read_one(&mut read, &limits).await {
            Ok((header, body)) => {
                if header.version >= 2 {
                    speaks_v2.store(true, Ordering::Relaxed);
                }
                match decode_body(&header, &body) {
                    Ok(message) => {
                        let _ = events.send(Event::Message { client, message });
                    }
                    Err(IgtlError::UnknownType(type_name)) if crate::header::is_standard_type(&type_name) => {
                        let _ = events.send(Event::Skipped { client, type_name });
                    }
                    Err(e) => break CloseReason::Protocol(e),
                }
            }
            Err(reason) => break reason,
        }
    };
    close(&clients, &events, client, reason);
}

/// Read one frame: the header, its size checked against the limit, then exactly that many bytes.
async fn read_one(
    read: &mut tokio::net::tcp::OwnedReadHalf,
    limits: &Limits,
) -> Result<(Header, Vec<u8>), CloseReason> {
    let mut raw = [0u8; HEADER_SIZE];
    let mut got = 0;
    while got < HEADER_SIZE {
        match read.read(&mut raw[got..]).await {
            Ok(0) if got == 0 => return Err(CloseReason::Eof),
            Ok(0) => {
                return Err(CloseReason::Protocol(IgtlError::Truncated {
                    what: "header",
                    need: HEADER_SIZE as u64,
                    have: got as u64,
                }))
            }
            Ok(n) => got += n,
            Err(e) => return Err(CloseReason::Io(e.to_string())),
        }
    }
    let header = Header::decode(&raw).map_err(CloseReason::Protocol)?;
    let size = header.check_size(limits).map_err(CloseReason::Protocol)?;
    // Grown as bytes arrive (never reserved from the declared size), up to the limit just checked: a client that
    // declares a large body and sends little costs what it sent.
    let mut body = Vec::with_capacity(size.min(64 * 1024));
    match (&mut *read).take(size as u64).read_to_end(&mut body).await {
        Ok(n) if n == size => {}
        Ok(n) => {
            return Err(CloseReason::Protocol(IgtlError::Truncated {
                what: "body",
                need: size as u64,
                have: n as u64,
            }))
        }
        Err(e) => return Err(CloseReason::Io(e.to_string())),
    }
    Ok((header, body))
}

async fn write_loop(
    client: ClientId,
    mut write: tokio::net::tcp::OwnedWriteHalf,
    mut outgoing: mpsc::Receiver<Message>,
    speaks_v2: Arc<AtomicBool>,
    events: mpsc::UnboundedSender<Event>,
    clients: Clients,
) {
    while let Some(message) = outgoing.recv().await {
        let version = if speaks_v2.load(Ordering::Relaxed) { 2 } else { 1 };
        if let Err(e) = write.write_all(&message.encode(version)).await {
            close(&clients, &events, client, CloseReason::Io(e.to_string()));
            return;
        }
    }
}

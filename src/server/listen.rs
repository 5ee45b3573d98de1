//! The accept loop, built for a network where clients may be slow, idle or hostile: HTTP/1
//! connections (hyper) with a header-read timeout, which also closes a kept-alive connection
//! that stays idle that long; a cap on open connections that, when reached, closes the
//! connection making the least progress (fewest bytes per second over its life, inside a
//! request or not) rather than stop answering, so clients trickling heads or bodies cannot
//! hold the slots; bounded buffers; and a graceful stop (no new connections, requests in
//! flight finish within a deadline, idle connections close at once). Timeouts and evictions
//! are counted in a log line every 10 s, not one line each.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tower::ServiceExt;

/// The client's address, in every request's extensions.
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// How connections are held.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// A request head must arrive within this; an idle kept-alive connection closes after it.
    pub header_timeout: Duration,
    /// At most this many connections are open at once.
    pub max_connections: usize,
    /// On SIGINT/SIGTERM, requests in flight get this long to finish.
    pub shutdown_grace: Duration,
}

/// Headers beyond this (and the buffered part of a body) are refused: memory per connection
/// stays bounded.
const MAX_BUF: usize = 80 * 1024;

struct Conn {
    /// Requests being handled on this connection (0: idle or still reading a head).
    busy: Arc<AtomicUsize>,
    /// Bytes read and written so far (TLS records included).
    bytes: Arc<AtomicU64>,
    since: Instant,
    close: oneshot::Sender<()>,
}

/// A connection younger than this is not judged by its progress yet: it has had no time to
/// make any.
const SPARED: Duration = Duration::from_secs(1);

/// A socket that counts the bytes that cross it, the measure of a connection's progress.
struct Metered {
    inner: TcpStream,
    bytes: Arc<AtomicU64>,
}

impl AsyncRead for Metered {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before);
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        r
    }
}

impl AsyncWrite for Metered {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = &r {
            self.bytes.fetch_add(*n as u64, Ordering::Relaxed);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[derive(Default)]
struct Counts {
    handshakes: AtomicU64,
    timeouts: AtomicU64,
    evicted: AtomicU64,
    refused: AtomicU64,
}

/// The listen backlog asked for; the kernel caps it (`net.core.somaxconn`, 4096 on current
/// Linux). A burst of connections larger than the backlog makes the kernel drop SYNs, and a
/// dropped SYN costs its client a 1 s retransmission: tokio's default of 1,024 let a burst of
/// 2,000 idle connections delay a health check past 1 s.
const BACKLOG: u32 = 65_535;

/// What a server process runs on: from here on stderr is its log (written by one thread,
/// never blocking or stopping the server when its reader is slow or gone), and a
/// multi-thread async runtime.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    crate::output::start_log_writer();
    anyhow::Context::context(
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
        "starting the async runtime",
    )
}

/// Binds `addr` (host:port; the first address it resolves to that binds) with a deep backlog.
pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        let socket = if a.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        // As std and tokio do on Unix: a restarted server can bind while old connections linger.
        socket.set_reuseaddr(true)?;
        match socket.bind(a).and_then(|()| socket.listen(BACKLOG)) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the address resolves to nothing",
        )
    }))
}

/// Serves `router` on `listener` until `shutdown` completes, then stops gracefully.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let conns: Arc<Mutex<BTreeMap<u64, Conn>>> = Arc::default();
    let counts = Arc::new(Counts::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let reporter = tokio::spawn(report(Arc::clone(&counts)));
    let mut next_id: u64 = 0;
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(_) => {
                // Out of descriptors (EMFILE) or a transient error: make room and go on.
                if evict_one(&conns) {
                    counts.evicted.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let full = conns
            .lock()
            .map(|c| c.len() >= limits.max_connections)
            .unwrap_or(true);
        if full {
            if evict_one(&conns) {
                counts.evicted.fetch_add(1, Ordering::Relaxed);
            } else {
                // Every connection is new and inside a request: this one waits for no one.
                counts.refused.fetch_add(1, Ordering::Relaxed);
                drop(stream);
                continue;
            }
        }
        next_id += 1;
        let id = next_id;
        let busy = Arc::new(AtomicUsize::new(0));
        let bytes = Arc::new(AtomicU64::new(0));
        let stream = Metered {
            inner: stream,
            bytes: Arc::clone(&bytes),
        };
        let (close_tx, close_rx) = oneshot::channel();
        if let Ok(mut c) = conns.lock() {
            c.insert(
                id,
                Conn {
                    busy: Arc::clone(&busy),
                    bytes,
                    since: Instant::now(),
                    close: close_tx,
                },
            );
        }
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            let router = router.clone();
            let busy = Arc::clone(&busy);
            req.extensions_mut().insert(PeerAddr(peer));
            async move {
                busy.fetch_add(1, Ordering::SeqCst);
                let resp = router.oneshot(req.map(Body::new)).await;
                busy.fetch_sub(1, Ordering::SeqCst);
                resp
            }
        });
        let conns = Arc::clone(&conns);
        let counts = Arc::clone(&counts);
        let stop = stop_rx.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => {
                    connection(
                        TokioIo::new(stream),
                        service,
                        limits,
                        close_rx,
                        stop,
                        &counts,
                    )
                    .await
                }
                // The handshake is bounded like a request head.
                Some(acceptor) => {
                    match tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await
                    {
                        Ok(Ok(tls_stream)) => {
                            connection(
                                TokioIo::new(tls_stream),
                                service,
                                limits,
                                close_rx,
                                stop,
                                &counts,
                            )
                            .await
                        }
                        _ => {
                            counts.handshakes.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            if let Ok(mut c) = conns.lock() {
                c.remove(&id);
            }
        });
    }
    // Stop: no new connections; each open one finishes its request or closes if idle.
    drop(listener);
    let _ = stop_tx.send(true);
    let deadline = tokio::time::Instant::now() + limits.shutdown_grace + Duration::from_millis(500);
    while conns.lock().map(|c| !c.is_empty()).unwrap_or(false)
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    reporter.abort();
    log_counts(&counts);
}

/// Serves one connection until it ends, is evicted, or the server stops (then the request in
/// flight finishes within the grace, and an idle connection closes at once).
async fn connection<I, S>(
    io: I,
    service: S,
    limits: Limits,
    close: oneshot::Receiver<()>,
    mut stop: watch::Receiver<bool>,
    counts: &Counts,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming> + Send,
    S::Future: Send + 'static,
    S::ResBody: Send + 'static,
    <S::ResBody as hyper::body::Body>::Data: Send,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_BUF)
        .keep_alive(true)
        // Header names keep their case on the way through a proxy.
        .preserve_header_case(true);
    // Upgrades (CONNECT, WebSocket) for the proxy; the server answers none.
    let conn = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if r.as_ref().is_err_and(|e| e.is_timeout()) {
                counts.timeouts.fetch_add(1, Ordering::Relaxed);
            }
        }
        _ = close => {}
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(limits.shutdown_grace, conn).await;
        }
    }
}

/// Closes the connection making the least progress: the fewest bytes per second over its
/// life, among those open at least `SPARED`, inside a request or not. When every one is
/// younger, the oldest one not inside a request. False when there is none to close.
fn evict_one(conns: &Mutex<BTreeMap<u64, Conn>>) -> bool {
    let Ok(mut c) = conns.lock() else {
        return false;
    };
    let now = Instant::now();
    // Compared as bytes_a * age_b < bytes_b * age_a: no division, no float.
    let slowest = c
        .iter()
        .filter_map(|(id, conn)| {
            let age = now.saturating_duration_since(conn.since);
            (age >= SPARED).then(|| (*id, conn.bytes.load(Ordering::Relaxed), age.as_millis()))
        })
        .min_by(|a, b| (u128::from(a.1) * b.2).cmp(&(u128::from(b.1) * a.2)))
        .map(|(id, _, _)| id);
    let victim = slowest.or_else(|| {
        c.iter()
            .find(|(_, conn)| conn.busy.load(Ordering::SeqCst) == 0)
            .map(|(id, _)| *id)
    });
    match victim.and_then(|id| c.remove(&id)) {
        Some(conn) => {
            let _ = conn.close.send(());
            true
        }
        None => false,
    }
}

async fn report(counts: Arc<Counts>) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.tick().await;
    loop {
        tick.tick().await;
        log_counts(&counts);
    }
}

/// One line for what happened to connections since the last line, when anything did.
fn log_counts(counts: &Counts) {
    let h = counts.handshakes.swap(0, Ordering::Relaxed);
    let t = counts.timeouts.swap(0, Ordering::Relaxed);
    let e = counts.evicted.swap(0, Ordering::Relaxed);
    let r = counts.refused.swap(0, Ordering::Relaxed);
    if h + t + e + r > 0 {
        crate::output::log(format!(
            "connections: {h} failed TLS handshakes, {t} closed by the header or idle timeout, {e} closed to make room (the least progress), {r} refused (all busy)"
        ));
    }
}

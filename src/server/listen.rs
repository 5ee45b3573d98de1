//! The accept loop, built for a network where clients may be slow, idle or hostile: HTTP/1
//! connections (hyper) with a header-read timeout, which also closes a kept-alive connection
//! that stays idle that long; a cap on open connections that, when reached, closes the
//! connection making the least progress (fewest bytes per second over its life, inside a
//! request or not) rather than stop answering, so clients trickling heads or bodies cannot
//! hold the slots; bounded buffers; and a graceful stop (no new connections, requests in
//! flight finish within a deadline, idle connections close at once). Timeouts and evictions
//! are counted in a log line every 10 s, not one line each.

use std::collections::BTreeMap;
use std::net::SocketAddr;
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

/// The runtime of a process whose serving happens on worker threads of their own
/// (`serve_per_thread`): one thread for signals and reports; stderr is its log as in `runtime`.
pub fn main_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    crate::output::start_log_writer();
    anyhow::Context::context(
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        "starting the async runtime",
    )
}

/// How many worker threads serve: `TOKIO_WORKER_THREADS` when set (as for the multi-thread
/// runtime), else one per core.
pub fn threads() -> usize {
    std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1)
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

/// The connections open on one listening address, however many threads accept on it: the
/// cap and the eviction see them all.
struct Registry {
    conns: Mutex<BTreeMap<u64, Conn>>,
    counts: Counts,
    next_id: AtomicU64,
    limits: Limits,
}

impl Registry {
    fn new(limits: Limits) -> Arc<Registry> {
        Arc::new(Registry {
            conns: Mutex::default(),
            counts: Counts::default(),
            next_id: AtomicU64::new(0),
            limits,
        })
    }

    fn is_empty(&self) -> bool {
        self.conns.lock().map(|c| c.is_empty()).unwrap_or(true)
    }

    /// After a stop: waits until every connection has closed, at most the grace.
    async fn drain(&self) {
        let deadline =
            tokio::time::Instant::now() + self.limits.shutdown_grace + Duration::from_millis(500);
        while !self.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then stops gracefully.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let registry = Registry::new(limits);
    let (stop_tx, stop_rx) = watch::channel(false);
    let reporter = tokio::spawn(report(Arc::clone(&registry)));
    let handler = move |req: hyper::Request<Body>, _peer: SocketAddr| {
        let router = router.clone();
        async move {
            match router.oneshot(req).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            }
        }
    };
    let accepting = tokio::spawn(accept(
        listener,
        handler,
        tls,
        Arc::clone(&registry),
        stop_rx,
    ));
    shutdown.await;
    // Stop: no new connections; each open one finishes its request or closes if idle.
    let _ = stop_tx.send(true);
    let _ = accepting.await;
    registry.drain().await;
    reporter.abort();
    log_counts(&registry.counts);
}

/// Serves `handler` on `listener` with one single-threaded runtime per thread, `threads` of
/// them, each accepting on the same socket and keeping the connections it accepted (as
/// nginx's worker processes do): a request never hops between threads, and no thread wakes
/// another. `make` gives each thread its handler. Runs until `shutdown` completes, then stops
/// gracefully.
pub async fn serve_per_thread<H, F>(
    listener: TcpListener,
    threads: usize,
    make: impl Fn() -> H,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()>
where
    H: Fn(hyper::Request<Body>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = axum::response::Response> + Send + 'static,
{
    let listener = listener.into_std()?;
    let registry = Registry::new(limits);
    let (stop_tx, stop_rx) = watch::channel(false);
    let reporter = tokio::spawn(report(Arc::clone(&registry)));
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(threads.max(1));
    for i in 0..threads.max(1) {
        let listener = listener.try_clone()?;
        let handler = make();
        let registry = Arc::clone(&registry);
        let stop = stop_rx.clone();
        let done = done_tx.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name(format!("jwkit-worker-{i}"))
            .spawn(move || {
                runtime.block_on(async move {
                    if let Ok(listener) = TcpListener::from_std(listener) {
                        let accepting =
                            accept(listener, handler, None, Arc::clone(&registry), stop);
                        accepting.await;
                        registry.drain().await;
                    }
                });
                drop(done);
            })?;
    }
    drop(done_tx);
    drop(listener);
    shutdown.await;
    let _ = stop_tx.send(true);
    // Every thread's sender is dropped when it has finished.
    while done_rx.recv().await.is_some() {}
    reporter.abort();
    log_counts(&registry.counts);
    Ok(())
}

/// Accepts connections on `listener` and serves each in a task of its own, until `stop`.
async fn accept<H, F>(
    listener: TcpListener,
    handler: H,
    tls: Option<tokio_rustls::TlsAcceptor>,
    registry: Arc<Registry>,
    mut stop: watch::Receiver<bool>,
) where
    H: Fn(hyper::Request<Body>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = axum::response::Response> + Send + 'static,
{
    let limits = registry.limits;
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = async { stop.wait_for(|stopped| *stopped).await.map(|_| ()) } => break,
        };
        let counts = &registry.counts;
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(_) => {
                // Out of descriptors (EMFILE) or a transient error: make room and go on.
                if evict_one(&registry.conns) {
                    counts.evicted.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let full = registry
            .conns
            .lock()
            .map(|c| c.len() >= limits.max_connections)
            .unwrap_or(true);
        if full {
            if evict_one(&registry.conns) {
                counts.evicted.fetch_add(1, Ordering::Relaxed);
            } else {
                // Every connection is new and inside a request: this one waits for no one.
                counts.refused.fetch_add(1, Ordering::Relaxed);
                drop(stream);
                continue;
            }
        }
        let id = registry.next_id.fetch_add(1, Ordering::Relaxed);
        let busy = Arc::new(AtomicUsize::new(0));
        let bytes = Arc::new(AtomicU64::new(0));
        let stream = Metered {
            inner: stream,
            bytes: Arc::clone(&bytes),
        };
        let (close_tx, close_rx) = oneshot::channel();
        if let Ok(mut c) = registry.conns.lock() {
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
        let handler = handler.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let busy = Arc::clone(&busy);
            let answer = handler(req.map(Body::new), peer);
            async move {
                busy.fetch_add(1, Ordering::SeqCst);
                let resp = answer.await;
                busy.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, std::convert::Infallible>(resp)
            }
        });
        let registry = Arc::clone(&registry);
        let stop = stop.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let counts = &registry.counts;
            match tls {
                None => {
                    connection(
                        TokioIo::new(stream),
                        service,
                        limits,
                        close_rx,
                        stop,
                        counts,
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
                                counts,
                            )
                            .await
                        }
                        _ => {
                            counts.handshakes.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            if let Ok(mut c) = registry.conns.lock() {
                c.remove(&id);
            }
        });
        // The connections already open on this thread read their requests before the next
        // one is taken: a flood of new connections cannot starve them (on a full server, a
        // connection still waiting to be read is one eviction may close).
        tokio::task::yield_now().await;
    }
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
        _ = async { stop.wait_for(|stopped| *stopped).await.map(|_| ()) } => {
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

async fn report(registry: Arc<Registry>) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.tick().await;
    loop {
        tick.tick().await;
        log_counts(&registry.counts);
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

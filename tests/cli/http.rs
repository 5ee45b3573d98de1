//! A real HTTP server on 127.0.0.1 for the remote key-set tests: it serves configured routes,
//! counts requests per path, honours If-None-Match, and can delay, trickle bytes, redirect and
//! send huge or compressed bodies. Every request is handled on its own thread.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Default)]
pub struct Route {
    pub status: u16,
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
    /// Send the body one byte at a time with this pause between bytes.
    pub trickle: Option<Duration>,
}

impl Route {
    pub fn json(body: impl Into<Vec<u8>>) -> Route {
        Route {
            status: 200,
            body: body.into(),
            headers: vec![("Content-Type".into(), "application/json".into())],
            trickle: None,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Route {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn status(code: u16) -> Route {
        Route {
            status: code,
            ..Route::default()
        }
    }

    pub fn redirect(to: &str) -> Route {
        Route::status(302).header("Location", to)
    }
}

#[derive(Default)]
struct State {
    routes: HashMap<String, Route>,
    hits: HashMap<String, usize>,
    if_none_match: Vec<String>,
}

pub struct TestServer {
    pub base: String,
    state: Arc<Mutex<State>>,
    server: Arc<tiny_http::Server>,
}

impl TestServer {
    pub fn start() -> TestServer {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind 127.0.0.1"));
        let port = server.server_addr().to_ip().expect("ip").port();
        let state = Arc::new(Mutex::new(State::default()));
        let (srv, st) = (Arc::clone(&server), Arc::clone(&state));
        std::thread::spawn(move || {
            for request in srv.incoming_requests() {
                let st = Arc::clone(&st);
                std::thread::spawn(move || handle(request, &st));
            }
        });
        TestServer {
            base: format!("http://127.0.0.1:{port}"),
            state,
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn set(&self, path: &str, route: Route) {
        self.state
            .lock()
            .expect("lock")
            .routes
            .insert(path.into(), route);
    }

    pub fn hits(&self, path: &str) -> usize {
        self.state
            .lock()
            .expect("lock")
            .hits
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    #[allow(dead_code)] // the attack catalogue (tests/attacks) counts every request
    pub fn total_hits(&self) -> usize {
        self.state.lock().expect("lock").hits.values().sum()
    }

    /// The If-None-Match values received, in order.
    pub fn if_none_match(&self) -> Vec<String> {
        self.state.lock().expect("lock").if_none_match.clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

fn handle(request: tiny_http::Request, state: &Mutex<State>) {
    let path = request.url().split('?').next().unwrap_or("").to_string();
    let inm = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("If-None-Match"))
        .map(|h| h.value.as_str().to_string());
    let route = {
        let mut st = state.lock().expect("lock");
        *st.hits.entry(path.clone()).or_default() += 1;
        if let Some(v) = &inm {
            st.if_none_match.push(v.clone());
        }
        st.routes.get(&path).cloned()
    };
    let Some(route) = route else {
        let _ = request.respond(tiny_http::Response::empty(404));
        return;
    };
    let etag = route
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("ETag"))
        .map(|(_, v)| v.clone());
    let headers: Vec<tiny_http::Header> = route
        .headers
        .iter()
        .filter_map(|(n, v)| tiny_http::Header::from_bytes(n.as_bytes(), v.as_bytes()).ok())
        .collect();
    if etag.is_some() && inm == etag {
        let mut resp = tiny_http::Response::empty(304);
        for h in headers {
            resp.add_header(h);
        }
        let _ = request.respond(resp);
        return;
    }
    let len = route.body.len();
    let reader: Box<dyn Read + Send> = match route.trickle {
        Some(pause) => Box::new(Trickle {
            data: route.body,
            at: 0,
            pause,
        }),
        None => Box::new(std::io::Cursor::new(route.body)),
    };
    let resp = tiny_http::Response::new(
        tiny_http::StatusCode(route.status),
        headers,
        reader,
        Some(len),
        None,
    );
    let _ = request.respond(resp);
}

struct Trickle {
    data: Vec<u8>,
    at: usize,
    pause: Duration,
}

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at >= self.data.len() || buf.is_empty() {
            return Ok(0);
        }
        std::thread::sleep(self.pause);
        buf[0] = self.data[self.at];
        self.at += 1;
        Ok(1)
    }
}

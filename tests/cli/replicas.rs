//! `jwkit serve --store postgres://...`: replicas sharing one key set through a real
//! PostgreSQL server (tests/cli/pg.rs), behind a real nginx load balancer, with real kills,
//! a real database outage, and PyJWT's PyJWKClient and `jwkit verify-jwt` as the verifiers.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use jwkit::crypto::{Curve, Key, KeyMeta, KeySpec};
use serde_json::Value;

use crate::generate_jwt::peer_python;
use crate::pg::{Cluster, Nginx, PASSWORD};
use crate::serve::{Server, TOKEN, http};
use crate::serve_dropin::pyjwk;
use crate::util::{Env, exclusive, free_port};

const STORE_KEY: &str = "c3RvcmUta2V5LWZvci10aGUtcmVwbGljYS10ZXN0cy0wMTIzNDU2Nzg5\n";

/// A replica on `port` (0: any) with the store key in a file.
fn replica(env: &Env, url: &str, port: u16, extra: &[&str]) -> Server {
    std::fs::write(env.path("store.key"), STORE_KEY).expect("store key");
    let addr = format!("127.0.0.1:{port}");
    let mut args = vec![
        "--store",
        url,
        "--store-key-file",
        "store.key",
        "--addr",
        &addr,
    ];
    args.extend(extra);
    Server::start(env, &env.path("unused"), &args)
}

fn ec_jwk(kid: &str) -> String {
    let key = Key::generate(KeySpec::Ec(Curve::P256), KeyMeta::default(), false).expect("key");
    let mut jwk = key.public().expect("public").to_jwk();
    jwk.insert("kid".into(), kid.into());
    Value::Object(jwk).to_string()
}

/// The key set a replica serves: body bytes, ETag, kids.
fn served(url: &str) -> (Vec<u8>, String, BTreeSet<String>) {
    let resp = http()
        .get(format!("{url}/.well-known/jwks.json"))
        .send()
        .expect("get jwks");
    assert_eq!(resp.status().as_u16(), 200);
    let etag = resp.headers()["etag"].to_str().expect("etag").to_string();
    let body = resp.bytes().expect("body").to_vec();
    let doc: Value = serde_json::from_slice(&body).expect("jwks");
    let kids = doc["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_string())
        .collect();
    (body, etag, kids)
}

/// Waits until every replica serves the same bytes (and returns them), at most `within`.
fn converged(urls: &[String], within: Duration) -> (Vec<u8>, String, BTreeSet<String>) {
    let deadline = Instant::now() + within;
    loop {
        let sets: Vec<_> = urls.iter().map(|u| served(u)).collect();
        if sets.iter().all(|s| s.0 == sets[0].0 && s.1 == sets[0].1) {
            return sets.into_iter().next().expect("one");
        }
        assert!(
            Instant::now() < deadline,
            "the replicas still differ after {within:?}: {:?}",
            sets.iter().map(|s| (&s.1, s.2.len())).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn post_upload(url: &str, body: &str) -> Result<u16, String> {
    http()
        .post(format!("{url}/jwks"))
        .bearer_auth(TOKEN)
        .body(body.to_string())
        .send()
        .map(|r| r.status().as_u16())
        .map_err(|e| e.to_string())
}

#[test]
fn replicas_behind_a_load_balancer_keep_every_acknowledged_upload_through_a_kill() {
    let Some(pg) = Cluster::start() else { return };
    let db = pg.database("lb");
    let env = Env::new();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    // Started at once on a fresh database: their migrations take turns.
    let mut replicas: Vec<Server> = std::thread::scope(|s| {
        let started: Vec<_> = ports
            .iter()
            .map(|p| s.spawn(|| replica(&env, &db, *p, &[])))
            .collect();
        started
            .into_iter()
            .map(|h| h.join().expect("replica"))
            .collect()
    });
    // Each migration once, though the replicas started at once.
    assert_eq!(
        pg.sql("lb", "SELECT count(*) FROM jwkit_schema").trim(),
        jwkit::server::store::postgres::MIGRATIONS.len().to_string()
    );
    let urls: Vec<String> = replicas.iter().map(|r| r.url.clone()).collect();
    let upstreams: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let Some(lb) = Nginx::start(&upstreams) else {
        return;
    };
    // 16 clients x 100 uploads through the balancer. An upload that is not acknowledged
    // (the replica it reached was killed) is sent again, as a client does: uploads are
    // idempotent, and a key stored before the kill answers 200 the second time.
    let acked = std::sync::Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let clients: Vec<_> = (0..16)
        .map(|c| {
            let (acked, done, lb) = (acked.clone(), done.clone(), lb.url.clone());
            std::thread::spawn(move || {
                let mut retries = 0;
                for i in 0..100 {
                    let kid = format!("client{c:02}-key{i:03}");
                    let body = ec_jwk(&kid);
                    loop {
                        match post_upload(&lb, &body) {
                            Ok(201 | 200) => break,
                            other => {
                                retries += 1;
                                assert!(retries < 200, "{kid}: {other:?}");
                                std::thread::sleep(Duration::from_millis(50));
                            }
                        }
                    }
                    acked.lock().expect("acked").insert(kid);
                    done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                retries
            })
        })
        .collect();
    // Mid-way, one replica is killed with SIGKILL and started again on its port.
    while done.load(std::sync::atomic::Ordering::SeqCst) < 600 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let killed = replicas.remove(1);
    let mut killed = killed;
    assert_eq!(killed.signal("-KILL"), -1, "killed by the signal");
    std::thread::sleep(Duration::from_millis(300));
    replicas.insert(1, replica(&env, &db, ports[1], &[]));
    let retries: usize = clients.into_iter().map(|c| c.join().expect("client")).sum();
    let acked = acked.lock().expect("acked").clone();
    assert_eq!(acked.len(), 1600);
    let (body, etag, kids) = converged(&urls, Duration::from_secs(10));
    assert_eq!(kids, acked, "every acknowledged key, and nothing else");
    // The load balancer serves the same bytes too, whichever replica answers.
    for _ in 0..6 {
        let (b, e, _) = served(&lb.url);
        assert_eq!((b, e), (body.clone(), etag.clone()));
    }
    let rows = pg.sql("lb", "SELECT count(*) FROM jwkit_keys WHERE NOT deleted");
    assert_eq!(rows.trim(), "1600");
    eprintln!("1600 uploads through nginx over 3 replicas, one killed mid-way: {retries} retries");
}

#[test]
fn rotation_across_replicas_has_one_winner_per_period_and_every_token_verifies() {
    let Some(pg) = Cluster::start() else { return };
    let db = pg.database("rot");
    let python = peer_python();
    let _quiet = exclusive();
    let env = Env::new();
    let flags = [
        "--issue-tokens",
        "--alg",
        "ES256",
        "--rotate-every",
        "3s",
        "--max-age",
        "1s",
        "--token-ttl",
        "4s",
    ];
    let replicas: Vec<Server> = (0..3).map(|_| replica(&env, &db, 0, &flags)).collect();
    let urls: Vec<String> = replicas.iter().map(|r| r.url.clone()).collect();
    let start_ms = now_ms();
    // (token, exp) of every token issued so far.
    let mut tokens: Vec<(String, i64)> = Vec::new();
    let mut checked = 0usize;
    let mut round = 0usize;
    while now_ms() - start_ms < 30_000 {
        round += 1;
        for url in &urls {
            let resp = http()
                .post(format!("{url}/auth"))
                .header("content-type", "application/json")
                .body(serde_json::json!({ "sub": format!("round-{round}") }).to_string())
                .send()
                .expect("auth");
            assert_eq!(resp.status().as_u16(), 200);
            let body: Value = json_of(resp);
            let token = body["access_token"].as_str().expect("token").to_string();
            let exp = crate::generate_jwt::claims_of(&token)["exp"]
                .as_i64()
                .expect("exp");
            tokens.push((token, exp));
        }
        // Every token still valid verifies against the set of every replica, with jwkit
        // (batch mode, no cache) and, every other round, with PyJWKClient.
        let now = crate::util::unix_now();
        let live: Vec<String> = tokens
            .iter()
            .filter(|(_, exp)| *exp > now + 1)
            .map(|(t, _)| t.clone())
            .collect();
        for url in &urls {
            let jwks = format!("{url}/.well-known/jwks.json");
            let run = env.run_with_stdin(
                &[
                    "verify-jwt",
                    "--jwks-url",
                    &jwks,
                    "--no-cache",
                    "--batch",
                    "--json",
                    "-",
                ],
                (live.join("\n") + "\n").as_bytes(),
            );
            assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
            checked += live.len();
            if round.is_multiple_of(2)
                && let Some(python) = &python
            {
                // PyJWKClient fetches the set once per token and Python takes a moment to
                // start: the tokens with a few seconds left (jwkit checked them all above).
                let now = crate::util::unix_now();
                let lasting: Vec<String> = tokens
                    .iter()
                    .filter(|(_, exp)| *exp > now + 3)
                    .map(|(t, _)| t.clone())
                    .collect();
                for v in pyjwk(python, &jwks, None, &lasting) {
                    assert_eq!(v["ok"], true, "PyJWKClient against {jwks}: {v}");
                }
            }
        }
        std::thread::sleep(Duration::from_millis(400));
    }
    let end_ms = now_ms();
    // Counted in the database: rotations are one per 3 s period, due times exactly 3 s
    // apart, each carried out close to its due time.
    let rows = pg.sql(
        "rot",
        &format!("SELECT n, due, at_ms FROM jwkit_rotations WHERE at_ms >= {start_ms} ORDER BY n"),
    );
    let rows: Vec<(i64, i64, i64)> = rows
        .lines()
        .map(|l| {
            let f: Vec<i64> = l.split('|').map(|x| x.parse().expect("int")).collect();
            (f[0], f[1], f[2])
        })
        .collect();
    let periods = (end_ms - start_ms) / 3000;
    assert!(
        (rows.len() as i64 - periods).abs() <= 1,
        "{} rotations in {} ms: {rows:?}",
        rows.len(),
        end_ms - start_ms
    );
    for pair in rows.windows(2) {
        assert_eq!(pair[1].0, pair[0].0 + 1, "consecutive: {rows:?}");
        assert_eq!(
            pair[1].1 - pair[0].1,
            3,
            "one rotation per period: {rows:?}"
        );
    }
    for (_, due, at_ms) in &rows {
        assert!(
            (at_ms - due * 1000) < 1500,
            "rotated {} ms after it was due: {rows:?}",
            at_ms - due * 1000
        );
    }
    let logs: String = replicas.iter().map(|r| r.log()).collect();
    let said = logs.matches("rotated the signing key").count();
    assert!(
        said >= rows.len(),
        "each rotation was made by one replica: {said}"
    );
    let winners: BTreeSet<usize> = replicas
        .iter()
        .enumerate()
        .filter(|(_, r)| r.log().contains("rotated the signing key"))
        .map(|(i, _)| i)
        .collect();
    eprintln!(
        "{} rotations in {:.1} s by replicas {winners:?}; {checked} token verifications by jwkit, {} tokens",
        rows.len(),
        (end_ms - start_ms) as f64 / 1000.0,
        tokens.len()
    );
}

fn json_of(resp: reqwest::blocking::Response) -> Value {
    serde_json::from_slice(&resp.bytes().expect("body")).expect("a JSON body")
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

#[test]
fn a_database_outage_keeps_reads_up_fails_writes_with_503_and_recovers_without_restart() {
    let Some(pg) = Cluster::start() else { return };
    let db = pg.database("outage");
    let env = Env::new();
    let replicas: Vec<Server> = (0..3).map(|_| replica(&env, &db, 0, &[])).collect();
    let urls: Vec<String> = replicas.iter().map(|r| r.url.clone()).collect();
    for i in 0..5 {
        assert_eq!(
            post_upload(&urls[i % 3], &ec_jwk(&format!("before-{i}"))),
            Ok(201)
        );
    }
    let (body, etag, kids) = converged(&urls, Duration::from_secs(5));
    assert_eq!(kids.len(), 5);
    pg.stop_server();
    let stopped = Instant::now();
    let mut writes = 0;
    while stopped.elapsed() < Duration::from_secs(10) {
        for url in &urls {
            let (b, e, _) = served(url);
            assert_eq!((&b, &e), (&body, &etag), "reads go on from memory");
            let resp = http()
                .post(format!("{url}/jwks"))
                .bearer_auth(TOKEN)
                .body(ec_jwk("during"))
                .send()
                .expect("upload");
            assert_eq!(resp.status().as_u16(), 503);
            assert_eq!(resp.headers()["content-type"], "application/json");
            let err: Value = json_of(resp);
            assert!(
                err["error"]
                    .as_str()
                    .expect("error")
                    .contains("unavailable"),
                "{err}"
            );
            writes += 1;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    for url in &urls {
        let ready = http().get(format!("{url}/ready")).send().expect("ready");
        assert_eq!(ready.status().as_u16(), 503);
        let health: Value = json_of(http().get(format!("{url}/health")).send().expect("health"));
        assert_eq!(health["store"]["reachable"], false, "{health}");
        assert_eq!(health["status"], "degraded");
    }
    pg.start_server();
    // Back without a restart: every replica takes uploads again, and reports ready.
    let back = Instant::now();
    for (i, url) in urls.iter().enumerate() {
        let body = ec_jwk(&format!("after-{i}"));
        loop {
            match post_upload(url, &body) {
                Ok(201) => break,
                other => {
                    assert!(
                        back.elapsed() < Duration::from_secs(20),
                        "replica {i} still refuses uploads: {other:?}"
                    );
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
        let ready = http().get(format!("{url}/ready")).send().expect("ready");
        assert_eq!(ready.status().as_u16(), 200);
    }
    let (_, _, kids) = converged(&urls, Duration::from_secs(5));
    assert_eq!(kids.len(), 8, "{kids:?}");
    assert!(!kids.contains("during"), "no refused upload was stored");
    eprintln!(
        "{writes} uploads refused with 503 during the outage; writes back {:.1} s after the restart",
        back.elapsed().as_secs_f64()
    );
}

/// Start-up failures: exit 2 naming the cause, never the password, nothing changed.
#[test]
fn bad_urls_passwords_schemas_and_store_keys_stop_the_start() {
    let Some(pg) = Cluster::start() else { return };
    let db = pg.database("bad");
    let env = Env::new();
    std::fs::write(env.path("store.key"), STORE_KEY).expect("key");
    std::fs::write(
        env.path("other.key"),
        "another-store-key-0123456789-abcdefghij\n",
    )
    .expect("k");
    std::fs::write(env.path("short.key"), "short\n").expect("k");
    let start = |url: &str, extra: &[&str]| {
        let mut args = vec!["serve", "--addr", "127.0.0.1:0", "--store", url];
        args.extend(extra);
        env.run(&args)
    };
    let wrong_pw = db.replace(PASSWORD, "not-the-password-xyz");
    let run = start(&wrong_pw, &[]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("password authentication failed"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("not-the-password-xyz"),
        "{}",
        run.stderr
    );
    for (url, says) in [
        ("mysql://u:p@127.0.0.1/db", "expected a postgres:// URL"),
        ("postgres://u:p@127.0.0.1:notaport/db", "not a URL"),
        (&format!("{db}?sslmode=sometimes"), "sslmode"),
        (
            &format!("postgres://jwkit:{PASSWORD}@127.0.0.1:{}/bad", free_port()),
            "connecting",
        ),
    ] {
        let run = start(url, &[]);
        assert_eq!(run.code, 2, "{url}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{url}: {}", run.stderr);
        assert!(!run.stderr.contains(PASSWORD), "{}", run.stderr);
    }
    // --issue-tokens needs the store key; a short one is refused.
    let run = start(&db, &["--issue-tokens"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--store-key-file"), "{}", run.stderr);
    let run = start(&db, &["--issue-tokens", "--store-key-file", "short.key"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("at least 32"), "{}", run.stderr);
    // A first replica makes the signing keys; one with another store key cannot open them,
    // exits 2 and changes nothing.
    {
        let _first = replica(&env, &db, 0, &["--issue-tokens", "--alg", "ES256"]);
    }
    let before = pg.sql(
        "bad",
        "SELECT kid, sealed, version FROM jwkit_signing ORDER BY kid",
    );
    let run = start(&db, &["--issue-tokens", "--store-key-file", "other.key"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("not the one"), "{}", run.stderr);
    assert_eq!(
        pg.sql(
            "bad",
            "SELECT kid, sealed, version FROM jwkit_signing ORDER BY kid"
        ),
        before,
        "no key was written over the old ones"
    );
    // A schema newer than this jwkit.
    pg.sql("bad", "INSERT INTO jwkit_schema (version) VALUES (99)");
    let run = start(&db, &[]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("newer than this jwkit"),
        "{}",
        run.stderr
    );
    // --store and --data-dir together, and --store-key-file without --store.
    let run = env.run(&["serve", "--store", &db, "--data-dir", "d"]);
    assert_eq!(run.code, 2);
    let run = env.run(&["serve", "--data-dir", "d", "--store-key-file", "store.key"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("needs --store"), "{}", run.stderr);
}

/// `--store` with nothing else against a fresh database, and JWKIT_STORE: the schema is made,
/// the key set served, uploads and deletes work, and a restart keeps them.
#[test]
fn a_fresh_database_needs_nothing_else_and_a_restart_keeps_everything() {
    let Some(pg) = Cluster::start() else { return };
    let db = pg.database("fresh");
    let env = Env::new();
    let (body, _etag, kids) = {
        let server = Server::start(&env, &env.path("unused"), &["--store", &db]);
        assert!(
            server.log().contains("keys in postgres://jwkit:***@"),
            "{}",
            server.log()
        );
        assert!(!server.log().contains(PASSWORD));
        assert_eq!(post_upload(&server.url, &ec_jwk("one")), Ok(201));
        assert_eq!(post_upload(&server.url, &ec_jwk("two")), Ok(201));
        let resp = http()
            .delete(format!("{}/jwks/one", server.url))
            .bearer_auth(TOKEN)
            .send()
            .expect("delete");
        assert_eq!(resp.status().as_u16(), 200);
        // The same kid again, now for another key: the deleted one is gone for good.
        assert_eq!(post_upload(&server.url, &ec_jwk("one")), Ok(201));
        served(&server.url)
    };
    assert_eq!(kids.len(), 2);
    let mut cmd = env.cmd(&[
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--upload-token-file",
        "upload.token",
    ]);
    cmd.env("JWKIT_STORE", &db);
    let server = Server::from_command(cmd);
    let (again, _, _) = served(&server.url);
    assert_eq!(again, body, "the same bytes after a restart");
    let ready = http()
        .get(format!("{}/ready", server.url))
        .send()
        .expect("ready");
    assert_eq!(ready.status().as_u16(), 200);
    assert_eq!(
        pg.sql("fresh", "SELECT max(version) FROM jwkit_schema")
            .trim(),
        jwkit::server::store::postgres::MIGRATIONS.len().to_string()
    );
}

/// TLS to the database is verified: against `sslrootcert`, with the host name, and
/// `sslmode=require` verifies too (unlike libpq's). The session is encrypted (pg_stat_ssl).
#[test]
fn tls_to_the_database_is_verified() {
    let Some(mut pg) = Cluster::start() else {
        return;
    };
    pg.enable_tls();
    let db = pg.database("tls");
    let env = Env::new();
    let ca = pg.ca();
    for (mode, host) in [("verify-full", "127.0.0.1"), ("require", "localhost")] {
        let url = format!(
            "{}?sslmode={mode}&sslrootcert={}",
            db.replace("127.0.0.1", host),
            ca.display()
        );
        let server = Server::start(&env, &env.path("unused"), &["--store", &url]);
        assert_eq!(post_upload(&server.url, &ec_jwk(mode)), Ok(201));
        let encrypted = pg.sql(
            "tls",
            "SELECT count(*) FILTER (WHERE ssl), count(*) FROM pg_stat_ssl \
             JOIN pg_stat_activity USING (pid) WHERE application_name = 'jwkit serve'",
        );
        let counts: Vec<&str> = encrypted.trim().split('|').collect();
        assert_eq!(counts[0], counts[1], "every session is TLS: {encrypted}");
        assert_ne!(counts[0], "0", "{encrypted}");
    }
    // A CA that did not sign the server's certificate, or the system's roots: exit 2.
    let other = env.path("other-ca");
    std::fs::create_dir_all(&other).expect("dir");
    crate::util::private_ca(&other, "IP:127.0.0.1");
    for url in [
        format!(
            "{db}?sslmode=require&sslrootcert={}",
            other.join("ca.pem").display()
        ),
        format!("{}?sslmode=require", db.replace("127.0.0.1", "localhost")),
    ] {
        let run = env.run(&["serve", "--addr", "127.0.0.1:0", "--store", &url]);
        assert_eq!(run.code, 2, "{url}: {}", run.stderr);
        assert!(run.stderr.contains("certificate"), "{}", run.stderr);
        assert!(!run.stderr.contains(PASSWORD));
    }
}

/// A change reaches every replica within about a second: at once through NOTIFY, and through
/// the once-a-second re-read when no notification comes (a row written here with psql, which
/// sends none).
#[test]
fn changes_reach_every_replica_by_notification_and_without_one() {
    let Some(pg) = Cluster::start() else { return };
    let db = pg.database("spread");
    let env = Env::new();
    let replicas: Vec<Server> = (0..3).map(|_| replica(&env, &db, 0, &[])).collect();
    let urls: Vec<String> = replicas.iter().map(|r| r.url.clone()).collect();
    let seen_by_all = |kid: &str| {
        let start = Instant::now();
        while !urls.iter().all(|u| served(u).2.contains(kid)) {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{kid} has not reached every replica"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        start.elapsed()
    };
    let mut notified = Vec::new();
    for i in 0..5 {
        let kid = format!("notified-{i}");
        assert_eq!(post_upload(&urls[i % 3], &ec_jwk(&kid)), Ok(201));
        notified.push(seen_by_all(&kid));
    }
    let jwk = ec_jwk("written-by-hand");
    let thumbprint = {
        let key = jwkit::crypto::load_key(jwk.as_bytes(), None).expect("jwk");
        key.public()
            .expect("public")
            .thumbprint(jwkit::crypto::Hash::Sha256)
    };
    pg.sql(
        "spread",
        &format!(
            "BEGIN; UPDATE jwkit_state SET version = version + 1; \
             INSERT INTO jwkit_keys (kid, thumbprint, jwk, added, expires, deleted, version) \
             SELECT 'written-by-hand', '{thumbprint}', '{jwk}', 0, NULL, false, version FROM jwkit_state; \
             COMMIT"
        ),
    );
    // Nothing but the re-read brings it (within seen_by_all's bound of 5 s).
    let polled = seen_by_all("written-by-hand");
    let (_, _, kids) = converged(&urls, Duration::from_secs(2));
    assert_eq!(kids.len(), 6);
    eprintln!(
        "reached every replica: after an upload in {notified:?}; without a notification in {polled:?}"
    );
}

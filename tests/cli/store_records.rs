//! One conformance suite for the identity provider's records (`Store::record_*`), run against
//! both stores, as Dex runs its storage tests against every backend: the directory store's
//! memory and a real PostgreSQL database. Single use must hold under concurrency: of 16 tasks
//! taking one code at once, exactly one gets it; of 16 adding one assertion id, one succeeds.

use std::sync::Arc;

use jwkit::server::store::Store;
use jwkit::server::store::dir::DirStore;
use jwkit::server::store::postgres::{PgStore, target};
use jwkit::server::store::records::Kind;

use crate::pg::Cluster;
use crate::util::Env;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

async fn conformance(store: Arc<dyn Store>, name: &str) {
    let now = 1_000_000;
    // put, get, overwrite; kinds are separate spaces.
    store
        .record_put(Kind::Session, "k", "v1", now + 60, now)
        .await
        .expect("put");
    assert_eq!(
        store
            .record_get(Kind::Session, "k", now)
            .await
            .expect("get"),
        Some("v1".into()),
        "{name}"
    );
    assert_eq!(
        store.record_get(Kind::Code, "k", now).await.expect("get"),
        None,
        "{name}: another kind"
    );
    store
        .record_put(Kind::Session, "k", "v2", now + 60, now)
        .await
        .expect("put");
    assert_eq!(
        store
            .record_get(Kind::Session, "k", now)
            .await
            .expect("get"),
        Some("v2".into()),
        "{name}"
    );
    // Expired records are gone for every read, before and after pruning.
    assert_eq!(
        store
            .record_get(Kind::Session, "k", now + 60)
            .await
            .expect("get"),
        None,
        "{name}: expired at its expiry"
    );
    store
        .record_put(Kind::Code, "old", "x", now + 1, now)
        .await
        .expect("put");
    assert_eq!(
        store
            .record_take(Kind::Code, "old", now + 5)
            .await
            .expect("take"),
        None,
        "{name}: an expired code is not taken"
    );
    // take: once.
    store
        .record_put(Kind::Code, "c", "grant", now + 60, now)
        .await
        .expect("put");
    assert_eq!(
        store.record_take(Kind::Code, "c", now).await.expect("take"),
        Some("grant".into())
    );
    assert_eq!(
        store.record_take(Kind::Code, "c", now).await.expect("take"),
        None,
        "{name}: twice"
    );
    // add: once while live, again once expired.
    assert!(
        store
            .record_add(Kind::Assertion, "jti", "", now + 10, now)
            .await
            .expect("add")
    );
    assert!(
        !store
            .record_add(Kind::Assertion, "jti", "", now + 10, now)
            .await
            .expect("add"),
        "{name}: a live id"
    );
    assert!(
        store
            .record_add(Kind::Assertion, "jti", "", now + 30, now + 10)
            .await
            .expect("add"),
        "{name}: an expired id is free again"
    );
    // delete.
    assert!(
        store
            .record_delete(Kind::Session, "k")
            .await
            .expect("delete")
    );
    assert!(
        !store
            .record_delete(Kind::Session, "k")
            .await
            .expect("delete")
    );
    // Concurrency: 16 takers of one code, 16 adders of one id: one winner each.
    store
        .record_put(Kind::Code, "race", "g", now + 60, now)
        .await
        .expect("put");
    let mut takers = Vec::new();
    let mut adders = Vec::new();
    for _ in 0..16 {
        let s = Arc::clone(&store);
        takers.push(tokio::spawn(async move {
            s.record_take(Kind::Code, "race", now).await.expect("take")
        }));
        let s = Arc::clone(&store);
        adders.push(tokio::spawn(async move {
            s.record_add(Kind::Assertion, "race", "", now + 60, now)
                .await
                .expect("add")
        }));
    }
    let mut took = 0;
    for t in takers {
        took += usize::from(t.await.expect("task").is_some());
    }
    let mut added = 0;
    for a in adders {
        added += usize::from(a.await.expect("task"));
    }
    assert_eq!((took, added), (1, 1), "{name}");
    // prune drops what expired and nothing live.
    for i in 0..50 {
        store
            .record_put(
                Kind::Refresh,
                &format!("r{i}"),
                "x",
                now + 1 + (i % 2) * 100,
                now,
            )
            .await
            .expect("put");
    }
    let pruned = store.record_prune(now + 2).await.expect("prune");
    assert!(pruned >= 25, "{name}: pruned {pruned}");
    assert_eq!(
        store
            .record_get(Kind::Refresh, "r1", now + 1)
            .await
            .expect("get"),
        Some("x".into())
    );
    assert_eq!(
        store
            .record_get(Kind::Refresh, "r0", now)
            .await
            .expect("get"),
        None,
        "{name}: pruned"
    );
}

#[test]
fn the_directory_store_keeps_idp_records_by_the_contract() {
    let env = Env::new();
    let store = DirStore::open(&env.path("data")).expect("open");
    runtime().block_on(conformance(Arc::new(store), "directory"));
}

#[test]
fn the_postgres_store_keeps_idp_records_by_the_contract() {
    let Some(pg) = Cluster::start() else { return };
    let url = pg.database("records");
    let rt = runtime();
    rt.block_on(async {
        let store = PgStore::open(target(&url).expect("url"), None)
            .await
            .expect("open");
        conformance(Arc::new(store), "postgres").await;
    });
}

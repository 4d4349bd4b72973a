//! Against the harness's MongoDB-wire server, each test in a fresh database.

use data_mongo::{MongoCatalog, MongoConfig};
use domain::{CatalogStore, StoreErrorKind};

fn config() -> MongoConfig {
    let s = testkit::services();
    MongoConfig::new(s.var("MONGO_URL"), &testkit::unique_name("cl_test"))
}

async fn demo() -> MongoCatalog {
    let catalog = MongoCatalog::connect(&config()).await.expect("connect");
    seed(&catalog).await;
    catalog
}

/// Loads the demo patrons and books.
async fn seed(catalog: &MongoCatalog) {
    catalog
        .insert_demo(
            &demo_data::patrons(),
            &demo_data::books(),
            demo_data::has_postal_code,
        )
        .await
        .expect("seed");
}

#[tokio::test]
async fn patrons_by_id_email_year_and_batch() {
    let c = demo().await;
    let me = c
        .patron_by_id(demo_data::SELF_PATRON_ID)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(me.email.as_deref(), Some(demo_data::SELF_PATRON_EMAIL));
    assert_eq!(me.year_registered, Some(2009), "a double read as an int");
    assert_eq!(
        c.patron_by_email(demo_data::SELF_PATRON_EMAIL)
            .await
            .unwrap(),
        Some(me.clone())
    );
    assert_eq!(c.patron_by_id("not-an-object-id").await.unwrap(), None);
    assert_eq!(
        c.patron_by_id("5c33c3e9e7bbb6886d531000").await.unwrap(),
        None
    );
    assert_eq!(c.patron_by_email("nobody@example.org").await.unwrap(), None);

    let expected_2009 = demo_data::patrons()
        .iter()
        .filter(|p| p.year_registered == Some(2009))
        .count();
    assert_eq!(
        c.patrons(Some(2009), None).await.unwrap().len(),
        expected_2009
    );
    assert_eq!(c.patrons(None, Some(7)).await.unwrap().len(), 7);
    assert_eq!(c.patrons(None, None).await.unwrap().len(), 100);

    let emails: Vec<String> = demo_data::patrons()[..50]
        .iter()
        .filter_map(|p| p.email.clone())
        .chain(["ghost@example.org".to_string()])
        .collect();
    let batch = c.patrons_by_emails(&emails).await.unwrap();
    assert_eq!(batch.len(), 50);
    assert!(batch
        .iter()
        .all(|(email, p)| p.email.as_ref() == Some(email)));
    c.drop_database().await.unwrap();
}

#[tokio::test]
async fn books_by_id_isbn_all_and_by_copy_upc() {
    let c = demo().await;
    let books = c.books().await.unwrap();
    assert_eq!(books, demo_data::books(), "documents round-trip exactly");
    let first = &books[0];
    assert_eq!(c.book_by_id(&first.id).await.unwrap().as_ref(), Some(first));
    assert_eq!(
        c.book_by_isbn(&first.isbn13).await.unwrap().as_ref(),
        Some(first)
    );
    assert_eq!(c.book_by_id("zzz").await.unwrap(), None);
    let upcs: Vec<String> = (0..35).map(demo_data::copy_upc).collect();
    let by_upc = c.books_by_upcs(&upcs).await.unwrap();
    assert_eq!(by_upc.len(), 35);
    for (upc, book) in &by_upc {
        assert!(book.copies.iter().any(|copy| &copy.library_upc == upc));
    }
    c.drop_database().await.unwrap();
}

#[tokio::test]
async fn indexes_are_ensured_idempotently() {
    let cfg = config();
    let a = MongoCatalog::connect(&cfg).await.unwrap();
    let b = MongoCatalog::connect(&cfg).await.unwrap();
    b.ping().await.unwrap();
    a.drop_database().await.unwrap();
}

#[tokio::test]
async fn close_ends_the_client_and_later_calls_fail_cleanly() {
    use shutdown::Closeable;
    let c = demo().await;
    c.ping().await.unwrap();
    c.drop_database().await.unwrap();
    c.close().await.unwrap();
    let err = c.books().await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Closed, "{err:?}");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// actix-web runs each worker on its own runtime, and the driver's pool is a task on
/// the runtime that built the client: the catalog keeps a client per runtime.
#[test]
fn each_runtime_has_its_own_client_and_close_reaches_them() {
    use shutdown::Closeable;
    let builder = runtime();
    let catalog = builder.block_on(demo());
    // The runtime that built the first client ends, as a worker's does at a stop.
    drop(builder);
    let worker = runtime();
    let books = worker
        .block_on(catalog.books())
        .expect("a second runtime is served by its own client");
    assert_eq!(books.len(), demo_data::books().len());
    worker.block_on(async {
        catalog.drop_database().await.expect("drop");
        // The ended runtime's part is cancelled, not waited for; the guard only
        // detects a hang.
        tokio::time::timeout(std::time::Duration::from_secs(60), catalog.close())
            .await
            .expect("close returned")
            .expect("clean close");
    });
    let err = worker.block_on(catalog.books()).unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Closed, "{err:?}");
    // A runtime that comes after the close gets no new client.
    let err = runtime().block_on(catalog.books()).unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Closed, "{err:?}");
}

#[tokio::test]
async fn close_does_not_hang_on_a_live_cursor() {
    use shutdown::Closeable;
    let c = demo().await;
    let mut cursor = c
        .database()
        .expect("database")
        .collection::<mongodb::bson::Document>("patrons")
        .find(mongodb::bson::doc! {})
        .batch_size(2)
        .await
        .expect("find");
    assert!(
        cursor.advance().await.expect("first batch"),
        "a live cursor"
    );
    c.drop_database().await.unwrap();
    // A graceful driver shutdown waits for every cursor to be dropped; this one is
    // held until after close returns. The guard only detects a hang.
    let closed = tokio::time::timeout(std::time::Duration::from_secs(60), c.close())
        .await
        .expect("close returned although a cursor was still alive");
    closed.expect("the fallback to an immediate shutdown is a clean close");
    drop(cursor);
}

#[tokio::test]
async fn a_server_that_is_down_is_a_typed_error() {
    let mut cfg = MongoConfig::new("mongodb://127.0.0.1:9", "x");
    cfg.server_selection_timeout = std::time::Duration::from_millis(300);
    match MongoCatalog::connect(&cfg).await {
        Err(data_mongo::Error::Command(_)) => {}
        Err(other) => panic!("wrong error {other:?}"),
        Ok(_) => panic!("connected to a closed port"),
    }
}

mod snapshots {
    use super::*;
    use domain::{Checkout, SnapshotStore};

    fn rows(n: i32) -> Vec<Checkout> {
        (1..=n)
            .map(|i| Checkout {
                id: i * 10,
                user_email: format!("p{i}@example.org"),
                asset_upc: "9000000001".into(),
                checkout_date: chrono::DateTime::from_timestamp(946_684_800 + i64::from(i), 0)
                    .unwrap(),
                checkin_date: (i % 2 == 0).then(|| {
                    chrono::DateTime::from_timestamp(946_771_200 + i64::from(i), 0).unwrap()
                }),
            })
            .collect()
    }

    /// Chunks of 7 entries: pages of 10 cross chunk boundaries.
    async fn chunked() -> MongoCatalog {
        let mut cfg = config();
        cfg.snapshot_chunk_rows = 7;
        MongoCatalog::connect(&cfg).await.unwrap()
    }

    async fn stored_chunks(c: &MongoCatalog) -> u64 {
        c.database()
            .unwrap()
            .collection::<bson::Document>("querycache_chunks")
            .count_documents(bson::doc! {})
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn pages_are_sliced_by_cursor_and_owned() {
        let c = chunked().await;
        let all = rows(25);
        c.save("q1", "sub:1", &all).await.unwrap();
        let first = c
            .page("q1", "sub:1", None, Some(10))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((first.start, first.total), (0, 25));
        assert_eq!(first.entries, all[..10], "entries round-trip exactly");
        let next = c
            .page("q1", "sub:1", Some(100), Some(10))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(next.start, 10);
        assert_eq!(next.entries, all[10..20]);
        let rest = c
            .page("q1", "sub:1", Some(200), None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rest.entries, all[20..]);
        let past = c
            .page("q1", "sub:1", Some(250), Some(10))
            .await
            .unwrap()
            .unwrap();
        assert!(past.entries.is_empty() && past.start == 25);
        let unknown = c
            .page("q1", "sub:1", Some(12345), Some(10))
            .await
            .unwrap()
            .unwrap();
        assert!(unknown.entries.is_empty() && unknown.start == 25);
        assert_eq!(stored_chunks(&c).await, 4, "25 entries in chunks of 7");
        assert_eq!(
            c.page("q1", "sub:2", None, Some(10)).await.unwrap(),
            None,
            "not the owner"
        );
        assert_eq!(c.page("nope", "sub:1", None, None).await.unwrap(), None);
        // Saving again replaces the snapshot, and its old chunks go.
        c.save("q1", "sub:1", &all[..3]).await.unwrap();
        let replaced = c.page("q1", "sub:1", None, None).await.unwrap().unwrap();
        assert_eq!(
            (replaced.total, replaced.entries.as_slice()),
            (3, &all[..3])
        );
        assert_eq!(stored_chunks(&c).await, 1);
        // Empty snapshots have a head and no chunk.
        c.save("q2", "sub:1", &[]).await.unwrap();
        let empty = c
            .page("q2", "sub:1", None, Some(10))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((empty.total, empty.entries.len()), (0, 0));
        c.drop_database().await.unwrap();
    }

    #[tokio::test]
    async fn concurrent_replacements_leave_one_whole_snapshot() {
        let c = chunked().await;
        let (a, b, d) = (rows(20), rows(30), rows(9));
        // Several rounds: which save wins a round is up to the scheduler.
        for _ in 0..5 {
            let (ra, rb, rd) = tokio::join!(
                c.save("q", "me", &a),
                c.save("q", "me", &b),
                c.save("q", "me", &d)
            );
            ra.unwrap();
            rb.unwrap();
            rd.unwrap();
            let page = c.page("q", "me", None, None).await.unwrap().unwrap();
            let expected = [&a, &b, &d]
                .into_iter()
                .find(|r| r.len() == page.total)
                .unwrap();
            assert_eq!(&page.entries, expected, "one generation, whole");
            assert_eq!(stored_chunks(&c).await, expected.len().div_ceil(7) as u64);
        }
        c.drop_database().await.unwrap();
    }

    #[tokio::test]
    async fn a_head_whose_chunks_are_gone_is_no_snapshot() {
        let c = chunked().await;
        c.save("q", "me", &rows(10)).await.unwrap();
        c.database()
            .unwrap()
            .collection::<bson::Document>("querycache_chunks")
            .delete_many(bson::doc! {"n": 1})
            .await
            .unwrap();
        let first = c.page("q", "me", None, Some(5)).await.unwrap();
        assert_eq!(first.map(|p| p.entries.len()), Some(5), "chunk 0 is whole");
        assert_eq!(c.page("q", "me", None, None).await.unwrap(), None);
        c.drop_database().await.unwrap();
    }

    /// A snapshot past MongoDB's 16 MiB document limit, had it been one document.
    #[tokio::test]
    async fn a_snapshot_larger_than_one_document_may_be_is_stored_and_paged() {
        let c = MongoCatalog::connect(&config()).await.unwrap();
        let all = rows(160_000);
        let one_document: usize = all
            .iter()
            .map(|r| r.user_email.len() + r.asset_upc.len() + 90)
            .sum();
        assert!(one_document > 16 * 1024 * 1024, "{one_document} bytes");
        c.save("big", "me", &all).await.unwrap();
        let last_id = all[149_999].id;
        let page = c
            .page("big", "me", Some(last_id), Some(1000))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((page.start, page.total), (150_000, 160_000));
        assert_eq!(page.entries, all[150_000..151_000]);
        c.drop_database().await.unwrap();
    }

    #[tokio::test]
    async fn expired_snapshots_are_gone_and_the_ttl_can_change() {
        let mut cfg = config();
        cfg.snapshot_ttl = std::time::Duration::ZERO;
        let c = MongoCatalog::connect(&cfg).await.unwrap();
        c.save("q", "me", &rows(3)).await.unwrap();
        assert_eq!(
            c.page("q", "me", None, None).await.unwrap(),
            None,
            "expired at once"
        );
        // A different TTL on the same database: the index is updated, not an error.
        cfg.snapshot_ttl = std::time::Duration::from_secs(3600);
        let again = MongoCatalog::connect(&cfg).await.unwrap();
        again.save("q", "me", &rows(3)).await.unwrap();
        assert_eq!(
            again
                .page("q", "me", None, None)
                .await
                .unwrap()
                .unwrap()
                .total,
            3
        );
        again.drop_database().await.unwrap();
    }
}

mod outage {
    use super::*;
    use std::process::{Child, Command, Stdio};
    use std::time::Duration;

    /// A MongoDB-wire server of this test's own, on `port`.
    fn server(port: u16) -> Child {
        let bin = std::path::Path::new(testkit::services().var("MONGO_SERVER_BIN")).to_path_buf();
        let dir = std::env::temp_dir().join(testkit::unique_name("mongo"));
        std::fs::create_dir_all(&dir).unwrap();
        Command::new(bin)
            .current_dir(dir)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--storage-path",
                ":memory:",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the MongoDB-wire server")
    }

    async fn until_up(catalog: &MongoCatalog) {
        for _ in 0..300 {
            if catalog.ping().await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("server never came up");
    }

    #[tokio::test]
    async fn a_stopped_server_gives_clear_errors_and_the_client_recovers() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut first = server(port);
        let mut cfg = MongoConfig::new(&format!("mongodb://127.0.0.1:{port}"), "recovery");
        cfg.server_selection_timeout = Duration::from_millis(500);
        let catalog = loop {
            // Connect once the server listens (bounded by the loop below).
            match MongoCatalog::connect(&cfg).await {
                Ok(c) => break c,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        until_up(&catalog).await;
        assert!(catalog.books().await.unwrap().is_empty());

        first.kill().unwrap();
        first.wait().unwrap();
        let err = catalog.books().await.unwrap_err();
        assert!(
            err.is_unavailable(),
            "a stopped server is 'unavailable': {err:?}"
        );

        let mut second = server(port);
        until_up(&catalog).await;
        super::seed(&catalog).await;
        assert_eq!(
            catalog.books().await.unwrap().len(),
            10,
            "the same client works again"
        );
        second.kill().unwrap();
        second.wait().unwrap();
    }
}

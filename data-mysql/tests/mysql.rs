//! Against the harness's real MariaDB and Oracle MySQL (every test on each), each test
//! in a fresh database dropped on exit.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use data_mysql::{MysqlCheckouts, MysqlConfig};
use domain::{Checkout, CheckoutError, CheckoutFilter, CheckoutStore, Outbox, Sort, SortField};
use shutdown::Closeable;
use testkit::SqlServer;

mod common;
use common::{server_url, TestDb};

fn all() -> CheckoutFilter {
    CheckoutFilter::default()
}

async fn migrations_are_idempotent_and_safe_when_instances_start_together(server: SqlServer) {
    let db = TestDb::new(server).await;
    let (a, b) = tokio::join!(
        MysqlCheckouts::connect(&db.config),
        MysqlCheckouts::connect(&db.config)
    );
    a.expect("first instance");
    b.expect("second instance");
    let again = db.store().await;
    assert!(again.list(&all(), None, None).await.unwrap().is_empty());
}

async fn list_filters_orders_and_pages_like_the_seed(server: SqlServer) {
    let db = TestDb::new(server).await;
    let store = db.demo_store().await;
    let everything = store.list(&all(), None, None).await.unwrap();
    assert_eq!(everything.len(), 421);
    let dates: Vec<_> = everything.iter().map(|c| c.checkout_date).collect();
    let mut sorted = dates.clone();
    sorted.sort();
    assert_eq!(dates, sorted, "ascending by checkout date");

    let page = store.list(&all(), None, Some(50)).await.unwrap();
    assert_eq!(page, everything[..50]);
    let cursor = page[49].checkout_date;
    let next = store.list(&all(), Some(cursor), Some(50)).await.unwrap();
    assert_eq!(
        next[0], everything[50],
        "cursor: strictly after the last date seen"
    );

    let email = everything[7].user_email.clone();
    let upc = everything[7].asset_upc.clone();
    let both = CheckoutFilter {
        user_email: Some(email.clone()),
        asset_upc: Some(upc.clone()),
    };
    let rows = store.list(&both, None, None).await.unwrap();
    assert!(!rows.is_empty());
    assert!(rows
        .iter()
        .all(|c| c.user_email == email && c.asset_upc == upc));
    let expected = everything
        .iter()
        .filter(|c| c.user_email == email && c.asset_upc == upc)
        .count();
    assert_eq!(rows.len(), expected, "filters are ANDed");
}

async fn every_string_filter_is_a_parameter(server: SqlServer) {
    let db = TestDb::new(server).await;
    let store = db.demo_store().await;
    let hostile = [
        "' OR '1'='1",
        "x'; DROP TABLE checkouts; --",
        "\\' OR 1=1 -- ",
        "9000000001' UNION SELECT 1,2,3,4,5 -- ",
        "\"; DELETE FROM checkouts; #",
    ];
    for h in hostile {
        let f = CheckoutFilter {
            user_email: Some(h.into()),
            asset_upc: None,
        };
        assert!(store.list(&f, None, None).await.unwrap().is_empty(), "{h}");
        let f = CheckoutFilter {
            user_email: None,
            asset_upc: Some(h.into()),
        };
        assert!(
            store.list_sorted(&f, &[], 1000).await.unwrap().is_empty(),
            "{h}"
        );
        assert!(store
            .by_assets(&[h.into()], false)
            .await
            .unwrap()
            .is_empty());
        assert!(store.by_emails(&[h.into()], true).await.unwrap().is_empty());
        assert!(matches!(
            store.check_in(h).await,
            Err(CheckoutError::NoOpenCheckout)
        ));
    }
    assert_eq!(store.list(&all(), None, None).await.unwrap().len(), 421);
}

async fn batches_group_per_key_in_one_query(server: SqlServer) {
    let db = TestDb::new(server).await;
    let store = db.demo_store().await;
    let everything = store.list(&all(), None, None).await.unwrap();
    let upcs: Vec<String> = (0..35).map(demo_data::copy_upc).collect();
    let by_asset = store.by_assets(&upcs, false).await.unwrap();
    assert_eq!(by_asset.len(), 35);
    assert_eq!(by_asset.values().map(Vec::len).sum::<usize>(), 421);
    for (upc, rows) in &by_asset {
        assert!(rows.iter().all(|c| &c.asset_upc == upc));
        assert!(rows
            .windows(2)
            .all(|w| w[0].checkout_date <= w[1].checkout_date));
    }
    let open = store.by_assets(&upcs, true).await.unwrap();
    assert_eq!(open.values().map(Vec::len).sum::<usize>(), 18);
    assert!(open.values().flatten().all(Checkout::is_open));

    let emails: Vec<String> = everything[..20]
        .iter()
        .map(|c| c.user_email.clone())
        .collect();
    let by_email = store.by_emails(&emails, false).await.unwrap();
    let distinct: HashSet<_> = emails.iter().collect();
    assert_eq!(by_email.len(), distinct.len());
    for (email, rows) in &by_email {
        let expected = everything.iter().filter(|c| &c.user_email == email).count();
        assert_eq!(rows.len(), expected);
    }
    assert!(store.by_emails(&[], false).await.unwrap().is_empty());
}

async fn feed_sorting_uses_every_key_then_id(server: SqlServer) {
    let db = TestDb::new(server).await;
    let store = db.demo_store().await;
    let sort = [
        Sort {
            field: SortField::AssetUpc,
            descending: true,
        },
        Sort {
            field: SortField::CheckoutDate,
            descending: false,
        },
    ];
    let rows = store.list_sorted(&all(), &sort, 1000).await.unwrap();
    assert_eq!(rows.len(), 421);
    assert!(rows.windows(2).all(|w| {
        w[0].asset_upc > w[1].asset_upc
            || (w[0].asset_upc == w[1].asset_upc && w[0].checkout_date <= w[1].checkout_date)
    }));
    let by_id = store.list_sorted(&all(), &[], 1000).await.unwrap();
    assert!(by_id.windows(2).all(|w| w[0].id < w[1].id));
    let first = store.list_sorted(&all(), &sort, 10).await.unwrap();
    assert_eq!(
        first,
        rows[..10],
        "the limit keeps the first rows of the order"
    );
}

async fn datetimes_round_trip_exactly_as_utc(server: SqlServer) {
    let db = TestDb::new(server).await;
    let store = db.store().await;
    let row = Checkout {
        id: 77,
        user_email: "a@b.org".into(),
        asset_upc: "9000000028".into(),
        checkout_date: Utc.with_ymd_and_hms(2000, 1, 31, 10, 27, 0).unwrap(),
        checkin_date: Some(Utc.with_ymd_and_hms(2000, 3, 26, 1, 30, 59).unwrap()),
    };
    store
        .insert_rows(std::iter::once(row.clone()))
        .await
        .unwrap();
    assert_eq!(store.by_id(77).await.unwrap(), Some(row));
    assert_eq!(store.by_id(78).await.unwrap(), None);
}

async fn fifty_concurrent_checkouts_of_one_asset_give_exactly_one_row(server: SqlServer) {
    let db = TestDb::new(server).await;
    let mut config = db.config.clone();
    config.pool_limit = 50;
    let store = Arc::new(MysqlCheckouts::connect(&config).await.unwrap());
    let attempts = (0..50).map(|i| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            store
                .check_out("9000000028", &format!("p{i}@example.org"))
                .await
        })
    });
    let results = futures::future::join_all(attempts).await;
    let mut won = 0;
    for r in results {
        match r.unwrap() {
            Ok(_) => won += 1,
            Err(CheckoutError::AlreadyCheckedOut) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won, 1);
    let f = CheckoutFilter {
        user_email: None,
        asset_upc: Some("9000000028".into()),
    };
    assert_eq!(store.list(&f, None, None).await.unwrap().len(), 1);
    assert_eq!(
        Outbox::unsent(&*store, 100).await.unwrap().len(),
        1,
        "one event"
    );
}

async fn checkout_and_checkin_write_row_and_event_together(server: SqlServer) {
    let db = TestDb::new(server).await;
    let store = db.store().await;
    assert!(matches!(
        store.check_in("9000000005").await,
        Err(CheckoutError::NoOpenCheckout)
    ));
    let out = store.check_out("9000000005", "a@b.org").await.unwrap();
    assert!(out.is_open());
    let back = store.check_in("9000000005").await.unwrap();
    assert_eq!(back.id, out.id);
    assert!(back.checkin_date.is_some());
    assert_eq!(store.by_id(out.id).await.unwrap(), Some(back.clone()));
    let again = store.check_out("9000000005", "c@d.org").await.unwrap();
    assert_ne!(again.id, out.id, "a returned copy can go out again");
    assert_eq!(store.check_in("9000000005").await.unwrap().id, again.id);
    let third = store.check_out("9000000005", "e@f.org").await.unwrap();

    let events = Outbox::unsent(&store, 10).await.unwrap();
    let topics: Vec<_> = events.iter().map(|e| e.topic.as_str()).collect();
    assert_eq!(
        topics,
        ["checkout", "checkin", "checkout", "checkin", "checkout"]
    );
    assert_eq!(store.by_id(third.id).await.unwrap(), Some(third));
    assert!(events.iter().all(|e| e.key == "9000000005"));
    let checkin: domain::CheckoutEvent = serde_json::from_str(&events[1].payload).unwrap();
    assert_eq!(checkin.to_checkout(), Some(back));
    let ids: HashSet<_> = events.iter().map(|e| e.event_id.clone()).collect();
    assert_eq!(ids.len(), 5, "event ids are unique");

    Outbox::mark_sent(&store, &[events[0].seq]).await.unwrap();
    let left = Outbox::unsent(&store, 10).await.unwrap();
    assert_eq!(left, events[1..]);
}

/// Retention: only events both sent and sent before the cutoff go, oldest first and
/// at most `limit` a statement; unsent ones stay whatever their age.
async fn purge_deletes_only_sent_events_older_than_the_cutoff(server: SqlServer) {
    use mysql_async::prelude::Queryable;
    let db = TestDb::new(server).await;
    let store = db.store().await;
    for i in 0..6 {
        store
            .check_out(&format!("90000001{i:02}"), "a@b.org")
            .await
            .unwrap();
    }
    let events = Outbox::unsent(&store, 10).await.unwrap();
    assert_eq!(events.len(), 6);
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    // 0..4 sent; 0..3 of them long ago; 4 just now; 5 unsent and written long ago.
    Outbox::mark_sent(&store, &seqs[..5]).await.unwrap();
    let mut admin =
        mysql_async::Conn::from_url(format!("{}/{}", server_url(server), db.config.database))
            .await
            .unwrap();
    admin
        .exec_drop(
            "UPDATE checkout_outbox SET sent_at = sent_at - INTERVAL 8 DAY WHERE id <= ?",
            (seqs[3],),
        )
        .await
        .unwrap();
    admin
        .exec_drop(
            "UPDATE checkout_outbox SET created_at = created_at - INTERVAL 9 DAY WHERE id = ?",
            (seqs[5],),
        )
        .await
        .unwrap();
    let backlog = Outbox::backlog(&store).await.unwrap();
    assert_eq!(backlog.events, 1);
    let waited = chrono::Utc::now() - backlog.oldest.expect("one waits");
    assert!(waited > chrono::Duration::days(8), "{waited}");

    let cutoff = chrono::Utc::now() - chrono::Duration::days(7);
    assert_eq!(Outbox::purge_sent(&store, cutoff, 3).await.unwrap(), 3);
    assert_eq!(Outbox::purge_sent(&store, cutoff, 3).await.unwrap(), 1);
    assert_eq!(Outbox::purge_sent(&store, cutoff, 3).await.unwrap(), 0);
    let left: Vec<i64> = admin
        .query("SELECT id FROM checkout_outbox ORDER BY id")
        .await
        .unwrap();
    assert_eq!(
        left,
        seqs[4..],
        "the recent sent one and the unsent one stay"
    );
    assert_eq!(Outbox::unsent(&store, 10).await.unwrap(), events[5..]);
    admin.disconnect().await.unwrap();
}

/// 10 clients, each cycling its own copy out and in: 2,000 mutations, none may fail
/// (the issue saw 5 deadlocks in 2,000 when check-ins locked the guard index).
async fn mutations_on_different_copies_never_fail(server: SqlServer) {
    let db = TestDb::new(server).await;
    let mut config = db.config.clone();
    config.pool_limit = 10;
    let store = Arc::new(MysqlCheckouts::connect(&config).await.unwrap());
    let clients = (0..10).map(|i| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let upc = demo_data::copy_upc(i);
            let mut failures = Vec::new();
            for n in 0..100 {
                if let Err(e) = store.check_out(&upc, &format!("p{n}@example.org")).await {
                    failures.push(format!("checkout {upc}: {e:?}"));
                }
                if let Err(e) = store.check_in(&upc).await {
                    failures.push(format!("checkin {upc}: {e:?}"));
                }
            }
            failures
        })
    });
    let failures: Vec<String> = futures::future::join_all(clients)
        .await
        .into_iter()
        .flat_map(|r| r.unwrap())
        .collect();
    assert_eq!(failures, Vec::<String>::new());
    assert_eq!(Outbox::unsent(&*store, 5000).await.unwrap().len(), 2000);
    let upcs: Vec<String> = (0..10).map(demo_data::copy_upc).collect();
    assert!(store.by_assets(&upcs, true).await.unwrap().is_empty());
}

/// Two check-ins of one copy at once: one closes it, the other finds nothing open.
async fn concurrent_checkins_of_one_copy_close_it_once(server: SqlServer) {
    let db = TestDb::new(server).await;
    let store = Arc::new(db.store().await);
    for round in 0..20 {
        store
            .check_out("9000000011", &format!("r{round}@example.org"))
            .await
            .unwrap();
        let attempts = (0..4).map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.check_in("9000000011").await })
        });
        let results = futures::future::join_all(attempts).await;
        let closed = results
            .into_iter()
            .map(|r| r.unwrap())
            .filter(|r| match r {
                Ok(_) => true,
                Err(CheckoutError::NoOpenCheckout) => false,
                Err(other) => panic!("unexpected {other:?}"),
            })
            .count();
        assert_eq!(closed, 1, "round {round}");
    }
    assert_eq!(Outbox::unsent(&*store, 100).await.unwrap().len(), 40);
}

async fn aborted_clients(server: SqlServer) -> u64 {
    use mysql_async::prelude::Queryable;
    let url = server_url(server);
    let mut conn = mysql_async::Conn::from_url(url).await.unwrap();
    let row: Option<(String, u64)> = conn
        .query_first("SHOW GLOBAL STATUS LIKE 'Aborted_clients'")
        .await
        .unwrap();
    conn.disconnect().await.unwrap();
    row.map(|(_, v)| v).unwrap()
}

async fn close_quits_every_connection_and_refuses_new_work(server: SqlServer) {
    let db = TestDb::new(server).await;
    let store = Arc::new(db.store().await);
    // Open several connections at once so the pool holds more than one.
    let busy = (0..5).map(|_| {
        let s = Arc::clone(&store);
        tokio::spawn(async move { s.list(&all(), None, None).await.map(|_| ()) })
    });
    for r in futures::future::join_all(busy).await {
        r.unwrap().unwrap();
    }
    let before = aborted_clients(server).await;
    store.close().await.expect("clean close");
    let after = aborted_clients(server).await;
    assert_eq!(before, after, "no connection was aborted");
    let err = store.list(&all(), None, None).await.unwrap_err();
    assert_eq!(err.kind(), domain::StoreErrorKind::Closed);
}

async fn pool_recovers_after_its_connections_are_killed(server: SqlServer) {
    use mysql_async::prelude::Queryable;
    let db = TestDb::new(server).await;
    let store = db.demo_store().await;
    assert_eq!(store.list(&all(), None, Some(1)).await.unwrap().len(), 1);
    let url = server_url(server);
    let mut admin = mysql_async::Conn::from_url(url).await.unwrap();
    let kill_pool = async |admin: &mut mysql_async::Conn| {
        let ids: Vec<u64> = admin
            .exec(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()",
                (db.config.database.clone(),),
            )
            .await
            .unwrap();
        assert!(!ids.is_empty(), "the pool holds a connection");
        for id in ids {
            admin.query_drop(format!("KILL {id}")).await.unwrap();
        }
    };
    kill_pool(&mut admin).await;
    // Used a moment ago, the connection is lent unchecked: the first call may fail
    // on it, and the pool drops it, so the next call works.
    let first = store.list(&all(), None, Some(1)).await;
    if let Err(e) = &first {
        assert!(
            e.is_unavailable(),
            "a killed connection is 'unavailable': {e:?}"
        );
    }
    assert_eq!(store.list(&all(), None, Some(1)).await.unwrap().len(), 1);

    // After a quiet spell (the scenario, not a synchronisation) a connection is
    // checked before it is lent: no query fails on a dead one.
    kill_pool(&mut admin).await;
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert_eq!(store.list(&all(), None, Some(1)).await.unwrap().len(), 1);
    admin.disconnect().await.unwrap();
}

#[tokio::test]
async fn a_server_that_is_down_is_a_typed_error() {
    let mut config = MysqlConfig::new("127.0.0.1", "graphql", "graphqlpw", "central-library");
    // Port 9 (discard) is closed on the test hosts: connection refused.
    config.port = 9;
    let err = match MysqlCheckouts::connect(&config).await {
        Err(e) => e,
        Ok(_) => panic!("connected to a closed port"),
    };
    assert!(
        matches!(err, data_mysql::Error::Unreachable { .. }),
        "{err:?}"
    );
    let line = err.to_string();
    assert!(
        line.contains("127.0.0.1:9") && line.contains("MYSQL_PORT"),
        "{line}"
    );
    assert!(
        !format!("{err:?}").contains("graphqlpw"),
        "no password in errors"
    );
}

async fn close_lets_the_query_in_flight_finish(server: SqlServer) {
    use mysql_async::prelude::Queryable;
    let db = TestDb::new(server).await;
    let store = Arc::new(db.demo_store().await);
    let mut admin =
        mysql_async::Conn::from_url(format!("{}/{}", server_url(server), db.config.database))
            .await
            .unwrap();
    admin
        .query_drop("LOCK TABLES checkouts WRITE")
        .await
        .unwrap();
    let in_flight = {
        let s = Arc::clone(&store);
        tokio::spawn(async move { s.list(&all(), None, Some(5)).await })
    };
    // Wait (by polling the server, not by sleeping a guess) until the query is
    // blocked on the table lock, i.e. truly in flight.
    loop {
        let waiting: Option<u64> = admin
            .exec_first(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
                 WHERE DB = ? AND ID <> CONNECTION_ID() AND STATE LIKE '%metadata lock%'",
                (db.config.database.clone(),),
            )
            .await
            .unwrap();
        if waiting == Some(1) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let closing = {
        let s = Arc::clone(&store);
        tokio::spawn(async move { s.close().await })
    };
    // Close has begun once new work is refused (a ping needs no table lock); only
    // then is the lock released.
    while store.ping().await.is_ok() {
        tokio::task::yield_now().await;
    }
    admin.query_drop("UNLOCK TABLES").await.unwrap();
    admin.disconnect().await.unwrap();
    let rows = in_flight
        .await
        .unwrap()
        .expect("the query in flight completes");
    assert_eq!(rows.len(), 5);
    closing
        .await
        .unwrap()
        .expect("a clean close after the drain");
}

/// A freezable proxy to the test database, and settings that go through it (with a
/// 1 s drain timeout).
async fn through_proxy(db: &TestDb) -> (testkit::FreezableProxy, MysqlConfig) {
    let target: std::net::SocketAddr = format!("{}:{}", db.config.host, db.config.port)
        .parse()
        .expect("the harness's MySQL host is an IP address");
    let proxy = testkit::FreezableProxy::start(target).await;
    let mut config = db.config.clone();
    config.host = proxy.addr().ip().to_string();
    config.port = proxy.addr().port();
    config.drain_timeout = std::time::Duration::from_secs(1);
    config.prefer_socket = false; // through the proxy, not around it
    (proxy, config)
}

async fn close_is_bounded_when_the_server_hangs(server: SqlServer) {
    let db = TestDb::new(server).await;
    let (proxy, config) = through_proxy(&db).await;
    let store = Arc::new(MysqlCheckouts::connect(&config).await.expect("connect"));
    store
        .list(&all(), None, Some(1))
        .await
        .expect("a pooled connection");

    proxy.freeze();
    let stuck = {
        let s = Arc::clone(&store);
        tokio::spawn(async move { s.list(&all(), None, Some(1)).await })
    };
    // In flight once it took the pool's idle connection (polled, not slept on).
    while store.pool_state().1 > 0 {
        tokio::task::yield_now().await;
    }
    // The guard only detects a hang; the bound under test is the 1 s drain timeout.
    let closed = tokio::time::timeout(std::time::Duration::from_secs(60), store.close())
        .await
        .expect("close returned although the server hangs");
    let err = closed.expect_err("a close that abandoned a query says so");
    let err = err
        .downcast_ref::<domain::StoreError>()
        .expect("a typed store error");
    assert_eq!(err.kind(), domain::StoreErrorKind::Unavailable);

    drop(proxy); // the server "comes back" as closed sockets
    let stuck = stuck.await.expect("no panic");
    assert!(
        stuck.is_err(),
        "the hung query ends with an error, not a hang"
    );
}

async fn close_with_idle_connections_to_a_hung_server_is_bounded(server: SqlServer) {
    let db = TestDb::new(server).await;
    let (proxy, config) = through_proxy(&db).await;
    let store = MysqlCheckouts::connect(&config).await.expect("connect");
    store
        .list(&all(), None, Some(1))
        .await
        .expect("a pooled connection");
    proxy.freeze();
    // Quitting needs the server; the bound holds when it never answers.
    let closed = tokio::time::timeout(std::time::Duration::from_secs(60), store.close()).await;
    assert!(closed.is_ok(), "close returned although the server hangs");
}

testkit::on_each_sql_server!(
    migrations_are_idempotent_and_safe_when_instances_start_together,
    list_filters_orders_and_pages_like_the_seed,
    every_string_filter_is_a_parameter,
    batches_group_per_key_in_one_query,
    feed_sorting_uses_every_key_then_id,
    datetimes_round_trip_exactly_as_utc,
    fifty_concurrent_checkouts_of_one_asset_give_exactly_one_row,
    checkout_and_checkin_write_row_and_event_together,
    close_quits_every_connection_and_refuses_new_work,
    close_is_bounded_when_the_server_hangs,
    close_with_idle_connections_to_a_hung_server_is_bounded,
    pool_recovers_after_its_connections_are_killed,
    close_lets_the_query_in_flight_finish,
    mutations_on_different_copies_never_fail,
    concurrent_checkins_of_one_copy_close_it_once,
    purge_deletes_only_sent_events_older_than_the_cutoff,
);

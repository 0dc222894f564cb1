//! The store against a real Redis (`ALIPAY_MSG_REDIS_URL`, started by `.ci/run`):
//! claim / handled / held, record, release of our own claim only, TTLs, lease expiry,
//! blocking and async (tokio, smol). Skipped with a message when the variable is unset,
//! failed when `CI` is set and it is unset.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alipay_msg_core::window::{
    AsyncWindowStore, QueryId, WindowAnswer, WindowKey, WindowKind, WindowOp, WindowQuery,
};
use alipay_msg_redis::{redis_url_from_env, AsyncRedisWindow, RedisWindow, RedisWindowConfig};

/// A prefix of its own per test run, so that runs never see each other's keys.
fn prefix(test: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "test-{test}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn query(n: u64, kind: WindowKind, id: &str, op: WindowOp) -> WindowQuery {
    WindowQuery {
        id: QueryId::new(n),
        key: WindowKey {
            app_id: "2021000000000001".into(),
            kind,
            id: id.into(),
        },
        op,
    }
}

fn claim(id: &str, token: &str, lease: Duration) -> WindowQuery {
    query(
        1,
        WindowKind::Msg,
        id,
        WindowOp::Claim {
            token: token.into(),
            lease,
        },
    )
}

fn record(id: &str) -> WindowQuery {
    query(
        2,
        WindowKind::Msg,
        id,
        WindowOp::Record {
            window: Duration::from_secs(60),
        },
    )
}

fn release(id: &str, token: &str) -> WindowQuery {
    query(
        3,
        WindowKind::Msg,
        id,
        WindowOp::Release {
            token: token.into(),
        },
    )
}

/// PTTL of a rendered key, in ms (-2: no key).
fn pttl(url: &str, key: &str) -> i64 {
    let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
    redis::cmd("PTTL").arg(key).query(&mut con).unwrap()
}

#[test]
fn blocking_claim_record_release() {
    let Some(url) = redis_url_from_env("blocking_claim_record_release").unwrap() else {
        return;
    };
    let prefix = prefix("blocking");
    let w = RedisWindow::new(RedisWindowConfig::new(&url).with_prefix(&prefix)).unwrap();
    w.ping().unwrap();
    let lease = Duration::from_secs(30);
    // Nobody holds m1: ours, with the lease as TTL.
    assert_eq!(
        w.answer(&claim("m1", "a-1", lease)).unwrap(),
        WindowAnswer::Claimed
    );
    let key = claim("m1", "", lease).key.render(&prefix);
    let ttl = pttl(&url, &key);
    assert!((1..=30_000).contains(&ttl), "{ttl}");
    // Another instance's claim on it: held.
    assert_eq!(
        w.answer(&claim("m1", "b-1", lease)).unwrap(),
        WindowAnswer::Held
    );
    // Their release does not touch our claim.
    assert_eq!(
        w.answer(&release("m1", "b-1")).unwrap(),
        WindowAnswer::Released
    );
    assert_eq!(
        w.answer(&claim("m1", "b-2", lease)).unwrap(),
        WindowAnswer::Held
    );
    // Recorded: handled for the window, whoever asks.
    assert_eq!(w.answer(&record("m1")).unwrap(), WindowAnswer::Recorded);
    let ttl = pttl(&url, &key);
    assert!((30_001..=60_000).contains(&ttl), "{ttl}");
    assert_eq!(
        w.answer(&claim("m1", "b-3", lease)).unwrap(),
        WindowAnswer::Handled
    );
    // A release after the record leaves it handled.
    assert_eq!(
        w.answer(&release("m1", "a-1")).unwrap(),
        WindowAnswer::Released
    );
    assert_eq!(
        w.answer(&claim("m1", "b-4", lease)).unwrap(),
        WindowAnswer::Handled
    );

    // Our own release frees the id for the next claim.
    assert_eq!(
        w.answer(&claim("m2", "a-2", lease)).unwrap(),
        WindowAnswer::Claimed
    );
    assert_eq!(
        w.answer(&release("m2", "a-2")).unwrap(),
        WindowAnswer::Released
    );
    assert_eq!(pttl(&url, &claim("m2", "", lease).key.render(&prefix)), -2);
    assert_eq!(
        w.answer(&claim("m2", "b-5", lease)).unwrap(),
        WindowAnswer::Claimed
    );

    // msg and notify ids live apart.
    let notify = query(
        4,
        WindowKind::Notify,
        "m1",
        WindowOp::Claim {
            token: "c-1".into(),
            lease,
        },
    );
    assert_eq!(w.answer(&notify).unwrap(), WindowAnswer::Claimed);
}

#[test]
fn blocking_lease_expires() {
    let Some(url) = redis_url_from_env("blocking_lease_expires").unwrap() else {
        return;
    };
    let w = RedisWindow::new(RedisWindowConfig::new(&url).with_prefix(prefix("lease"))).unwrap();
    let short = Duration::from_millis(150);
    assert_eq!(
        w.answer(&claim("m1", "a-1", short)).unwrap(),
        WindowAnswer::Claimed
    );
    assert_eq!(
        w.answer(&claim("m1", "b-1", short)).unwrap(),
        WindowAnswer::Held
    );
    // Redis expires the key by its own clock; wait until it has.
    let mut answer = WindowAnswer::Held;
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(20));
        answer = w.answer(&claim("m1", "b-2", short)).unwrap();
        if answer == WindowAnswer::Claimed {
            break;
        }
    }
    assert_eq!(
        answer,
        WindowAnswer::Claimed,
        "a crashed claim ends with its lease"
    );
}

#[test]
fn tokio_and_smol_answer_the_same() {
    let Some(url) = redis_url_from_env("tokio_and_smol_answer_the_same").unwrap() else {
        return;
    };
    let prefix = prefix("async");
    let lease = Duration::from_secs(30);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let w = AsyncRedisWindow::new(RedisWindowConfig::new(&url).with_prefix(&prefix)).unwrap();
        w.ping().await.unwrap();
        let store: &dyn AsyncWindowStore = &w;
        assert_eq!(
            store.answer(&claim("t1", "a-1", lease)).await,
            Ok(WindowAnswer::Claimed)
        );
        assert_eq!(
            store.answer(&claim("t1", "b-1", lease)).await,
            Ok(WindowAnswer::Held)
        );
        assert_eq!(
            store.answer(&record("t1")).await,
            Ok(WindowAnswer::Recorded)
        );
    });
    smol::block_on(async {
        let w = AsyncRedisWindow::new(RedisWindowConfig::new(&url).with_prefix(&prefix)).unwrap();
        // What the tokio window recorded, seen from smol.
        assert_eq!(
            w.answer(&claim("t1", "c-1", lease)).await,
            Ok(WindowAnswer::Handled)
        );
        assert_eq!(
            w.answer(&claim("t2", "c-2", lease)).await,
            Ok(WindowAnswer::Claimed)
        );
        assert_eq!(
            w.answer(&release("t2", "c-2")).await,
            Ok(WindowAnswer::Released)
        );
        assert_eq!(
            w.answer(&claim("t2", "c-3", lease)).await,
            Ok(WindowAnswer::Claimed)
        );
    });
}

#[test]
fn async_unreachable_is_an_error_within_the_timeout() {
    smol::block_on(async {
        let w = AsyncRedisWindow::new(
            RedisWindowConfig::new("redis://127.0.0.1:1/").with_timeout(Duration::from_millis(200)),
        )
        .unwrap();
        let error = w
            .answer(&claim("x", "a", Duration::from_secs(1)))
            .await
            .unwrap_err();
        assert!(error.0.starts_with("Redis: "), "{error}");
    });
}

//! `rf-operator exporter` (the metrics sidecar) against real rf-server processes on
//! loopback: a master with one replica, both scraped over HTTP like Prometheus would.

mod common_operator;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common_operator::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The exporter process; killed on drop.
struct Exporter {
    child: Child,
    port: u16,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_exporter(redis_port: u16, password: Option<&str>) -> Exporter {
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rf-operator"));
    cmd.args(["exporter", "--redis-addr", &format!("127.0.0.1:{redis_port}"), "--listen", &format!("127.0.0.1:{port}"), "--timeout-ms", "500"])
        .env_remove("REDIS_PASSWORD")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(pw) = password {
        cmd.env("REDIS_PASSWORD", pw);
    }
    Exporter { child: cmd.spawn().expect("start rf-operator exporter"), port }
}

/// `GET path` over HTTP/1.1; the body if the status is 200.
async fn http_get(port: u16, path: &str) -> Option<String> {
    let io = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let (head, body) = text.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.1 200").then(|| body.to_string())
    };
    tokio::time::timeout(Duration::from_secs(5), io).await.ok().flatten()
}

/// The value of the sample line starting with `prefix` (name plus labels).
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines().find(|l| l.starts_with(prefix)).and_then(|l| l[prefix.len()..].trim().parse().ok())
}

async fn scrape_when(port: u16, what: &str, ok: impl Fn(&str) -> bool) -> String {
    wait_for(what, Duration::from_secs(15), || async {
        let body = http_get(port, "/metrics").await?;
        ok(&body).then_some(body)
    })
    .await
}

fn start_server(dir: &std::path::Path, name: &str, extra: &str) -> Proc {
    let data = dir.join(name);
    std::fs::create_dir_all(&data).unwrap();
    start_own(&server_bin(), dir, name, |port| {
        format!("port {port}\nbind 127.0.0.1\ndir {}\nsave \"\"\nrequirepass {PASSWORD}\nmasterauth {PASSWORD}\n{extra}", data.display())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporter_serves_info_as_redis_exporter_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let mut master = start_server(dir.path(), "master", "");
    let mp = master.port;
    let replica = start_server(dir.path(), "replica", &format!("replicaof 127.0.0.1 {mp}\n"));
    let rp = replica.port;
    wait_for("replica online", Duration::from_secs(15), || async {
        let info: String = query(mp, Some(PASSWORD), &["INFO", "replication"]).await?;
        info.contains("state=online").then_some(())
    })
    .await;
    // Known data: 2 keys in db0 (one expiring), 1 in db2; one hit and one miss.
    let _: String = query(mp, Some(PASSWORD), &["SET", "a", "1"]).await.unwrap();
    let _: String = query(mp, Some(PASSWORD), &["SET", "b", "2", "EX", "1000"]).await.unwrap();
    let mut c = conn(mp, Some(PASSWORD)).await.unwrap();
    let _: () = redis::pipe().cmd("SELECT").arg(2).ignore().cmd("SET").arg("c").arg("3").ignore().query_async(&mut c).await.unwrap();
    let _: Option<String> = query(mp, Some(PASSWORD), &["GET", "a"]).await.unwrap();
    let _: Option<String> = query(mp, Some(PASSWORD), &["GET", "missing"]).await.unwrap();

    let on_master = start_exporter(mp, Some(PASSWORD));
    let on_replica = start_exporter(rp, Some(PASSWORD));
    let m = scrape_when(on_master.port, "master metrics", |b| sample(b, "redis_up ") == Some(1.0)).await;
    assert_eq!(sample(&m, "redis_db_keys{db=\"db0\"} "), Some(2.0), "{m}");
    assert_eq!(sample(&m, "redis_db_keys_expiring{db=\"db0\"} "), Some(1.0));
    assert_eq!(sample(&m, "redis_db_keys{db=\"db2\"} "), Some(1.0));
    assert_eq!(sample(&m, "redis_keyspace_hits_total "), Some(1.0));
    assert_eq!(sample(&m, "redis_keyspace_misses_total "), Some(1.0));
    assert_eq!(sample(&m, "redis_connected_slaves "), Some(1.0));
    assert_eq!(sample(&m, "rf_exporter_is_master "), Some(1.0));
    assert!(m.contains("redis_instance_info{role=\"master\""), "{m}");
    assert!(sample(&m, "redis_commands_processed_total ").unwrap() >= 5.0);
    assert!(sample(&m, "redis_commands_total{cmd=\"set\"} ").unwrap() >= 2.0, "{m}");
    assert!(sample(&m, "redis_memory_used_bytes ").unwrap() > 0.0);
    assert!(sample(&m, "redis_connected_clients ").unwrap() >= 1.0);
    assert!(sample(&m, "redis_master_repl_offset ").unwrap() > 0.0);
    let replica_line = format!("redis_connected_slave_offset_bytes{{slave_ip=\"127.0.0.1\",slave_port=\"{rp}\",slave_state=\"online\"}} ");
    assert!(sample(&m, &replica_line).is_some(), "{m}");

    let r = scrape_when(on_replica.port, "replica caught up", |b| {
        sample(b, &format!("redis_master_link_up{{master_host=\"127.0.0.1\",master_port=\"{mp}\"}} ")) == Some(1.0)
            && sample(b, "redis_db_keys{db=\"db0\"} ") == Some(2.0)
    })
    .await;
    assert!(r.contains("redis_instance_info{role=\"slave\""), "{r}");
    assert_eq!(sample(&r, "rf_exporter_is_master "), Some(0.0));
    assert!(sample(&r, &format!("redis_slave_repl_offset{{master_host=\"127.0.0.1\",master_port=\"{mp}\"}} ")).unwrap() > 0.0, "{r}");

    // Health endpoint, and scrapes are counted.
    assert_eq!(http_get(on_master.port, "/healthz").await.as_deref(), Some("ok"));
    let again = http_get(on_master.port, "/metrics").await.unwrap();
    assert!(sample(&again, "redis_exporter_scrapes_total ").unwrap() >= 2.0);

    // A promotion is seen as a role change by the replica's exporter.
    let _: String = query(rp, Some(PASSWORD), &["REPLICAOF", "NO", "ONE"]).await.unwrap();
    let r = scrape_when(on_replica.port, "promotion seen", |b| sample(b, "rf_exporter_is_master ") == Some(1.0)).await;
    assert_eq!(sample(&r, "rf_exporter_role_changes_total "), Some(1.0), "{r}");
    assert!(sample(&r, "rf_exporter_last_role_change_timestamp_seconds ").unwrap() > 1.7e9);

    // Server gone: redis_up 0, the error is reported, the exporter keeps serving.
    master.kill();
    let down = scrape_when(on_master.port, "redis_up 0", |b| sample(b, "redis_up ") == Some(0.0)).await;
    assert!(down.lines().any(|l| l.starts_with("redis_exporter_last_scrape_error{err=\"") && l.ends_with(" 1")), "{down}");
    assert!(!down.contains("redis_connected_clients"), "{down}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporter_with_a_wrong_password_reports_down() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path(), "s", "");
    let port = server.port;
    wait_for("server up", Duration::from_secs(10), || async { query::<String>(port, Some(PASSWORD), &["PING"]).await }).await;
    let exporter = start_exporter(port, Some("not-the-password"));
    let body = scrape_when(exporter.port, "a scrape", |b| b.contains("redis_up ")).await;
    assert_eq!(sample(&body, "redis_up "), Some(0.0), "{body}");
    assert!(body.lines().any(|l| l.starts_with("redis_exporter_last_scrape_error{err=\"") && l.ends_with(" 1")), "{body}");
}

#[test]
fn exporter_rejects_a_bad_address_with_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_rf-operator"))
        .args(["exporter", "--redis-addr", "no-port-here", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid --redis-addr \"no-port-here\": expected host:port"), "{err}");
}

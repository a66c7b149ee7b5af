//! Loopback test bed for master tracking: real server and sentinel processes on
//! 127.0.0.1, the in-memory Kubernetes API holding their pods. The binaries are a single
//! switch: `RF_TEST_SERVER_BIN` / `RF_TEST_SENTINEL_BIN` (default: ours, rf-server /
//! rf-sentinel; set them to /usr/bin/redis-server and /usr/bin/redis-sentinel to compare
//! with Debian's), both started as `<bin> <config-file>`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube_fake_client::ClientBuilder;
use redis_failover::operator::crd::{RedisFailoverCluster, RedisFailoverClusterSpec};
use redis_failover::operator::metrics::Metrics;
use redis_failover::operator::tracking::{ClusterKey, ClusterParams, Endpoint, StaticResolver, Tracker, TrackerConfig};
use serde_json::json;

pub const NS: &str = "test";
pub const NAME: &str = "rf";
pub const PASSWORD: &str = "s3cret-pw";

pub fn server_bin() -> String {
    std::env::var("RF_TEST_SERVER_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_rf-server").into())
}
pub fn sentinel_bin() -> String {
    std::env::var("RF_TEST_SENTINEL_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_rf-sentinel").into())
}

/// Kills its process on drop.
pub struct Proc {
    pub child: Option<Child>,
    pub port: u16,
    pub conf: PathBuf,
    pub bin: String,
}

impl Proc {
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
    pub fn restart(&mut self) {
        self.kill();
        self.child = Some(spawn(&self.bin, &self.conf));
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn spawn(bin: &str, conf: &Path) -> Child {
    // Output goes to <conf>.log (kept in the temp dir; set RF_TEST_KEEP_DIR=1 to keep it).
    let log = std::fs::OpenOptions::new().create(true).append(true).open(conf.with_extension("log")).unwrap();
    Command::new(bin)
        .arg(conf)
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"))
}

include!("../ports/free_port.rs");
include!("../ports/own_process.rs");

/// Starts `bin` with the config `conf(port)` written to `<dir>/<name>.conf`, on a free port,
/// and returns once the process answering there is our child: a probed port can be bound by
/// another process first, and then another port is tried.
pub fn start_own(bin: &str, dir: &Path, name: &str, conf: impl Fn(u16) -> String) -> Proc {
    let path = dir.join(format!("{name}.conf"));
    let spawn_at = |port: u16| {
        std::fs::write(&path, conf(port)).unwrap();
        Ok(spawn(bin, &path))
    };
    let failed = |port: u16, why: NotStarted| eprintln!("{bin} ({name}) did not start as itself on port {port} ({why:?}); trying another port");
    match start_own_child(5, Duration::from_secs(20), spawn_at, failed) {
        Ok((child, port)) => Proc { child: Some(child), port, conf: path, bin: bin.to_string() },
        Err(e) => panic!("{bin} ({name}): {e}"),
    }
}

pub async fn conn(port: u16, password: Option<&str>) -> Option<redis::aio::MultiplexedConnection> {
    let url = match password {
        Some(pw) => format!("redis://:{pw}@127.0.0.1:{port}/"),
        None => format!("redis://127.0.0.1:{port}/"),
    };
    let client = redis::Client::open(url).ok()?;
    let cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(500)))
        .set_response_timeout(Some(Duration::from_millis(1000)));
    tokio::time::timeout(Duration::from_secs(2), client.get_multiplexed_async_connection_with_config(&cfg)).await.ok()?.ok()
}

pub async fn query<T: redis::FromRedisValue>(port: u16, password: Option<&str>, cmd: &[&str]) -> Option<T> {
    let mut c = conn(port, password).await?;
    let mut command = redis::cmd(cmd[0]);
    for a in &cmd[1..] {
        command.arg(*a);
    }
    tokio::time::timeout(Duration::from_secs(2), command.query_async::<T>(&mut c)).await.ok()?.ok()
}

/// Polls `f` every 50 ms until it returns Some, or panics after `limit`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if start.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One reconcile of the current object, as the controller runs it. The in-memory API's
/// PATCH is a read-merge-write that checks the resourceVersion it read, so a patch racing
/// the tracker's label moves can fail with 409 where a real API server (no
/// resourceVersion in the patch) would not; the controller's error_policy requeues such
/// an error, so a conflict is retried here (bounded) and any other error fails the test.
pub async fn reconcile_as_controller(bed: &Bed, ctx: &Arc<redis_failover::operator::reconcile::Context>) -> kube::runtime::controller::Action {
    use redis_failover::operator::reconcile::{reconcile, Error};
    for attempt in 1..=5 {
        match reconcile(Arc::new(bed.cluster().await), ctx.clone()).await {
            Ok(action) => return action,
            Err(Error::Kube(kube::Error::Api(status))) if status.code == 409 && attempt < 5 => {
                eprintln!("reconcile attempt {attempt}: {} (requeued)", status.message);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("reconcile failed: {e}"),
        }
    }
    unreachable!()
}

pub struct Bed {
    pub dir: tempfile::TempDir,
    pub servers: Vec<Proc>,
    pub sentinels: Vec<Proc>,
    pub client: kube::Client,
    pub resolver: Arc<StaticResolver>,
    pub metrics: Metrics,
}

pub fn pod_name(i: usize) -> String {
    format!("{NAME}-server-{i}")
}

impl Bed {
    /// 1 master + 2 replicas, 3 sentinels (quorum 2, down-after 1000 ms), and the pods in
    /// the in-memory API labelled server-0 = master.
    pub async fn start() -> Bed {
        let mut dir = tempfile::tempdir().unwrap();
        if std::env::var("RF_TEST_KEEP_DIR").is_ok() {
            dir.disable_cleanup(true);
            eprintln!("test dir kept: {}", dir.path().display());
        }
        let mut servers: Vec<Proc> = vec![];
        for i in 0..3 {
            let data = dir.path().join(format!("server-{i}"));
            std::fs::create_dir_all(&data).unwrap();
            let master = servers.first().map(|m| m.port);
            servers.push(start_own(&server_bin(), dir.path(), &format!("server-{i}"), |port| {
                let mut text = format!(
                    "port {port}\nbind 127.0.0.1\ndir {}\nsave \"\"\nappendonly no\nrequirepass {PASSWORD}\nmasterauth {PASSWORD}\n",
                    data.display()
                );
                if let Some(master) = master {
                    text.push_str(&format!("replicaof 127.0.0.1 {master}\n"));
                }
                text
            }));
        }
        let ports: Vec<u16> = servers.iter().map(|s| s.port).collect();
        let master = ports[0];
        wait_for("2 replicas online", Duration::from_secs(15), || async move {
            let info: String = query(master, Some(PASSWORD), &["INFO", "replication"]).await?;
            (info.matches("state=online").count() == 2).then_some(())
        })
        .await;

        let mut sentinels = vec![];
        for i in 0..3 {
            sentinels.push(start_own(&sentinel_bin(), dir.path(), &format!("sentinel-{i}"), |port| {
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor mymaster 127.0.0.1 {master} 2\n\
                     sentinel down-after-milliseconds mymaster 1000\nsentinel failover-timeout mymaster 4000\n\
                     sentinel parallel-syncs mymaster 1\nsentinel auth-pass mymaster {PASSWORD}\n",
                    dir.path().display()
                )
            }));
        }
        for s in &sentinels {
            let p = s.port;
            wait_for("sentinel sees 2 peers and 2 replicas", Duration::from_secs(20), || async move {
                let m: Vec<String> = query(p, None, &["SENTINEL", "MASTER", "mymaster"]).await?;
                let field = |k: &str| m.iter().position(|x| x == k).and_then(|i| m.get(i + 1)).cloned();
                (field("num-other-sentinels")? == "2" && field("num-slaves")? == "2").then_some(())
            })
            .await;
        }

        let resolver = Arc::new(StaticResolver {
            sentinels: sentinels.iter().map(|s| Endpoint::new("127.0.0.1", s.port)).collect(),
            servers: ports.iter().enumerate().map(|(i, p)| (pod_name(i), Endpoint::new("127.0.0.1", *p))).collect(),
        });

        let spec: RedisFailoverClusterSpec = serde_json::from_value(json!({})).unwrap();
        let mut cr = RedisFailoverCluster::new(NAME, spec);
        cr.metadata.namespace = Some(NS.into());
        let mut pods = vec![];
        for i in 0..3 {
            let role = if i == 0 { "master" } else { "replica" };
            pods.push(
                serde_json::from_value::<Pod>(json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": pod_name(i), "namespace": NS, "labels": {
                        "app.kubernetes.io/name": "redis-failover", "app.kubernetes.io/instance": NAME,
                        "app.kubernetes.io/component": "server", "app.kubernetes.io/managed-by": "rf-operator",
                        "redisfailover.io/role": role,
                    }, "finalizers": ["test/keep"]},
                    "spec": {"containers": [{"name": "server", "image": "x"}]},
                }))
                .unwrap(),
            );
        }
        let client = ClientBuilder::new()
            .with_resource::<RedisFailoverCluster>()
            .with_status_subresource::<RedisFailoverCluster>()
            .with_object(cr)
            .with_objects(pods)
            .build()
            .await
            .unwrap();
        Bed { dir, servers, sentinels, client, resolver, metrics: Metrics::default() }
    }

    pub fn key() -> ClusterKey {
        ClusterKey { namespace: NS.into(), name: NAME.into() }
    }

    /// A tracker (what `rf-operator run` starts per cluster), checking every 500 ms.
    pub async fn tracker(&self) -> Tracker {
        let t = Tracker::new(
            self.client.clone(),
            self.resolver.clone(),
            self.metrics.clone(),
            TrackerConfig { check_interval: Duration::from_millis(500), io_timeout: Duration::from_millis(500) },
        );
        let cr = Api::<RedisFailoverCluster>::namespaced(self.client.clone(), NS).get(NAME).await.unwrap();
        t.ensure(&Self::key(), ClusterParams { sentinels: 3, password: Some(PASSWORD.into()) }, cr.status.as_ref());
        t
    }

    pub async fn labels(&self) -> BTreeMap<String, Option<String>> {
        labels_of(&self.client).await
    }

    pub async fn cluster(&self) -> RedisFailoverCluster {
        Api::<RedisFailoverCluster>::namespaced(self.client.clone(), NS).get(NAME).await.unwrap()
    }

    /// The master named by a majority of the sentinels, as a pod index.
    pub async fn sentinel_majority(&self) -> Option<usize> {
        let mut votes: BTreeMap<u16, usize> = BTreeMap::new();
        for s in &self.sentinels {
            if let Some(v) = query::<Option<Vec<String>>>(s.port, None, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster"]).await.flatten() {
                if let Some(p) = v.get(1).and_then(|p| p.parse().ok()) {
                    *votes.entry(p).or_default() += 1;
                }
            }
        }
        let (port, _) = votes.into_iter().find(|(_, n)| *n >= 2)?;
        self.servers.iter().position(|s| s.port == port)
    }
}

pub async fn labels_of(client: &kube::Client) -> BTreeMap<String, Option<String>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    pods.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| {
            let role = p.metadata.labels.as_ref().and_then(|l| l.get("redisfailover.io/role").cloned());
            (p.metadata.name.unwrap(), role)
        })
        .collect()
}

pub fn masters(labels: &BTreeMap<String, Option<String>>) -> Vec<String> {
    labels.iter().filter(|(_, r)| r.as_deref() == Some("master")).map(|(p, _)| p.clone()).collect()
}

/// Watches the pod labels continuously (every 2 ms) and records the largest number of
/// pods labelled master at any observed instant.
pub struct LabelObserver {
    pub max_masters: Arc<parking_lot::Mutex<usize>>,
    pub samples: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl LabelObserver {
    pub fn start(client: kube::Client) -> Self {
        let max_masters = Arc::new(parking_lot::Mutex::new(0));
        let samples = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (m, s) = (max_masters.clone(), samples.clone());
        let task = tokio::spawn(async move {
            loop {
                let n = masters(&labels_of(&client).await).len();
                {
                    let mut g = m.lock();
                    *g = (*g).max(n);
                }
                s.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        LabelObserver { max_masters, samples, task }
    }
}

impl Drop for LabelObserver {
    fn drop(&mut self) {
        self.task.abort();
    }
}


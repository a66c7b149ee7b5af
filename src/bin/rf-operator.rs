//! rf-operator: `crd` prints the CustomResourceDefinition; `run` runs the controller;
//! `exporter` is the Prometheus sidecar of the server pods (same image).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use redis_failover::operator::{crd, exporter, run};

#[derive(Parser)]
#[command(name = "rf-operator", version, about = "Kubernetes operator for RedisFailoverCluster")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the RedisFailoverCluster CRD as YAML.
    Crd,
    /// Run the controller (kubeconfig or in-cluster config).
    Run {
        /// Watch only this namespace (all namespaces when omitted).
        #[arg(long)]
        namespace: Option<String>,
        /// Address of /metrics, /healthz and /readyz.
        #[arg(long, default_value = "0.0.0.0:8080")]
        metrics_addr: SocketAddr,
        /// Leader election on a coordination.k8s.io Lease (on by default).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
        leader_election: bool,
        #[arg(long, default_value = "rf-operator-leader")]
        lease_name: String,
        /// Namespace of the Lease; defaults to $POD_NAMESPACE, else "default".
        #[arg(long)]
        lease_namespace: Option<String>,
        /// Seconds between full master checks against all sentinels.
        #[arg(long, default_value_t = 10)]
        check_interval_secs: u64,
    },
    /// Print, as YAML, every object the operator would apply for the RedisFailoverCluster
    /// in FILE (master on ordinal 0), for offline validation (kubernetes-validate).
    Render {
        /// A YAML file holding a RedisFailoverCluster (other documents are skipped).
        file: std::path::PathBuf,
    },
    /// Serve Prometheus metrics read from one server's INFO (redis_exporter names).
    /// The password comes from --password-file, else $REDIS_PASSWORD.
    Exporter {
        /// The server to read, host:port.
        #[arg(long, default_value = "127.0.0.1:6379")]
        redis_addr: String,
        /// Address of /metrics and /healthz: [host]:port, e.g. ":9121".
        #[arg(long, default_value = ":9121")]
        listen: String,
        /// File holding the server password (a mounted Secret key).
        #[arg(long)]
        password_file: Option<String>,
        /// Milliseconds allowed to connect and for each reply.
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
    },
}

fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn")),
        )
        .init();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => {
            print!("{}", crd::crd_yaml());
            Ok(())
        }
        Command::Run { namespace, metrics_addr, leader_election, lease_name, lease_namespace, check_interval_secs } => {
            init_logging();
            run::run(run::RunConfig {
                namespace,
                metrics_addr,
                leader_election,
                lease_name,
                lease_namespace: lease_namespace
                    .or_else(|| std::env::var("POD_NAMESPACE").ok())
                    .unwrap_or_else(|| "default".to_string()),
                check_interval: Duration::from_secs(check_interval_secs.max(1)),
            })
            .await
            .context("rf-operator run")
        }
        Command::Render { file } => {
            print!("{}", render_file(&file)?);
            Ok(())
        }
        Command::Exporter { redis_addr, listen, password_file, timeout_ms } => {
            init_logging();
            let cfg = exporter::ExporterConfig {
                redis: exporter::parse_redis_addr(&redis_addr)?,
                password: exporter::read_password(password_file.as_deref(), std::env::var("REDIS_PASSWORD").ok())?,
                timeout: Duration::from_millis(timeout_ms.max(1)),
            };
            let addr = exporter::parse_listen(&listen)?;
            let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
            exporter::serve(listener, cfg).await.context("rf-operator exporter")
        }
    }
}

/// The objects for every RedisFailoverCluster document of `file`, as multi-document YAML.
fn render_file(file: &std::path::Path) -> anyhow::Result<String> {
    use serde::Deserialize;
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let mut out = String::new();
    let mut found = 0;
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = serde_json::Value::deserialize(doc).with_context(|| format!("parsing {}", file.display()))?;
        if value.get("kind").and_then(|k| k.as_str()) != Some("RedisFailoverCluster") {
            continue;
        }
        found += 1;
        let mut cluster: crd::RedisFailoverCluster =
            serde_json::from_value(value).with_context(|| format!("{}: not a valid RedisFailoverCluster", file.display()))?;
        // Placeholders for what the API server assigns.
        cluster.metadata.namespace.get_or_insert_with(|| "default".into());
        cluster.metadata.uid = Some("00000000-0000-0000-0000-000000000000".into());
        let errors = redis_failover::operator::builders::validate_spec(&cluster.spec);
        if !errors.is_empty() {
            anyhow::bail!("{}: {}", file.display(), redis_failover::operator::builders::config::spec_errors_message(&errors));
        }
        let inputs = redis_failover::operator::builders::Inputs::new(&cluster, redis_failover::operator::builders::MasterRef { ordinal: 0 })?;
        for obj in redis_failover::operator::builders::desired_objects(&inputs)? {
            out.push_str("---\n");
            out.push_str(&serde_yaml::to_string(&obj)?);
        }
    }
    anyhow::ensure!(found > 0, "{}: no RedisFailoverCluster in it", file.display());
    Ok(out)
}

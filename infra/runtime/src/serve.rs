//! `learnlink-local serve`: the local runtime process. Reads the template,
//! provisions its queues and tables in moto, hosts the functions, and runs
//! the HTTP gateway, the SQS pollers and the schedules.

use crate::gateway::{Gateway, router};
use crate::lambda::{FunctionHost, HostEnv};
use crate::pollers::{Poller, SourceStats};
use crate::template::Template;
use crate::wiring::{ACCOUNT_ID, build};
use anyhow::Context as _;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub template: PathBuf,
    pub stack_name: String,
    pub region: String,
    pub parameters: BTreeMap<String, String>,
    pub moto_url: String,
    pub gateway: SocketAddr,
    pub bin_dir: PathBuf,
    pub log_dir: PathBuf,
    pub env: Vec<(String, String)>,
    pub default_concurrency: u32,
    pub default_pollers: u32,
}

pub async fn run(cfg: ServeConfig) -> anyhow::Result<()> {
    let template = Template::load(&cfg.template)?;
    let moto = cfg.moto_url.trim_end_matches('/').to_string();
    let wiring =
        build(&template, &cfg.stack_name, &cfg.region, &cfg.parameters, &|name| format!("{moto}/{ACCOUNT_ID}/{name}"))?;
    let aws = learnlink_adapters::aws::load_local(&moto, &cfg.region).await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let ddb = aws_sdk_dynamodb::Client::new(&aws);
    crate::provision::provision(&wiring, &sqs, &ddb).await?;
    tracing::info!(stack = %wiring.stack, queues = wiring.queues.len(), tables = wiring.tables.len(), "provisioned");

    std::fs::create_dir_all(&cfg.log_dir).with_context(|| format!("creating {}", cfg.log_dir.display()))?;
    let host_env = HostEnv {
        bin_dir: cfg.bin_dir.clone(),
        log_dir: cfg.log_dir.clone(),
        region: cfg.region.clone(),
        aws_endpoint_url: moto.clone(),
        overrides: cfg.env.clone(),
        default_concurrency: cfg.default_concurrency,
    };
    let mut hosts = Vec::new();
    let mut routes = Vec::new();
    for (i, f) in wiring.functions.iter().enumerate() {
        let bin = cfg.bin_dir.join(&f.binary);
        anyhow::ensure!(bin.exists(), "function binary {} is missing: run `cargo build --bins` first", bin.display());
        hosts.push(FunctionHost::new(f.clone(), host_env.clone()));
        for r in &f.http {
            routes.push((r.clone(), i));
        }
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut source_stats = Vec::new();
    for (i, f) in wiring.functions.iter().enumerate() {
        for src in f.sqs.iter().filter(|s| s.enabled) {
            let stats = Arc::new(Mutex::new(SourceStats {
                function: f.logical_id.clone(),
                event: src.event.clone(),
                queue: src.queue_logical_id.clone(),
                ..Default::default()
            }));
            source_stats.push(stats.clone());
            let n = src.max_concurrency.unwrap_or(cfg.default_pollers).max(1);
            for _ in 0..n {
                let p = Arc::new(Poller {
                    src: src.clone(),
                    host: hosts[i].clone(),
                    sqs: sqs.clone(),
                    region: cfg.region.clone(),
                    stats: stats.clone(),
                });
                tokio::spawn(p.run(stop_rx.clone()));
            }
        }
        for s in f.schedules.iter().filter(|s| s.enabled) {
            tokio::spawn(crate::scheduler::run(s.clone(), hosts[i].clone(), cfg.region.clone(), stop_rx.clone()));
        }
    }
    let gw = Arc::new(Gateway { wiring, hosts: hosts.clone(), routes, source_stats });
    let listener =
        tokio::net::TcpListener::bind(cfg.gateway).await.with_context(|| format!("binding {}", cfg.gateway))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "gateway listening");
    println!("listening on http://{addr}");
    let app = router(gw).into_make_service_with_connect_info::<SocketAddr>();
    let mut stop_wait = stop_rx.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop_wait.wait_for(|s| *s).await;
            })
            .await
    });
    shutdown_signal().await;
    tracing::info!("stopping");
    let _ = stop_tx.send(true);
    for h in &hosts {
        h.kill_all();
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), server).await;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

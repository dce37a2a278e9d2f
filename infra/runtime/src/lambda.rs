//! Function hosts: each function's binary runs as real processes that talk
//! to a Lambda Runtime API (`/2018-06-01/runtime/...`) served here, exactly
//! as `bootstrap` does on `provided.al2023`. One Runtime API listener per
//! instance; an instance handles one invocation at a time; instances start on
//! demand up to the function's concurrency; a timeout kills the instance
//! ("Task timed out after N seconds"); a crash fails the invocation in flight.

use crate::wiring::FunctionSpec;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

/// Largest synchronous invocation payload Lambda accepts (6 MB).
pub const MAX_PAYLOAD: usize = 6 * 1024 * 1024;

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum InvokeError {
    /// The function reported an error (`/invocation/{id}/error`).
    #[error("function error: {0}")]
    Function(String),
    #[error("Task timed out after {0} seconds")]
    Timeout(u64),
    #[error("the runtime exited before answering ({0})")]
    Crashed(String),
    #[error("the function could not be started: {0}")]
    Start(String),
    #[error("the request payload has {0} bytes; the limit is {MAX_PAYLOAD}")]
    TooLarge(usize),
}

struct Invocation {
    request_id: String,
    payload: Bytes,
    deadline_ms: u64,
    reply: oneshot::Sender<Result<Bytes, InvokeError>>,
}

struct Instance {
    id: u64,
    tx: mpsc::Sender<Invocation>,
    dead: watch::Receiver<Option<String>>,
    kill: Mutex<Option<oneshot::Sender<()>>>,
}

impl Instance {
    fn is_dead(&self) -> bool {
        self.dead.borrow().is_some()
    }

    fn kill(&self) {
        if let Some(k) = self.kill.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = k.send(());
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct FunctionStats {
    pub invocations: u64,
    pub errors: u64,
    pub timeouts: u64,
    pub crashes: u64,
    pub cold_starts: u64,
    pub live_instances: u64,
}

/// Settings of the process environment every instance gets.
#[derive(Debug, Clone)]
pub struct HostEnv {
    pub bin_dir: PathBuf,
    pub log_dir: PathBuf,
    pub region: String,
    pub aws_endpoint_url: String,
    /// Applied after the template's variables (local-only settings).
    pub overrides: Vec<(String, String)>,
    /// Concurrency when the template sets no ReservedConcurrentExecutions.
    pub default_concurrency: u32,
}

pub struct FunctionHost {
    pub spec: FunctionSpec,
    env: HostEnv,
    idle: Mutex<Vec<Arc<Instance>>>,
    all: Mutex<Vec<Arc<Instance>>>,
    slots: Semaphore,
    next_id: AtomicU64,
    stats: Mutex<FunctionStats>,
    log: Mutex<Option<std::fs::File>>,
}

impl FunctionHost {
    pub fn new(spec: FunctionSpec, env: HostEnv) -> Arc<Self> {
        let max = spec.reserved_concurrency.unwrap_or(env.default_concurrency).max(1) as usize;
        Arc::new(FunctionHost {
            spec,
            env,
            idle: Mutex::new(Vec::new()),
            all: Mutex::new(Vec::new()),
            slots: Semaphore::new(max),
            next_id: AtomicU64::new(1),
            stats: Mutex::new(FunctionStats::default()),
            log: Mutex::new(None),
        })
    }

    pub fn stats(&self) -> FunctionStats {
        let mut s = lock(&self.stats).clone();
        s.live_instances = lock(&self.all).iter().filter(|i| !i.is_dead()).count() as u64;
        s
    }

    fn runtime_log(&self, line: &str) {
        use std::io::Write;
        let mut g = lock(&self.log);
        if g.is_none() {
            let path = self.env.log_dir.join(format!("{}.log", self.spec.binary));
            *g = std::fs::OpenOptions::new().create(true).append(true).open(path).ok();
        }
        if let Some(f) = g.as_mut() {
            let _ = writeln!(f, "{line}");
        }
    }

    /// Kill every instance (a crash of the whole function, for tests).
    pub fn kill_all(&self) -> usize {
        let all = lock(&self.all).clone();
        for i in &all {
            i.kill();
        }
        all.len()
    }

    /// Synchronous invocation (RequestResponse).
    pub async fn invoke(self: &Arc<Self>, payload: Bytes) -> Result<Bytes, InvokeError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(InvokeError::TooLarge(payload.len()));
        }
        let _permit = self.slots.acquire().await.map_err(|_| InvokeError::Start("host closed".into()))?;
        let instance = loop {
            let candidate = lock(&self.idle).pop();
            match candidate {
                Some(i) if i.is_dead() => continue,
                Some(i) => break i,
                None => break self.start_instance().await?,
            }
        };
        let request_id = uuid::Uuid::new_v4().to_string();
        let timeout = Duration::from_secs(self.spec.timeout_secs);
        let deadline_ms =
            (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as u64 + timeout.as_millis() as u64;
        let (reply, rx) = oneshot::channel();
        let started = Instant::now();
        self.runtime_log(&format!("START RequestId: {request_id} Instance: {}", instance.id));
        let inv = Invocation { request_id: request_id.clone(), payload, deadline_ms, reply };
        if instance.tx.send(inv).await.is_err() {
            return Err(InvokeError::Crashed("the instance stopped before the invocation".into()));
        }
        let mut dead = instance.dead.clone();
        let result = tokio::select! {
            r = rx => match r {
                Ok(r) => r,
                Err(_) => Err(InvokeError::Crashed("the instance dropped the invocation".into())),
            },
            _ = dead.wait_for(|d| d.is_some()) => {
                let why = instance.dead.borrow().clone().unwrap_or_default();
                Err(InvokeError::Crashed(why))
            }
            _ = tokio::time::sleep(timeout) => {
                instance.kill();
                Err(InvokeError::Timeout(self.spec.timeout_secs))
            }
        };
        let ms = started.elapsed().as_millis();
        {
            let mut s = lock(&self.stats);
            s.invocations += 1;
            match &result {
                Ok(_) => {}
                Err(InvokeError::Function(_)) => s.errors += 1,
                Err(InvokeError::Timeout(_)) => s.timeouts += 1,
                Err(InvokeError::Crashed(_)) => s.crashes += 1,
                Err(_) => s.errors += 1,
            }
        }
        match &result {
            Ok(_) => self.runtime_log(&format!("END RequestId: {request_id} Duration: {ms} ms")),
            Err(e) => self.runtime_log(&format!("END RequestId: {request_id} Duration: {ms} ms Error: {e}")),
        }
        // A function error leaves the runtime healthy; a timeout or crash does not.
        if matches!(result, Ok(_) | Err(InvokeError::Function(_))) && !instance.is_dead() {
            lock(&self.idle).push(instance);
        }
        result
    }

    async fn start_instance(self: &Arc<Self>) -> Result<Arc<Instance>, InvokeError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| InvokeError::Start(format!("binding the Runtime API: {e}")))?;
        let addr = listener.local_addr().map_err(|e| InvokeError::Start(e.to_string()))?;
        let (tx, rx) = mpsc::channel::<Invocation>(1);
        let (dead_tx, dead_rx) = watch::channel::<Option<String>>(None);
        let function_arn =
            format!("arn:aws:lambda:{}:{}:function:{}", self.env.region, crate::wiring::ACCOUNT_ID, self.spec.name);
        let api = ApiState {
            rx: tokio::sync::Mutex::new(rx),
            inflight: Mutex::new(HashMap::new()),
            function_arn,
            dead: dead_rx.clone(),
        };
        let app = runtime_api(Arc::new(api));
        let mut dead_for_server = dead_rx.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = dead_for_server.wait_for(|d| d.is_some()).await;
                })
                .await;
        });

        let bin = self.env.bin_dir.join(&self.spec.binary);
        let log_path = self.env.log_dir.join(format!("{}.log", self.spec.binary));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| InvokeError::Start(format!("opening {}: {e}", log_path.display())))?;
        let err = out.try_clone().map_err(|e| InvokeError::Start(e.to_string()))?;
        let mut cmd = std::process::Command::new(&bin);
        cmd.env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("TZ", ":UTC")
            .env("LANG", "en_US.UTF-8")
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", &self.spec.name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", self.spec.memory_mb.to_string())
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{}", self.spec.name))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", format!("local/[$LATEST]{id}"))
            .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
            .env("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023")
            .env("AWS_REGION", &self.env.region)
            .env("AWS_DEFAULT_REGION", &self.env.region)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_SESSION_TOKEN", "test")
            .env("AWS_ENDPOINT_URL", &self.env.aws_endpoint_url)
            .env("LAMBDA_TASK_ROOT", &self.env.bin_dir)
            .env("_HANDLER", "bootstrap")
            .envs(&self.spec.environment)
            .envs(self.env.overrides.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err);
        crate::process::die_with_parent(&mut cmd);
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| InvokeError::Start(format!("{}: {e} (build it first: cargo build --bins)", bin.display())))?;
        let (kill_tx, kill_rx) = oneshot::channel::<()>();
        let host = Arc::downgrade(self);
        tokio::spawn(async move {
            let why = tokio::select! {
                status = child.wait() => match status {
                    Ok(s) => format!("runtime exited with {s}"),
                    Err(e) => format!("waiting for the runtime failed: {e}"),
                },
                _ = kill_rx => {
                    let _ = child.start_kill();
                    let _ = child.wait().await;
                    "runtime stopped by the local runtime (timeout or kill)".to_string()
                }
            };
            let _ = dead_tx.send(Some(why.clone()));
            if let Some(h) = host.upgrade() {
                h.runtime_log(&format!("INSTANCE {id} ENDED: {why}"));
                lock(&h.all).retain(|i| i.id != id);
            }
        });
        lock(&self.stats).cold_starts += 1;
        let inst = Arc::new(Instance { id, tx, dead: dead_rx, kill: Mutex::new(Some(kill_tx)) });
        lock(&self.all).push(inst.clone());
        Ok(inst)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct ApiState {
    rx: tokio::sync::Mutex<mpsc::Receiver<Invocation>>,
    inflight: Mutex<HashMap<String, oneshot::Sender<Result<Bytes, InvokeError>>>>,
    function_arn: String,
    dead: watch::Receiver<Option<String>>,
}

fn runtime_api(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .layer(DefaultBodyLimit::max(MAX_PAYLOAD + 1024))
        .with_state(state)
}

async fn next(State(s): State<Arc<ApiState>>) -> Response {
    let mut rx = s.rx.lock().await;
    let mut dead = s.dead.clone();
    let inv = tokio::select! {
        inv = rx.recv() => inv,
        _ = dead.wait_for(|d| d.is_some()) => None,
    };
    let Some(inv) = inv else {
        // Lambda never answers `next` with anything but an event (the AWS
        // runtime clients panic on a response without a request id): it
        // freezes or kills the sandbox. Hold the poll until the process is gone.
        let _ = dead.wait_for(|d| d.is_some()).await;
        return (StatusCode::GONE, "the local runtime is shutting this instance down").into_response();
    };
    lock(&s.inflight).insert(inv.request_id.clone(), inv.reply);
    let mut h = HeaderMap::new();
    let mut put = |k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    };
    put("lambda-runtime-aws-request-id", inv.request_id.clone());
    put("lambda-runtime-deadline-ms", inv.deadline_ms.to_string());
    put("lambda-runtime-invoked-function-arn", s.function_arn.clone());
    put(
        "lambda-runtime-trace-id",
        format!(
            "Root=1-{:08x}-{}",
            time::OffsetDateTime::now_utc().unix_timestamp(),
            &inv.request_id.replace('-', "")[..24]
        ),
    );
    put("content-type", "application/json".to_string());
    (StatusCode::OK, h, inv.payload).into_response()
}

async fn response(State(s): State<Arc<ApiState>>, Path(id): Path<String>, body: Bytes) -> Response {
    match lock(&s.inflight).remove(&id) {
        Some(reply) => {
            let _ = reply.send(Ok(body));
            (StatusCode::ACCEPTED, axum::Json(serde_json::json!({"status": "OK"}))).into_response()
        }
        None => (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({"errorMessage": "unknown request id", "errorType": "InvalidRequestID"})),
        )
            .into_response(),
    }
}

async fn error(State(s): State<Arc<ApiState>>, Path(id): Path<String>, body: Bytes) -> Response {
    match lock(&s.inflight).remove(&id) {
        Some(reply) => {
            let _ = reply.send(Err(InvokeError::Function(String::from_utf8_lossy(&body).into_owned())));
            (StatusCode::ACCEPTED, axum::Json(serde_json::json!({"status": "OK"}))).into_response()
        }
        None => (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({"errorMessage": "unknown request id", "errorType": "InvalidRequestID"})),
        )
            .into_response(),
    }
}

async fn init_error(body: Bytes) -> Response {
    tracing::error!(error = %String::from_utf8_lossy(&body), "a function failed to initialise");
    (StatusCode::ACCEPTED, axum::Json(serde_json::json!({"status": "OK"}))).into_response()
}

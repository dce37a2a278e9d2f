//! The local stack as processes: moto server, the Salesforce emulator, the
//! LMS emulator and the local runtime (`learnlink-local serve`). `up` starts
//! them, waits until each answers, writes `stack.env` and a pid file; `down`
//! stops exactly the pids it started. Tests use the same code with
//! `attached = true` (children die with the test) and ports chosen free.

use anyhow::{Context as _, bail};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The HRIS emulator's credentials on the local stack.
pub const HRIS_API_KEY: &str = "hris-local-key";
pub const HRIS_ACCOUNT_TOKEN: &str = "hris-local-account";

#[derive(Debug, Clone)]
pub struct Ports {
    pub moto: u16,
    pub salesforce: u16,
    pub lms: u16,
    pub gateway: u16,
}

impl Ports {
    /// Every port 0: pick free ones (tests).
    pub fn any() -> Ports {
        Ports { moto: 0, salesforce: 0, lms: 0, gateway: 0 }
    }
}

#[derive(Debug, Clone)]
pub struct StackConfig {
    pub state_dir: PathBuf,
    pub template: PathBuf,
    pub stack_name: String,
    pub region: String,
    pub parameters: BTreeMap<String, String>,
    pub ports: Ports,
    /// Where the function and emulator binaries are (`target/debug`).
    pub bin_dir: PathBuf,
    /// The project's Python virtualenv with moto (`.venv`).
    pub venv: PathBuf,
    pub admin_token: String,
    pub lms_api_key: String,
    /// Children die with this process (tests); otherwise they are detached.
    pub attached: bool,
    /// Extra environment for every function (after the template's).
    pub function_env: Vec<(String, String)>,
    /// Instances per function without ReservedConcurrentExecutions (None: the runtime's default).
    pub concurrency: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Endpoints {
    pub aws_endpoint_url: String,
    pub salesforce_url: String,
    pub lms_url: String,
    /// The unified HRIS emulator (imports from an HRIS, SPEC §5.1).
    pub hris_url: String,
    pub api_url: String,
    pub webhook_url: String,
    pub runtime_url: String,
}

pub struct Stack {
    pub endpoints: Endpoints,
    pub state_dir: PathBuf,
    pub admin_token: String,
    pub lms_api_key: String,
    pids: Vec<(String, u32)>,
    children: Vec<Child>,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Wait until the child's own log (from `offset`) has a line containing
/// `needle`; return the rest of that line after the needle. Only the child
/// writes to its log, so another process on the port cannot fool this.
fn wait_log(
    name: &str,
    log: &Path,
    offset: u64,
    needle: &str,
    timeout: Duration,
    child: &mut Child,
) -> anyhow::Result<String> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let start = Instant::now();
    loop {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(log) {
            let _ = f.seek(SeekFrom::Start(offset));
            let _ = f.read_to_string(&mut text);
        }
        if let Some(line) = text.lines().find(|l| l.contains(needle)) {
            let rest = line.split_once(needle).map(|(_, r)| r.trim().to_string()).unwrap_or_default();
            return Ok(rest);
        }
        if let Some(status) = child.try_wait()? {
            let tail: Vec<&str> = text.lines().rev().take(3).collect();
            bail!("{name} exited with {status} while starting ({}); see {}", tail.join(" | "), log.display());
        }
        if start.elapsed() > timeout {
            bail!("{name} was not ready within {timeout:?}; see {}", log.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The port in `http://127.0.0.1:PORT...`.
fn port_of(url: &str) -> anyhow::Result<u16> {
    url.trim_start_matches("http://")
        .split(['/', ' '])
        .next()
        .and_then(|hp| hp.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("no port in {url:?}"))
}

fn http_ok(url: &str) -> bool {
    // A tiny HTTP/1.1 GET without pulling an HTTP client into the sync path.
    let Some(rest) = url.strip_prefix("http://") else { return false };
    let (hostport, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let Ok(addr) = hostport.parse::<SocketAddr>() else { return false };
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(s, "GET {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    use std::io::Read as _;
    matches!(s.read(&mut buf), Ok(n) if n >= 12 && &buf[9..12] == b"200")
}

/// moto's server (`moto_server`) with one request at a time: `python -c
/// <this> -H <host> -p <port>`. HTTP/1.0 without threads, so an idle
/// keep-alive connection never holds the server.
const SINGLE_THREADED_MOTO: &str = r#"
import argparse, os, signal, sys
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
p = argparse.ArgumentParser()
p.add_argument("-H", default="127.0.0.1")
p.add_argument("-p", type=int, required=True)
a = p.parse_args()
os.environ.setdefault("MOTO_PORT", str(a.p))
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
run_simple(a.H, a.p, DomainDispatcherApplication(create_backend_app), threaded=False, request_handler=MotoRequestHandler)
"#;

impl Stack {
    /// Start a child with its output appended to `logs/<name>.log`; returns
    /// its index, the log path and the log's length before the start.
    fn spawn(&mut self, cfg: &StackConfig, name: &str, mut cmd: Command) -> anyhow::Result<(usize, PathBuf, u64)> {
        let log_dir = cfg.state_dir.join("logs");
        let log = log_dir.join(format!("{name}.log"));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("opening {}", log.display()))?;
        let offset = out.metadata().map(|m| m.len()).unwrap_or(0);
        cmd.stdin(Stdio::null()).stdout(out.try_clone()?).stderr(out);
        if cfg.attached {
            crate::process::die_with_parent(&mut cmd);
        } else {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let child = cmd.spawn().with_context(|| format!("starting {name} ({:?})", cmd.get_program()))?;
        self.pids.push((name.to_string(), child.id()));
        self.children.push(child);
        self.write_pids()?;
        Ok((self.children.len() - 1, log, offset))
    }

    fn write_pids(&self) -> anyhow::Result<()> {
        let text: String = self.pids.iter().map(|(n, p)| format!("{n} {p}\n")).collect();
        std::fs::write(self.state_dir.join("pids"), text)?;
        Ok(())
    }

    /// Start a server that binds its own port and prints `listening on <url>`;
    /// returns the port.
    fn start_server(
        &mut self,
        cfg: &StackConfig,
        name: &str,
        label: &str,
        cmd: Command,
        timeout: Duration,
    ) -> anyhow::Result<u16> {
        let (i, log, offset) = self.spawn(cfg, name, cmd)?;
        let url = wait_log(label, &log, offset, "listening on ", timeout, &mut self.children[i])?;
        port_of(&url)
    }

    /// Start the stack; on any failure, stop what was started.
    pub fn up(cfg: &StackConfig) -> anyhow::Result<Stack> {
        std::fs::create_dir_all(cfg.state_dir.join("logs"))
            .with_context(|| format!("creating {}", cfg.state_dir.display()))?;
        let mut stack = Stack {
            endpoints: Endpoints {
                aws_endpoint_url: String::new(),
                salesforce_url: String::new(),
                lms_url: String::new(),
                hris_url: String::new(),
                api_url: String::new(),
                webhook_url: String::new(),
                runtime_url: String::new(),
            },
            state_dir: cfg.state_dir.clone(),
            admin_token: cfg.admin_token.clone(),
            lms_api_key: cfg.lms_api_key.clone(),
            pids: Vec::new(),
            children: Vec::new(),
        };
        match stack.start_all(cfg) {
            Ok(()) => Ok(stack),
            Err(e) => {
                stack.stop();
                Err(e)
            }
        }
    }

    /// Start one moto server on a free port (moto cannot bind port 0: pick
    /// one, and pick again if another process takes it first).
    /// `base` is the command without its `-H`/`-p` arguments.
    fn start_moto(&mut self, cfg: &StackConfig, name: &str, base: Command) -> anyhow::Result<u16> {
        let mut last = None;
        for _ in 0..5 {
            let port = free_port()?;
            let mut cmd = Command::new(base.get_program());
            cmd.args(base.get_args());
            cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
            let (i, log, offset) = self.spawn(cfg, name, cmd)?;
            match wait_log(name, &log, offset, "Running on", Duration::from_secs(60), &mut self.children[i]) {
                Ok(_) => return Ok(port),
                Err(e) => {
                    let (_, pid) = self.pids.pop().unwrap_or_default();
                    self.children.pop();
                    crate::process::stop_pid(pid, Duration::from_secs(2));
                    eprintln!("retrying {name} on another port: {e}");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("{name} did not start")))
    }

    fn start_all(&mut self, cfg: &StackConfig) -> anyhow::Result<()> {
        let logs = cfg.state_dir.join("logs");
        let moto_bin = cfg.venv.join("bin/moto_server");
        anyhow::ensure!(moto_bin.exists(), "{} is missing: run `make setup`", moto_bin.display());
        // Two motos — DynamoDB, and every other service — behind one
        // endpoint (`aws_router`): one Python process saturates a core
        // under a webhook stream, as AWS's separate service endpoints never do.
        // The DynamoDB moto serves one request at a time: its threaded server
        // can iterate a table while another thread writes it ("dictionary
        // changed size during iteration", a 500), and DynamoDB has no long
        // polls to wait on (SQS's ReceiveMessage does: that moto is threaded).
        let python = cfg.venv.join("bin/python");
        let mut cmd = Command::new(&python);
        cmd.args(["-c", SINGLE_THREADED_MOTO]);
        let dynamodb_port = self.start_moto(cfg, "moto-dynamodb", cmd)?;
        let other_port = self.start_moto(cfg, "moto", Command::new(&moto_bin))?;
        let mut cmd = Command::new(cfg.bin_dir.join("learnlink-local"));
        cmd.arg("aws-router")
            .args(["--listen", &format!("127.0.0.1:{}", cfg.ports.moto)])
            .args(["--dynamodb", &format!("http://127.0.0.1:{dynamodb_port}")])
            .args(["--default", &format!("http://127.0.0.1:{other_port}")]);
        let moto_port =
            self.start_server(cfg, "aws-router", "the AWS endpoint router", cmd, Duration::from_secs(30))?;
        let moto_url = format!("http://127.0.0.1:{moto_port}");

        // The emulators and the runtime bind the port themselves (0 = any)
        // and say where they listen.
        let mut cmd = Command::new(cfg.bin_dir.join("sf-emulator"));
        cmd.args(["--host", "127.0.0.1", "--port", &cfg.ports.salesforce.to_string()]);
        let sf_port = self.start_server(cfg, "salesforce", "the Salesforce emulator", cmd, Duration::from_secs(30))?;

        let mut cmd = Command::new(cfg.bin_dir.join("lms-emulator"));
        cmd.args(["--host", "127.0.0.1", "--port", &cfg.ports.lms.to_string(), "--api-key", &cfg.lms_api_key]);
        let lms_port = self.start_server(cfg, "lms", "the LMS emulator", cmd, Duration::from_secs(30))?;

        let mut cmd = Command::new(cfg.bin_dir.join("hris-emulator"));
        cmd.args([
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--api-key",
            HRIS_API_KEY,
            "--account-token",
            HRIS_ACCOUNT_TOKEN,
        ]);
        let hris_port = self.start_server(cfg, "hris", "the HRIS emulator", cmd, Duration::from_secs(30))?;

        let mut cmd = Command::new(cfg.bin_dir.join("learnlink-local"));
        cmd.arg("serve")
            .arg("--template")
            .arg(&cfg.template)
            .args(["--stack-name", &cfg.stack_name, "--region", &cfg.region, "--moto-url", &moto_url])
            .args(["--gateway", &format!("127.0.0.1:{}", cfg.ports.gateway)])
            .arg("--bin-dir")
            .arg(&cfg.bin_dir)
            .arg("--log-dir")
            .arg(&logs);
        for (k, v) in &cfg.parameters {
            cmd.args(["--param", &format!("{k}={v}")]);
        }
        let mut env = vec![
            ("ADMIN_AUTH".to_string(), "bearer".to_string()),
            ("ADMIN_TOKEN".to_string(), cfg.admin_token.clone()),
            ("RUST_LOG".to_string(), "info".to_string()),
        ];
        env.extend(cfg.function_env.iter().cloned());
        for (k, v) in &env {
            cmd.args(["--env", &format!("{k}={v}")]);
        }
        if let Some(c) = cfg.concurrency {
            cmd.args(["--concurrency", &c.to_string()]);
        }
        cmd.env("RUST_LOG", "info");
        let gw_port = self.start_server(cfg, "runtime", "the local runtime", cmd, Duration::from_secs(120))?;
        anyhow::ensure!(
            http_ok(&format!("http://127.0.0.1:{gw_port}/__local/health")),
            "the local runtime does not answer on port {gw_port}"
        );
        let api = format!("http://127.0.0.1:{gw_port}");
        self.endpoints = Endpoints {
            aws_endpoint_url: moto_url,
            salesforce_url: format!("http://127.0.0.1:{sf_port}"),
            lms_url: format!("http://127.0.0.1:{lms_port}"),
            hris_url: format!("http://127.0.0.1:{hris_port}"),
            webhook_url: format!("{api}/webhooks"),
            runtime_url: format!("{api}/__local"),
            api_url: api,
        };
        self.write_env(cfg)?;
        Ok(())
    }

    fn write_env(&self, cfg: &StackConfig) -> anyhow::Result<()> {
        let e = &self.endpoints;
        let text = format!(
            "# written by `learnlink-local up`; read by the tests, the CLI and the demo\n\
             AWS_ENDPOINT_URL={}\nSALESFORCE_URL={}\nLMS_URL={}\nHRIS_URL={}\nLEARNLINK_API_URL={}\nWEBHOOK_URL={}\n\
             LEARNLINK_RUNTIME_URL={}\nLEARNLINK_ADMIN_TOKEN={}\nLMS_API_KEY={}\nAWS_REGION={}\nLEARNLINK_STACK={}\n",
            e.aws_endpoint_url,
            e.salesforce_url,
            e.lms_url,
            e.hris_url,
            e.api_url,
            e.webhook_url,
            e.runtime_url,
            cfg.admin_token,
            cfg.lms_api_key,
            cfg.region,
            cfg.stack_name,
        );
        let path = cfg.state_dir.join("stack.env");
        std::fs::write(&path, text)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        Ok(())
    }

    /// Stop every process this stack started (by pid), newest first.
    pub fn stop(&mut self) {
        for (name, pid) in self.pids.iter().rev() {
            if !crate::process::stop_pid(*pid, Duration::from_secs(5)) {
                eprintln!("could not stop {name} (pid {pid})");
            }
        }
        for c in &mut self.children {
            let _ = c.try_wait();
        }
        let _ = std::fs::remove_file(self.state_dir.join("pids"));
        self.pids.clear();
    }

    /// Detach: forget the children without stopping them (`make up`).
    pub fn detach(mut self) {
        self.pids.clear();
        self.children.clear();
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if !self.pids.is_empty() {
            self.stop();
        }
    }
}

/// Stop a detached stack from its pid file. Returns how many were stopped.
pub fn down(state_dir: &Path) -> anyhow::Result<usize> {
    let path = state_dir.join("pids");
    let Ok(text) = std::fs::read_to_string(&path) else { return Ok(0) };
    let mut n = 0;
    for line in text.lines().rev() {
        let mut it = line.split_whitespace();
        let (Some(name), Some(pid)) = (it.next(), it.next().and_then(|p| p.parse::<u32>().ok())) else { continue };
        if crate::process::stop_pid(pid, Duration::from_secs(5)) {
            n += 1;
        } else {
            eprintln!("could not stop {name} (pid {pid})");
        }
    }
    std::fs::remove_file(&path)?;
    Ok(n)
}

/// Whether the pid file names processes that are all alive.
pub fn running(state_dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(state_dir.join("pids")) else { return false };
    let pids: Vec<u32> = text.lines().filter_map(|l| l.split_whitespace().nth(1)?.parse().ok()).collect();
    !pids.is_empty() && pids.iter().all(|p| Path::new(&format!("/proc/{p}")).exists())
}

/// Read `stack.env` into a map.
pub fn read_env(state_dir: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let path = state_dir.join("stack.env");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {} (is the stack up? `make up`)", path.display()))?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect())
}

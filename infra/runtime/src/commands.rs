//! The stack commands shared by `learnlink-local` and the `learnlink` CLI.

use crate::stack::{self, Ports, Stack, StackConfig};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What `up` needs; paths may be relative to the current directory.
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub state_dir: PathBuf,
    pub template: PathBuf,
    pub stack_name: String,
    pub region: String,
    pub parameters: Vec<(String, String)>,
    pub ports: Ports,
    pub bin_dir: PathBuf,
    pub venv: PathBuf,
}

pub const ENDPOINT_KEYS: [&str; 7] = [
    "AWS_ENDPOINT_URL",
    "SALESFORCE_URL",
    "LMS_URL",
    "HRIS_URL",
    "LEARNLINK_API_URL",
    "WEBHOOK_URL",
    "LEARNLINK_RUNTIME_URL",
];

pub fn print_endpoints(env: &BTreeMap<String, String>) {
    for k in ENDPOINT_KEYS {
        println!("  {k:<22} {}", env.get(k).map(String::as_str).unwrap_or("?"));
    }
}

pub fn absolute(p: PathBuf) -> PathBuf {
    if p.is_absolute() { p } else { std::env::current_dir().map(|d| d.join(&p)).unwrap_or(p) }
}

/// Start the stack detached (or report the running one); prints the endpoints.
pub fn up(o: UpOptions) -> anyhow::Result<BTreeMap<String, String>> {
    let state_dir = absolute(o.state_dir);
    if stack::running(&state_dir) {
        println!("The local stack is already running:");
        let env = stack::read_env(&state_dir)?;
        print_endpoints(&env);
        return Ok(env);
    }
    let cfg = StackConfig {
        state_dir: state_dir.clone(),
        template: absolute(o.template),
        stack_name: o.stack_name,
        region: o.region,
        parameters: o.parameters.into_iter().collect(),
        ports: o.ports,
        bin_dir: absolute(o.bin_dir),
        venv: absolute(o.venv),
        admin_token: format!("ll-admin-{}", uuid::Uuid::new_v4().simple()),
        lms_api_key: "lms-local-key".into(),
        attached: false,
        function_env: Vec::new(),
        concurrency: None,
    };
    let s = Stack::up(&cfg)?;
    println!("The local stack is up (logs in {}):", state_dir.join("logs").display());
    let env = stack::read_env(&state_dir)?;
    print_endpoints(&env);
    println!("  endpoints written to {}", state_dir.join("stack.env").display());
    s.detach();
    Ok(env)
}

/// Stop the stack `up` started; returns how many processes were stopped.
pub fn down(state_dir: &Path) -> anyhow::Result<usize> {
    let n = stack::down(&absolute(state_dir.to_path_buf()))?;
    if n == 0 {
        println!("The local stack is not running.");
    } else {
        println!("Stopped {n} process(es) of the local stack.");
    }
    Ok(n)
}

//! `learnlink up` / `learnlink down`: the local stack, through the same code
//! and defaults as `learnlink-local up|down`, with paths relative to the
//! workspace root (the directory with `infra/template.yaml`).

use crate::cli::{DownArgs, UpArgs};
use crate::env::find_workspace_root;
use crate::error::Failure;
use crate::output::Output;
use learnlink_local::commands::{self, UpOptions};
use learnlink_local::stack::{Ports, running};
use std::path::{Path, PathBuf};

/// Resolves the paths of the stack commands: given ones against the current
/// directory, defaults against the workspace root.
pub struct Paths {
    cwd: PathBuf,
    root: Option<PathBuf>,
}

impl Paths {
    pub fn new(cwd: PathBuf) -> Paths {
        let root = find_workspace_root(&cwd);
        Paths { cwd, root }
    }

    pub fn resolve(&self, given: Option<PathBuf>, default_in_root: &str, flag: &str) -> Result<PathBuf, Failure> {
        match given {
            Some(p) if p.is_absolute() => Ok(p),
            Some(p) => Ok(self.cwd.join(p)),
            None => match &self.root {
                Some(r) => Ok(r.join(default_in_root)),
                None => Err(Failure::unexpected(format!(
                    "not inside a learnlink checkout: no infra/template.yaml in {} or above (run from the project, or give {flag})",
                    self.cwd.display()
                ))),
            },
        }
    }
}

fn cwd() -> Result<PathBuf, Failure> {
    std::env::current_dir().map_err(|e| Failure::unexpected(format!("cannot read the current directory: {e}")))
}

pub fn up(out: &Output, a: UpArgs) -> Result<(), Failure> {
    let paths = Paths::new(cwd()?);
    let state_dir = paths.resolve(a.dirs.state_dir, ".learnlink", "--state-dir")?;
    let options = UpOptions {
        template: paths.resolve(a.template, "infra/template.yaml", "--template")?,
        stack_name: a.stack_name,
        region: a.region,
        parameters: a.params,
        ports: Ports { moto: a.moto_port, salesforce: a.salesforce_port, lms: a.lms_port, gateway: a.gateway_port },
        bin_dir: paths.resolve(a.bin_dir, "target/debug", "--bin-dir")?,
        venv: paths.resolve(a.venv, ".venv", "--venv")?,
        state_dir: state_dir.clone(),
    };
    if !running(&state_dir) {
        // `up` prints its own report on stdout when it is done; a note (not a
        // spinner) keeps the terminal clean around it.
        out.note("Starting the local stack (moto, the Salesforce and LMS emulators, the local runtime): this takes up to a minute…");
    }
    commands::up(options).map(|_| ()).map_err(|e| {
        Failure::unexpected(format!("the local stack did not start: {e:#}"))
            .with_hint(format!("the logs are in {}", state_dir.join("logs").display()))
    })
}

pub fn down(_out: &Output, a: DownArgs) -> Result<(), Failure> {
    let paths = Paths::new(cwd()?);
    let state_dir = paths.resolve(a.dirs.state_dir, ".learnlink", "--state-dir")?;
    commands::down(&state_dir)
        .map(|_| ())
        .map_err(|e| Failure::unexpected(format!("cannot stop the local stack: {e:#}")))
}

/// The state directory `down` would use (for tests and messages).
pub fn state_dir_for(cwd: &Path, given: Option<PathBuf>) -> Result<PathBuf, Failure> {
    Paths::new(cwd.to_path_buf()).resolve(given, ".learnlink", "--state-dir")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_in_the_root_and_given_paths_in_the_current_directory() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("infra")).unwrap();
        std::fs::write(root.path().join("infra/template.yaml"), "x").unwrap();
        let sub = root.path().join("cli");
        std::fs::create_dir_all(&sub).unwrap();
        assert_eq!(state_dir_for(&sub, None).unwrap(), root.path().join(".learnlink"));
        assert_eq!(state_dir_for(&sub, Some("st".into())).unwrap(), sub.join("st"));
        assert_eq!(state_dir_for(&sub, Some("/abs/st".into())).unwrap(), PathBuf::from("/abs/st"));
        let p = Paths::new(sub.clone());
        assert_eq!(p.resolve(None, "target/debug", "--bin-dir").unwrap(), root.path().join("target/debug"));
        let elsewhere = tempfile::tempdir().unwrap();
        let e = state_dir_for(elsewhere.path(), None).unwrap_err();
        assert_eq!(e.exit, 1);
        assert!(e.message.contains("--state-dir"), "{}", e.message);
    }
}

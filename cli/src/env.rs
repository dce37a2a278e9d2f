//! Finding the admin API: `--api-url` / `LEARNLINK_API_URL` and `--token` /
//! `LEARNLINK_ADMIN_TOKEN`; otherwise `.learnlink/stack.env` (written by
//! `make up`), looked for from the current directory upwards or named by
//! `--stack-env` / `LEARNLINK_STACK_ENV`.
//!
//! The token of a stack.env is only used for the API URL of that same
//! stack.env: an `--api-url` pointing elsewhere never receives the local token.

use crate::error::{Failure, exit};
use secrecy::SecretString;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use url::Url;

/// The sentence when no API can be found.
pub const NO_API: &str = "no learnlink API found: run `make up` or set LEARNLINK_API_URL";

/// Where the API address came from (for hints).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `--api-url` or `LEARNLINK_API_URL`.
    Explicit,
    /// A stack.env file.
    StackEnv(PathBuf),
}

/// The API to talk to.
#[derive(Debug)]
pub struct Target {
    pub url: Url,
    pub token: Option<SecretString>,
    pub origin: Origin,
}

/// `KEY=VALUE` lines; `#` comments and blank lines are skipped, values may be quoted.
pub fn parse_stack_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("export ").unwrap_or(l).split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|x| x.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
                .unwrap_or(v);
            (k.trim().to_string(), v.to_string())
        })
        .collect()
}

/// `.learnlink/stack.env` in `start` or the nearest of its ancestors.
pub fn find_stack_env(start: &Path) -> Option<PathBuf> {
    start.ancestors().map(|d| d.join(".learnlink").join("stack.env")).find(|p| p.is_file())
}

/// An API URL: http or https with a host.
pub fn parse_api_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s.trim()).map_err(|e| format!("{s:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() || url.cannot_be_a_base() {
        return Err(format!("{s:?} is not an http(s) URL"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the API URL must not carry credentials: use --token".into());
    }
    Ok(url)
}

fn same_api(a: &Url, b: &Url) -> bool {
    let norm = |u: &Url| {
        format!(
            "{}://{}:{}{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port_or_known_default().unwrap_or(0),
            u.path().trim_end_matches('/')
        )
    };
    norm(a) == norm(b)
}

fn nonempty(s: Option<String>) -> Option<String> {
    s.filter(|v| !v.trim().is_empty())
}

/// Resolve the target from the flags (already merged with their environment
/// variables by clap) and the stack.env found from `cwd`.
pub fn resolve(
    api_url: Option<Url>,
    token: Option<String>,
    stack_env: Option<PathBuf>,
    cwd: &Path,
) -> Result<Target, Failure> {
    let token = nonempty(token);
    let explicit_file = stack_env.is_some();
    let file = match stack_env {
        Some(p) => Some(if p.is_absolute() { p } else { cwd.join(p) }),
        None => find_stack_env(cwd),
    };
    let read = |p: &Path| -> Result<BTreeMap<String, String>, Failure> {
        std::fs::read_to_string(p).map(|t| parse_stack_env(&t)).map_err(|e| {
            Failure::new(exit::UNAVAILABLE, "no_api", format!("{NO_API} ({} cannot be read: {e})", p.display()))
        })
    };

    if let Some(url) = api_url {
        // The token of a stack.env only goes to that stack's own API.
        let token = match token {
            Some(t) => Some(t),
            None => match &file {
                Some(p) if p.is_file() => {
                    let env = read(p)?;
                    let same = env
                        .get("LEARNLINK_API_URL")
                        .and_then(|u| Url::parse(u).ok())
                        .is_some_and(|u| same_api(&u, &url));
                    if same { nonempty(env.get("LEARNLINK_ADMIN_TOKEN").cloned()) } else { None }
                }
                _ => None,
            },
        };
        return Ok(Target { url, token: token.map(SecretString::from), origin: Origin::Explicit });
    }

    let Some(path) = file else {
        return Err(Failure::new(exit::UNAVAILABLE, "no_api", NO_API));
    };
    if !path.is_file() {
        let why = if explicit_file { format!(" ({} does not exist)", path.display()) } else { String::new() };
        return Err(Failure::new(exit::UNAVAILABLE, "no_api", format!("{NO_API}{why}")));
    }
    let env = read(&path)?;
    let Some(url) = nonempty(env.get("LEARNLINK_API_URL").cloned()) else {
        return Err(Failure::new(
            exit::UNAVAILABLE,
            "no_api",
            format!("{NO_API} ({} has no LEARNLINK_API_URL)", path.display()),
        ));
    };
    let url = parse_api_url(&url)
        .map_err(|e| Failure::new(exit::UNAVAILABLE, "no_api", format!("{NO_API} ({}: {e})", path.display())))?;
    let token = token.or_else(|| nonempty(env.get("LEARNLINK_ADMIN_TOKEN").cloned()));
    Ok(Target { url, token: token.map(SecretString::from), origin: Origin::StackEnv(path) })
}

/// The workspace root: the nearest directory, from `start` upwards, that has
/// `infra/template.yaml`.
pub fn find_workspace_root(start: &Path) -> Option<PathBuf> {
    start.ancestors().find(|d| d.join("infra").join("template.yaml").is_file()).map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn write_env(dir: &Path, url: &str, token: &str) -> PathBuf {
        let d = dir.join(".learnlink");
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("stack.env");
        std::fs::write(
            &p,
            format!("# written by `learnlink-local up`\nAWS_ENDPOINT_URL=http://127.0.0.1:4566\nLEARNLINK_API_URL={url}\nLEARNLINK_ADMIN_TOKEN={token}\n"),
        )
        .unwrap();
        p
    }

    #[test]
    fn stack_env_lines_are_parsed() {
        let env = parse_stack_env("# c\n\nA=1\n B = two \nexport C=\"three\"\nD='4'\nbroken\nE=a=b\n");
        assert_eq!(env.get("A").map(String::as_str), Some("1"));
        assert_eq!(env.get("B").map(String::as_str), Some("two"));
        assert_eq!(env.get("C").map(String::as_str), Some("three"));
        assert_eq!(env.get("D").map(String::as_str), Some("4"));
        assert_eq!(env.get("E").map(String::as_str), Some("a=b"));
        assert_eq!(env.len(), 5);
    }

    #[test]
    fn the_stack_env_is_found_from_a_subdirectory() {
        let root = tempfile::tempdir().unwrap();
        let p = write_env(root.path(), "http://127.0.0.1:4569", "tok-abc");
        let sub = root.path().join("a/b/c");
        std::fs::create_dir_all(&sub).unwrap();
        assert_eq!(find_stack_env(&sub), Some(p.clone()));
        let t = resolve(None, None, None, &sub).unwrap();
        assert_eq!(t.url.as_str(), "http://127.0.0.1:4569/");
        assert_eq!(t.token.as_ref().map(|s| s.expose_secret().to_string()).as_deref(), Some("tok-abc"));
        assert_eq!(t.origin, Origin::StackEnv(p));
    }

    #[test]
    fn nothing_found_is_exit_7_with_the_sentence() {
        let root = tempfile::tempdir().unwrap();
        let e = resolve(None, None, None, root.path()).unwrap_err();
        assert_eq!(e.exit, 7);
        assert_eq!(e.message, NO_API);
        let e = resolve(None, None, Some("nope/stack.env".into()), root.path()).unwrap_err();
        assert_eq!(e.exit, 7);
        assert!(e.message.starts_with(NO_API) && e.message.contains("does not exist"), "{}", e.message);
        std::fs::create_dir_all(root.path().join(".learnlink")).unwrap();
        std::fs::write(root.path().join(".learnlink/stack.env"), "LMS_URL=http://127.0.0.1:1\n").unwrap();
        let e = resolve(None, None, None, root.path()).unwrap_err();
        assert!(e.message.contains("has no LEARNLINK_API_URL"), "{}", e.message);
    }

    #[test]
    fn flags_win_and_the_local_token_stays_with_its_own_api() {
        let root = tempfile::tempdir().unwrap();
        write_env(root.path(), "http://127.0.0.1:4569", "tok-local");
        let same = parse_api_url("http://127.0.0.1:4569/").unwrap();
        let t = resolve(Some(same), None, None, root.path()).unwrap();
        assert_eq!(t.token.map(|s| s.expose_secret().to_string()).as_deref(), Some("tok-local"));
        assert_eq!(t.origin, Origin::Explicit);
        let other = parse_api_url("https://api.example.com/prod").unwrap();
        let t = resolve(Some(other.clone()), None, None, root.path()).unwrap();
        assert!(t.token.is_none());
        let t = resolve(Some(other), Some("tok-flag".into()), None, root.path()).unwrap();
        assert_eq!(t.token.map(|s| s.expose_secret().to_string()).as_deref(), Some("tok-flag"));
        let t = resolve(None, Some("tok-flag".into()), None, root.path()).unwrap();
        assert_eq!(t.token.map(|s| s.expose_secret().to_string()).as_deref(), Some("tok-flag"));
        let t = resolve(None, Some("  ".into()), None, root.path()).unwrap();
        assert_eq!(t.token.map(|s| s.expose_secret().to_string()).as_deref(), Some("tok-local"));
    }

    #[test]
    fn api_urls_must_be_http_with_a_host_and_no_credentials() {
        assert!(parse_api_url("http://127.0.0.1:4569").is_ok());
        assert!(parse_api_url("https://x.execute-api.us-east-1.amazonaws.com/prod").is_ok());
        assert!(parse_api_url("ftp://x").is_err());
        assert!(parse_api_url("localhost:4569").is_err());
        assert!(parse_api_url("http://user:pw@x").is_err());
        assert!(parse_api_url("nonsense").is_err());
    }

    #[test]
    fn the_workspace_root_is_where_the_template_is() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("infra")).unwrap();
        std::fs::write(root.path().join("infra/template.yaml"), "x").unwrap();
        let sub = root.path().join("cli/src");
        std::fs::create_dir_all(&sub).unwrap();
        assert_eq!(find_workspace_root(&sub).as_deref(), Some(root.path()));
        let elsewhere = tempfile::tempdir().unwrap();
        assert_eq!(find_workspace_root(elsewhere.path()), None);
    }
}

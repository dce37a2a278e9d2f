//! Run last (after the rest of the suite, see the Makefile): no access token,
//! refresh token, webhook secret or admin token in any log line written by
//! any stack of the suite — functions, runtime, emulators, moto — and no
//! panic: a panic is a bug, even one the runtime survives.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use learnlink_e2e::root;

/// Shapes of the secrets the suite's stacks handle: Salesforce access tokens
/// (`<org id>!AQ…`) and refresh tokens (`5Aep861…`) as the emulator mints
/// them like Salesforce, the tests' webhook secrets (`whsec-…`) and admin
/// tokens (`test-admin-…`, `ll-admin-…`).
fn secret_at(line: &str) -> Option<&'static str> {
    let tok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    // (what precedes the secret, how many token characters must follow)
    const SHAPES: [(&str, usize); 5] =
        [("!AQ", 20), ("5Aep861", 20), ("whsec-", 10), ("test-admin-", 16), ("ll-admin-", 16)];
    for (needle, min) in SHAPES {
        let mut from = 0;
        while let Some(pos) = line[from..].find(needle) {
            let start = from + pos + needle.len();
            if line[start..].chars().take_while(|c| tok(*c)).count() >= min {
                return Some(needle);
            }
            from = start;
        }
    }
    None
}

fn cut(line: &str) -> String {
    line.chars().take(200).collect()
}

#[test]
fn no_secret_in_any_log_line() {
    let base = root().join("target/e2e");
    let mut files = 0;
    let mut lines = 0;
    let mut leaks = Vec::new();
    let mut panics = Vec::new();
    let mut stack = vec![base];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "log") {
                files += 1;
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                let mut it = text.lines().peekable();
                while let Some(l) = it.next() {
                    lines += 1;
                    if l.contains("panicked at") {
                        let why = it.peek().copied().unwrap_or_default();
                        panics.push(format!("{}: {} {}", p.display(), cut(l), cut(why)));
                    }
                    if let Some(kind) = secret_at(l) {
                        leaks.push(format!("{} ({kind}): {}", p.display(), cut(l)));
                    }
                }
            }
        }
    }
    println!("scanned {lines} log lines in {files} files");
    assert!(files > 0, "no logs to scan: run the whole suite first (make test)");
    assert!(leaks.is_empty(), "secrets in logs:\n{}", leaks.join("\n"));
    assert!(panics.is_empty(), "panics in logs:\n{}", panics.join("\n"));
}

#[test]
fn the_scanner_finds_what_it_looks_for() {
    assert_eq!(secret_at("token 00DEm0000000001!AQFW5xd0SnvIZSLkhaQkDhWm00ykKo6iNnW6EzXLio"), Some("!AQ"));
    assert_eq!(secret_at(r#"{"refresh_token":"5Aep861MYFLX92UbSDM1EcYn5D91WakVx4eiC3axqCVDdlF"}"#), Some("5Aep861"));
    assert_eq!(secret_at("secret whsec-e2e-0123456789"), Some("whsec-"));
    assert_eq!(secret_at("admin test-admin-0123456789abcdef0123"), Some("test-admin-"));
    assert_eq!(secret_at("the whsec- prefix"), None);
    assert_eq!(secret_at("nothing to see; a ! AQ here"), None);
}

//! Clients written by others — jsforce and the `sf` CLI — against the
//! Salesforce emulator (`tests/conformance/*.test.mjs`, run with `node --test`).

use learnlink_e2e::{SfEmulator, root};

#[test]
fn jsforce_and_the_sf_cli_work_against_the_emulator() {
    let dir = root().join("tests/conformance");
    assert!(
        dir.join("node_modules/jsforce").exists() && dir.join("node_modules/.bin/sf").exists(),
        "the conformance packages are not installed: run `make setup`"
    );
    let emu = SfEmulator::start().expect("the Salesforce emulator starts");
    let out = std::process::Command::new("node")
        .args(["--test", "--test-concurrency=1", "--test-reporter=spec"])
        .current_dir(&dir)
        .env("SALESFORCE_URL", &emu.url)
        .output()
        .expect("node runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{text}");
    assert!(out.status.success(), "conformance tests failed:\n{text}");
}

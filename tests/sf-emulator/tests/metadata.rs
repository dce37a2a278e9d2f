//! The schema of learnlink's objects comes from the SFDX package in infra/salesforce:
//! a field removed from (or added to) a copy of the package disappears from (or
//! appears in) describe; a broken package fails the start; the binary finds the
//! workspace's package on its own.

// Test code: helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

fn package() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../infra/salesforce").canonicalize().unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

fn describe_fields(d: &Value) -> Vec<String> {
    d["fields"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn schema_comes_from_the_package() {
    let emu = start().await;
    let org = emu.admin_get("/org").await;
    let src = org["metadata_source"].as_str().unwrap();
    assert!(src.ends_with("infra/salesforce"), "{src}");
    let c = emu.connect().await;
    let d = emu.api("GET", "/sobjects/LMS_Certification__c/describe", &c.access_token, None).await.body;
    let fields = describe_fields(&d);
    for f in ["LMS_Certification_Id__c", "Contact__c", "Name", "Issued_At__c", "Expires_At__c", "LMS_Updated_At__c"] {
        assert!(fields.contains(&f.to_owned()), "{f} in {fields:?}");
    }
}

#[tokio::test]
async fn a_field_removed_from_the_package_disappears() {
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("salesforce");
    copy_dir(&package(), &copy);
    let fields = copy.join("force-app/main/default/objects/LMS_Enrollment__c/fields");
    std::fs::remove_file(fields.join("Score__c.field-meta.xml")).unwrap();
    std::fs::write(
        fields.join("Grade__c.field-meta.xml"),
        r#"<?xml version="1.0" encoding="UTF-8"?>
<CustomField xmlns="http://soap.sforce.com/2006/04/metadata">
    <fullName>Grade__c</fullName>
    <label>Grade</label>
    <length>2</length>
    <required>false</required>
    <type>Text</type>
</CustomField>
"#,
    )
    .unwrap();
    let emu =
        start_with(sf_emulator::Config { metadata_dir: Some(copy.clone()), ..sf_emulator::Config::default() }).await;
    let c = emu.connect().await;
    let d = emu.api("GET", "/sobjects/LMS_Enrollment__c/describe", &c.access_token, None).await.body;
    let names = describe_fields(&d);
    assert!(!names.contains(&"Score__c".to_owned()), "{names:?}");
    assert!(names.contains(&"Grade__c".to_owned()));
    emu.seed_contacts(1).await;
    let mut e = enrollment("E1", "L0", "Enrolled");
    e.as_object_mut().unwrap().remove("Score__c");
    e["Grade__c"] = json!("ABC");
    let mut with_score = enrollment("E2", "L0", "Enrolled");
    with_score["Score__c"] = json!(10);
    let (_, res) = emu
        .upsert(&c.access_token, "LMS_Enrollment__c", "LMS_Enrollment_Id__c", json!({"records": [e, with_score]}))
        .await;
    assert_eq!(first_error(&res[0]).0, "STRING_TOO_LONG", "Grade__c is Text(2)");
    assert_eq!(
        first_error(&res[1]),
        ("INVALID_FIELD", "No such column 'Score__c' on sobject of type LMS_Enrollment__c")
    );
    let (status, body) = emu.query(&c.access_token, "SELECT Score__c FROM LMS_Enrollment__c").await;
    assert_eq!((status, body[0]["errorCode"].as_str()), (400, Some("INVALID_FIELD")));
}

#[tokio::test]
async fn a_broken_package_fails_the_start() {
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("salesforce");
    copy_dir(&package(), &copy);
    std::fs::write(
        copy.join("force-app/main/default/objects/LMS_Enrollment__c/fields/Status__c.field-meta.xml"),
        "<CustomField><fullName>Status__c",
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = sf_emulator::serve(
        listener,
        sf_emulator::Config { metadata_dir: Some(copy), ..sf_emulator::Config::default() },
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("Status__c"), "{err}");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = sf_emulator::serve(
        listener,
        sf_emulator::Config { metadata_dir: Some(tmp.path().join("missing")), ..sf_emulator::Config::default() },
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("sfdx-project.json"), "{err}");
}

/// A started binary, stopped (by its own pid) and reaped when dropped.
#[derive(Debug)]
struct Proc(std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary; returns it and its base URL (bounded wait).
fn spawn_binary(args: &[&str], env: &[(&str, &Path)]) -> Result<(Proc, String), String> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sf-emulator"));
    cmd.args(["--host", "127.0.0.1", "--port", "0"]).args(args).stdout(Stdio::piped()).stderr(Stdio::null());
    cmd.env_remove("LEARNLINK_SF_METADATA");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut proc = Proc(cmd.spawn().unwrap());
    let stdout = proc.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(20)).map_err(|_| "timeout".to_owned())?;
    match line.trim().strip_prefix("listening on ") {
        Some(url) => Ok((proc, url.to_owned())),
        None => Err(format!("no ready line: {line:?}")),
    }
}

#[tokio::test]
async fn the_binary_finds_the_workspace_package_and_takes_flags() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (proc, base) = spawn_binary(&[], &[]).unwrap();
    let org: Value = reqwest::get(format!("{base}/__emulator/org")).await.unwrap().json().await.unwrap();
    drop(proc);
    let src = PathBuf::from(org["metadata_source"].as_str().unwrap());
    assert_eq!(src.canonicalize().unwrap(), package());

    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("pkg");
    copy_dir(&package(), &copy);
    let (proc, base) = spawn_binary(&["--metadata", copy.to_str().unwrap()], &[]).unwrap();
    let org: Value = reqwest::get(format!("{base}/__emulator/org")).await.unwrap().json().await.unwrap();
    drop(proc);
    assert_eq!(PathBuf::from(org["metadata_source"].as_str().unwrap()), copy);

    // LEARNLINK_SF_METADATA naming no package: the binary refuses to start.
    let missing = tmp.path().join("nothing-here");
    let err = spawn_binary(&[], &[("LEARNLINK_SF_METADATA", missing.as_path())]).unwrap_err();
    assert!(err.contains("no ready line"), "{err}");
}

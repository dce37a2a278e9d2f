use super::*;
use serde_json::json;

fn minimal() -> Value {
    json!({"name": "Acme", "salesforce": {"environment": "production", "client_id": "3MVG9"}})
}

fn full() -> Value {
    json!({
        "name": "Acme Academy",
        "paused": false,
        "salesforce": {"environment": {"my_domain": "https://acme.my.salesforce.com"}, "client_id": "3MVG9"},
        "webhooks": {"sources": [{"name": "lms", "dialect": "canonical", "secrets": ["0123456789abcdef0123"]}]},
        "sync": {
            "domain_filter": {"mode": "allow", "domains": ["acme.com", "*.acme.io"]},
            "department_scope": {"department_id": "D7", "include_sub_departments": true},
            "matching_field": "Email",
            "create_contacts": true,
            "move_contacts": false,
            "account_placement": {"rule": "department_name"},
            "mappings": {"enrollment": [{"target": "Course_Title__c", "primary": "course_title", "secondary": "course_id",
                                         "transforms": [{"op": "trim"}, {"op": "value_table", "table": {"a": "b"}, "default": "x"}]}]}
        },
        "import": {
            "source": "salesforce_user", "schedule": "cron(0 3 * * ? *)", "lookback_minutes": 5,
            "mappings": [{"target": "email", "primary": "Email", "transforms": [{"op": "lowercase"}]}],
            "rules": {"combine": "any", "action": "skip", "conditions": [
                {"field": "CompanyName", "operator": "contains", "value": "SkyPrep"},
                {"field": "Department", "operator": "in", "value": ["Ops", "HR"]},
                {"field": "Title", "operator": "is_blank"}]},
            "termination_action": "disable_login", "deactivate_missing": true,
            "group_sync": {"enabled": true, "field": "Department", "remove_missing": true},
            "welcome_email": true
        },
        "backfill": {"bulk_threshold": 2000, "shard_size": 10000, "kill_switch": true, "relink_overlap_minutes": 60},
        "api_budget": {"max_share_of_remaining": 0.5}
    })
}

#[test]
fn minimal_and_full_documents_are_valid() {
    let c = validate(&minimal()).unwrap();
    assert_eq!(c.sync.matching_field(), "Email");
    assert_eq!(c.backfill.bulk_threshold(), 2_000);
    assert_eq!(c.import.schedule(), "cron(0 3 * * ? *)");
    let c = validate(&full()).unwrap();
    assert_eq!(c.import.rules.unwrap().conditions.len(), 3);
}

#[test]
fn every_violation_is_named_with_its_path() {
    let mut doc = full();
    doc["name"] = json!("");
    doc["salesforce"]["environment"] = json!("staging");
    doc["sync"]["matching_field"] = json!("1bad");
    doc["backfill"]["shard_size"] = json!(5);
    doc["api_budget"]["max_share_of_remaining"] = json!(1.5);
    doc["surprise"] = json!(true);
    doc["webhooks"]["sources"][0]["secrets"] = json!(["short"]);
    let v = validate(&doc).unwrap_err();
    let paths: Vec<&str> = v.iter().map(|x| x.path.as_str()).collect();
    for p in [
        "/name",
        "/salesforce/environment",
        "/sync/matching_field",
        "/backfill/shard_size",
        "/api_budget/max_share_of_remaining",
        "",
        "/webhooks/sources/0/secrets/0",
    ] {
        assert!(paths.contains(&p), "{p} missing from {v:#?}");
    }
    assert!(v.iter().find(|x| x.path.is_empty()).unwrap().message.contains("surprise"), "{v:#?}");
}

#[test]
fn rules_beyond_the_schema() {
    let mut doc = full();
    doc["webhooks"]["sources"] =
        json!([{"name": "lms", "dialect": "canonical"}, {"name": "lms", "dialect": "canonical"}]);
    doc["sync"]["account_placement"] = json!({"rule": "default_account"});
    doc["sync"]["domain_filter"] = json!({"mode": "deny", "domains": []});
    doc["import"]["schedule"] = json!("cron(0 3 * * * *)");
    doc["import"]["rules"]["conditions"] = json!([
        {"field": "A", "operator": "is_blank", "value": "x"},
        {"field": "B", "operator": "in", "value": "x"},
        {"field": "C", "operator": "equals"},
        {"field": "D", "operator": "equals", "value": ["x"]}]);
    doc["import"]["group_sync"] = json!({"enabled": true});
    let v = validate(&doc).unwrap_err();
    let paths: Vec<&str> = v.iter().map(|x| x.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/webhooks/sources/1/name",
            "/sync/account_placement/default_account_id",
            "/sync/domain_filter/domains",
            "/import/schedule",
            "/import/rules/conditions/0/value",
            "/import/rules/conditions/1/value",
            "/import/rules/conditions/2/value",
            "/import/rules/conditions/3/value",
            "/import/group_sync/field",
        ],
        "{v:#?}"
    );
}

#[test]
fn secrets_are_stripped_and_never_serialized() {
    let (doc, secrets) = strip_secrets(&full());
    assert!(doc.pointer("/webhooks/sources/0/secrets").is_none());
    assert_eq!(secrets["lms"], vec!["0123456789abcdef0123".to_string()]);
    let c = validate(&full()).unwrap();
    assert!(!serde_json::to_string(&c).unwrap().contains("0123456789abcdef0123"));
}

#[test]
fn diff_names_each_change() {
    let a = full();
    let mut b = full();
    b["sync"]["create_contacts"] = json!(false);
    b["sync"]["domain_filter"]["domains"] = json!(["acme.com"]);
    b["paused"] = json!(true);
    b.as_object_mut().unwrap().remove("api_budget");
    b["import"]["welcome/email"] = json!(1);
    let d = diff(&a, &b);
    let rendered: Vec<(String, ChangeOp)> = d.iter().map(|c| (c.path.clone(), c.op)).collect();
    assert_eq!(
        rendered,
        [
            ("/paused".to_string(), ChangeOp::Changed),
            ("/sync/domain_filter/domains/1".to_string(), ChangeOp::Removed),
            ("/sync/create_contacts".to_string(), ChangeOp::Changed),
            ("/import/welcome~1email".to_string(), ChangeOp::Added),
            ("/api_budget".to_string(), ChangeOp::Removed),
        ]
    );
    assert!(diff(&a, &a).is_empty());
}

#[test]
fn the_schema_is_valid_json_schema() {
    let schema: Value = serde_json::from_str(SCHEMA).unwrap();
    assert!(jsonschema::validator_for(&schema).is_ok());
}

proptest::proptest! {
    #[test]
    fn validation_never_panics(s in "\\PC{0,200}") {
        let doc = json!({"name": s.clone(), "salesforce": {"environment": {"my_domain": s.clone()}, "client_id": s}});
        let _ = validate(&doc);
    }
}

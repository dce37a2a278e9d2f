use super::*;
use crate::config::{
    Combine, Condition, ConditionValue, GroupSync, ImportRules, Mapping, Operator, RuleAction, TerminationAction,
    Transform,
};
use serde_json::json;

fn rec(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

fn settings(source: ImportSource) -> ImportSettings {
    ImportSettings { source, ..ImportSettings::default() }
}

fn user(id: &str, email: Option<&str>) -> Map<String, Value> {
    rec(json!({
        "attributes": {"type": "User"},
        "Id": id, "SystemModstamp": "2026-11-20T10:00:00.000+0000", "LastModifiedById": "005000000000001AAA",
        "IsActive": true, "Email": email, "FirstName": "Ada", "LastName": "Lovelace", "Title": " Engineer ",
        "CompanyName": "Acme SkyPrep Ltd", "Department": "R&D",
    }))
}

fn ctx(source: Source) -> PlanContext<'static> {
    PlanContext {
        source,
        integration_user: Some("005000000000009"),
        today: time::macros::date!(2026 - 11 - 23),
        group_names: None,
    }
}

fn cond(field: &str, operator: Operator, value: Option<ConditionValue>) -> Condition {
    Condition { field: field.into(), operator, value }
}

fn one(s: &str) -> Option<ConditionValue> {
    Some(ConditionValue::One(s.into()))
}

#[test]
fn salesforce_and_rfc3339_timestamps_parse_to_the_same_instant() {
    let a = parse_timestamp("2026-11-20T10:00:00.000+0000").unwrap();
    let b = parse_timestamp("2026-11-20T10:00:00Z").unwrap();
    let c = parse_timestamp("2026-11-20T12:00:00.000+0200").unwrap();
    assert_eq!(a, b);
    assert_eq!(a, c);
    assert!(parse_timestamp("yesterday").is_none());
    assert_eq!(parse_date("2026-11-20T10:00:00Z"), Some(time::macros::date!(2026 - 11 - 20)));
}

#[test]
fn the_checkpoint_orders_by_time_then_id() {
    let t = parse_timestamp("2026-11-20T10:00:00Z").unwrap();
    let cp = Checkpoint { at: t, id: "005B".into() };
    assert!(cp.covers(t, "005A"));
    assert!(cp.covers(t, "005B"));
    assert!(!cp.covers(t, "005C"));
    assert!(!cp.covers(t + time::Duration::milliseconds(1), "005A"));
    let later = Checkpoint { at: t, id: "005C".into() };
    assert_eq!(Checkpoint::max(Some(later.clone()), Some(cp.clone())), Some(later.clone()));
    assert_eq!(Checkpoint::max(None, Some(cp.clone())), Some(cp));
}

#[test]
fn the_first_query_goes_back_by_the_lookback_with_ge_and_orders_by_stamp_then_id() {
    let mut s = settings(ImportSource::SalesforceUser);
    let cp = Checkpoint { at: parse_timestamp("2026-11-20T10:00:30.500Z").unwrap(), id: "005X".into() };
    let q = run_query(&s, Source::SalesforceUser, Some(&cp)).unwrap();
    assert!(q.contains("WHERE SystemModstamp >= 2026-11-20T09:55:30Z"), "{q}");
    assert!(q.ends_with("ORDER BY SystemModstamp ASC, Id ASC"), "{q}");
    assert!(q.starts_with("SELECT Id, SystemModstamp, LastModifiedById, IsActive, Email"), "{q}");
    s.lookback_minutes = Some(0);
    let q = run_query(&s, Source::SalesforceUser, Some(&cp)).unwrap();
    assert!(q.contains(">= 2026-11-20T10:00:30Z"), "{q}");
    assert!(!run_query(&s, Source::SalesforceUser, None).unwrap().contains("WHERE"));
    let r = resume_query(&s, Source::SalesforceContact, &cp).unwrap();
    assert!(r.contains("FROM Contact WHERE SystemModstamp >= 2026-11-20T10:00:30Z"), "{r}");
}

#[test]
fn a_field_name_that_is_not_an_api_name_is_refused_not_injected() {
    let mut s = settings(ImportSource::SalesforceUser);
    s.mappings.push(Mapping {
        target: "fields.x".into(),
        primary: "Name FROM Account --".into(),
        secondary: None,
        transforms: vec![],
    });
    assert!(run_query(&s, Source::SalesforceUser, None).is_err());
}

#[test]
fn the_resumed_query_drops_what_the_checkpoint_covers_by_id_at_equal_stamps() {
    let mk = |id: &str, at: &str| rec(json!({"Id": id, "SystemModstamp": at}));
    let page = vec![
        mk("005A", "2026-11-20T10:00:00.000+0000"),
        mk("005B", "2026-11-20T10:00:00.000+0000"),
        mk("005C", "2026-11-20T10:00:00.000+0000"),
        mk("005A", "2026-11-20T10:00:00.001+0000"),
    ];
    let cp = Checkpoint { at: parse_timestamp("2026-11-20T10:00:00Z").unwrap(), id: "005B".into() };
    let kept: Vec<&str> =
        after(Source::SalesforceUser, &page, Some(&cp)).iter().map(|r| r["Id"].as_str().unwrap()).collect();
    assert_eq!(kept, vec!["005C", "005A"]);
    assert_eq!(page_checkpoint(Source::SalesforceUser, &page).unwrap().id, "005A");
}

#[test]
fn hris_modified_after_is_exclusive_and_looks_back() {
    let s = settings(ImportSource::Hris);
    let cp = Checkpoint { at: parse_timestamp("2026-11-20T10:00:00Z").unwrap(), id: "e1".into() };
    assert_eq!(hris_modified_after(&s, Some(&cp)).unwrap(), "2026-11-20T09:54:59.999Z");
    assert_eq!(hris_modified_after(&s, None), None);
}

#[test]
fn default_mapping_imports_a_user() {
    let s = settings(ImportSource::SalesforceUser);
    let a = plan_person(&s, &ctx(Source::SalesforceUser), &user("005000000000123AAA", Some(" ada@example.com ")));
    let PersonAction::Import { learner } = a else { panic!("{a:?}") };
    assert_eq!(learner.external_id, "005000000000123AAA");
    assert_eq!(learner.email, "ada@example.com");
    assert_eq!((learner.first_name.as_str(), learner.last_name.as_str()), ("Ada", "Lovelace"));
    assert_eq!(learner.fields.get("title").map(String::as_str), Some("Engineer"));
    assert_eq!(learner.fields.get("department").map(String::as_str), Some("R&D"));
    assert!(learner.active);
    assert_eq!(learner.groups, None);
}

#[test]
fn secondary_field_is_used_when_the_primary_is_blank_and_transforms_apply_in_order() {
    let mut s = settings(ImportSource::Hris);
    s.mappings = vec![Mapping {
        target: "email".into(),
        primary: "work_email".into(),
        secondary: Some("personal_email".into()),
        transforms: vec![Transform::Trim, Transform::Lowercase],
    }];
    let r = rec(
        json!({"id": "e1", "modified_at": "2026-11-20T10:00:00Z", "work_email": "  ", "personal_email": " Ada@Example.COM ",
        "first_name": "Ada", "last_name": "L", "employment_status": "ACTIVE"}),
    );
    let PersonAction::Import { learner } = plan_person(&s, &ctx(Source::Hris), &r) else { panic!() };
    assert_eq!(learner.email, "ada@example.com");
}

#[test]
fn value_table_date_format_and_uppercase_transforms() {
    let mut table = std::collections::BTreeMap::new();
    table.insert("R&D".to_string(), "dep-rnd".to_string());
    let vt = Transform::ValueTable { table: table.clone(), default: None };
    assert_eq!(mapping::apply(&vt, "r&d ".into()), Some("dep-rnd".into()));
    assert_eq!(mapping::apply(&vt, "Sales".into()), None);
    let vt_default = Transform::ValueTable { table, default: Some("dep-other".into()) };
    assert_eq!(mapping::apply(&vt_default, "Sales".into()), Some("dep-other".into()));
    let df = Transform::DateFormat { format: "%d/%m/%Y".into() };
    assert_eq!(mapping::apply(&df, "2026-11-20T10:00:00.000+0000".into()), Some("20/11/2026".into()));
    assert_eq!(mapping::apply(&df, "2026-01-02".into()), Some("02/01/2026".into()));
    assert_eq!(mapping::apply(&df, "not a date".into()), None);
    assert_eq!(mapping::apply(&Transform::Uppercase, "abc".into()), Some("ABC".into()));
}

#[test]
fn a_record_without_a_usable_email_is_skipped_with_the_reason() {
    let s = settings(ImportSource::SalesforceUser);
    for (email, expect) in
        [(None, "Email is blank"), (Some("not-an-address"), "has no @"), (Some("a@b"), "not an address")]
    {
        let a = plan_person(&s, &ctx(Source::SalesforceUser), &user("005000000000123AAA", email));
        let PersonAction::Skip { skip: SkipReason::NoEmail { detail }, external_id } = a else { panic!("{a:?}") };
        assert!(detail.contains(expect), "{detail}");
        assert_eq!(external_id.as_deref(), Some("005000000000123AAA"));
    }
}

#[test]
fn a_blank_first_name_falls_back_to_the_email_local_part() {
    let s = settings(ImportSource::SalesforceUser);
    let mut r = user("005000000000123AAA", Some("grace@example.com"));
    r.insert("FirstName".into(), Value::Null);
    let PersonAction::Import { learner } = plan_person(&s, &ctx(Source::SalesforceUser), &r) else { panic!() };
    assert_eq!(learner.first_name, "grace");
}

#[test]
fn changes_by_the_integration_user_are_ignored_in_15_or_18_characters() {
    let s = settings(ImportSource::SalesforceContact);
    let mut r = user("003000000000123AAA", Some("ada@example.com"));
    r.insert("LastModifiedById".into(), json!("005000000000009AAQ"));
    let a = plan_person(&s, &ctx(Source::SalesforceContact), &r);
    assert!(matches!(a, PersonAction::Skip { skip: SkipReason::LoopPrevention, .. }), "{a:?}");
}

#[test]
fn inactive_and_deleted_people_are_deactivated_only_when_asked() {
    let mut s = settings(ImportSource::SalesforceUser);
    let mut r = user("005000000000123AAA", Some("ada@example.com"));
    r.insert("IsActive".into(), json!(false));
    assert!(matches!(
        plan_person(&s, &ctx(Source::SalesforceUser), &r),
        PersonAction::Skip { skip: SkipReason::Inactive, .. }
    ));
    s.deactivate_missing = true;
    assert_eq!(
        plan_person(&s, &ctx(Source::SalesforceUser), &r),
        PersonAction::Deactivate { external_id: "005000000000123AAA".into(), reason: DeactivateReason::Inactive }
    );
    let mut c = settings(ImportSource::SalesforceContact);
    c.deactivate_missing = true;
    let mut d = user("003000000000123AAA", Some("ada@example.com"));
    d.insert("IsDeleted".into(), json!(true));
    assert!(matches!(
        plan_person(&c, &ctx(Source::SalesforceContact), &d),
        PersonAction::Deactivate { reason: DeactivateReason::Deleted, .. }
    ));
    let mut h = settings(ImportSource::Hris);
    h.deactivate_missing = true;
    let e = rec(json!({"id": "e1", "employment_status": "INACTIVE", "work_email": "a@example.com"}));
    assert!(matches!(
        plan_person(&h, &ctx(Source::Hris), &e),
        PersonAction::Deactivate { reason: DeactivateReason::Inactive, .. }
    ));
    let e = rec(
        json!({"id": "e1", "employment_status": "ACTIVE", "remote_was_deleted": true, "work_email": "a@example.com"}),
    );
    assert!(matches!(
        plan_person(&h, &ctx(Source::Hris), &e),
        PersonAction::Deactivate { reason: DeactivateReason::Deleted, .. }
    ));
}

#[test]
fn a_reached_termination_date_disables_login_when_configured() {
    let mut s = settings(ImportSource::Hris);
    let mk = |date: &str| {
        rec(json!({"id": "e1", "employment_status": "ACTIVE", "termination_date": date, "work_email": "a@example.com",
            "first_name": "A", "last_name": "B"}))
    };
    assert!(matches!(plan_person(&s, &ctx(Source::Hris), &mk("2026-11-23T00:00:00Z")), PersonAction::Import { .. }));
    s.termination_action = TerminationAction::DisableLogin;
    assert!(matches!(
        plan_person(&s, &ctx(Source::Hris), &mk("2026-11-23T00:00:00Z")),
        PersonAction::Deactivate { reason: DeactivateReason::Terminated, .. }
    ));
    assert!(matches!(plan_person(&s, &ctx(Source::Hris), &mk("2026-11-24T00:00:00Z")), PersonAction::Import { .. }));
}

#[test]
fn every_rule_operator() {
    let r = rec(
        json!({"CompanyName": "Acme SkyPrep Ltd", "Title": "", "Department": "R&D", "Account": {"Name": "Big Co"}}),
    );
    let cases = [
        (cond("CompanyName", Operator::Equals, one("acme skyprep ltd")), true),
        (cond("CompanyName", Operator::Equals, one("Acme")), false),
        (cond("CompanyName", Operator::NotEquals, one("Acme")), true),
        (cond("CompanyName", Operator::Contains, one("SkyPrep")), true),
        (cond("CompanyName", Operator::NotContains, one("SkyPrep")), false),
        (cond("CompanyName", Operator::StartsWith, one("acme")), true),
        (cond("CompanyName", Operator::StartsWith, one("ltd")), false),
        (cond("CompanyName", Operator::EndsWith, one("LTD")), true),
        (cond("Title", Operator::IsBlank, None), true),
        (cond("Missing", Operator::IsBlank, None), true),
        (cond("Department", Operator::IsNotBlank, None), true),
        (cond("Department", Operator::In, Some(ConditionValue::Many(vec!["Sales".into(), "r&d".into()]))), true),
        (cond("Department", Operator::In, Some(ConditionValue::Many(vec!["Sales".into()]))), false),
        (cond("Account.Name", Operator::Equals, one("Big Co")), true),
    ];
    for (c, expect) in cases {
        assert_eq!(rules::holds(&c, &r), expect, "{}", rules::describe(&c));
    }
}

#[test]
fn rules_combine_with_all_or_any_and_skip_or_import() {
    let r = user("005000000000123AAA", Some("ada@example.com"));
    let skyprep = cond("CompanyName", Operator::Contains, one("SkyPrep"));
    let sales = cond("Department", Operator::Equals, one("Sales"));
    let rules = |combine, action| ImportRules { combine, action, conditions: vec![skyprep.clone(), sales.clone()] };
    assert!(rules_decide(&rules(Combine::Any, RuleAction::Skip), &r).is_some());
    assert!(rules_decide(&rules(Combine::All, RuleAction::Skip), &r).is_none());
    assert!(rules_decide(&rules(Combine::Any, RuleAction::Import), &r).is_none());
    let why = rules_decide(&rules(Combine::All, RuleAction::Import), &r).unwrap();
    assert!(why.contains("import only when CompanyName contains \"SkyPrep\" and Department equals \"Sales\""), "{why}");
    let mut s = settings(ImportSource::SalesforceUser);
    s.rules = Some(ImportRules { combine: Combine::All, action: RuleAction::Skip, conditions: vec![skyprep] });
    let a = plan_person(&s, &ctx(Source::SalesforceUser), &r);
    let PersonAction::Skip { skip: SkipReason::Rule { rule }, .. } = a else { panic!("{a:?}") };
    assert!(rule.contains("skip when CompanyName contains"), "{rule}");
    s.rules.as_mut().unwrap().conditions.clear();
    assert!(matches!(plan_person(&s, &ctx(Source::SalesforceUser), &r), PersonAction::Import { .. }));
}

#[test]
fn groups_come_from_the_mapped_field_or_the_hris_group_ids() {
    let mut s = settings(ImportSource::SalesforceUser);
    s.group_sync = Some(GroupSync { enabled: true, field: Some("Department".into()), remove_missing: true });
    let mut r = user("005000000000123AAA", Some("ada@example.com"));
    r.insert("Department".into(), json!("Sales; EMEA;Sales"));
    let PersonAction::Import { learner } = plan_person(&s, &ctx(Source::SalesforceUser), &r) else { panic!() };
    assert_eq!(learner.groups, Some(vec!["EMEA".to_string(), "Sales".to_string()]));
    let mut h = settings(ImportSource::Hris);
    h.group_sync = Some(GroupSync { enabled: true, field: None, remove_missing: false });
    let names: std::collections::BTreeMap<String, String> =
        [("g1".to_string(), "Engineering".to_string())].into_iter().collect();
    let c = PlanContext { group_names: Some(&names), ..ctx(Source::Hris) };
    let e =
        rec(json!({"id": "e1", "employment_status": "ACTIVE", "work_email": "a@example.com", "groups": ["g1", "g2"]}));
    let PersonAction::Import { learner } = plan_person(&h, &c, &e) else { panic!() };
    assert_eq!(learner.groups, Some(vec!["Engineering".to_string(), "g2".to_string()]));
}

#[test]
fn a_record_without_id_is_skipped() {
    let s = settings(ImportSource::SalesforceUser);
    let a = plan_person(&s, &ctx(Source::SalesforceUser), &rec(json!({"Email": "a@example.com"})));
    assert_eq!(a, PersonAction::Skip { external_id: None, skip: SkipReason::NoId });
}

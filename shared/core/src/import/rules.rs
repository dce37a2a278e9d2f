//! Import rules (SPEC §5.4): conditions on source fields, combined with
//! all/any; the rule's action is skip or import. Text comparisons ignore
//! case and surrounding blanks, as Salesforce's own filters do.

use crate::config::{Combine, Condition, ConditionValue, ImportRules, Operator, RuleAction};
use serde_json::{Map, Value};

/// Whether one condition holds for the record.
pub fn holds(c: &Condition, record: &Map<String, Value>) -> bool {
    let actual = super::field_text(record, &c.field).map(|s| s.trim().to_lowercase()).unwrap_or_default();
    let values: Vec<String> = match &c.value {
        None => Vec::new(),
        Some(ConditionValue::One(v)) => vec![v.trim().to_lowercase()],
        Some(ConditionValue::Many(vs)) => vs.iter().map(|v| v.trim().to_lowercase()).collect(),
    };
    let any = |f: &dyn Fn(&str) -> bool| values.iter().any(|v| f(v));
    match c.operator {
        Operator::IsBlank => actual.is_empty(),
        Operator::IsNotBlank => !actual.is_empty(),
        Operator::Equals | Operator::In => any(&|v| actual == v),
        Operator::NotEquals => !any(&|v| actual == v),
        Operator::Contains => any(&|v| actual.contains(v)),
        Operator::NotContains => !any(&|v| actual.contains(v)),
        Operator::StartsWith => any(&|v| actual.starts_with(v)),
        Operator::EndsWith => any(&|v| actual.ends_with(v)),
    }
}

/// `Some(why)` when the rules skip this record; `None` when it is imported.
/// No conditions: the rules do not apply.
pub fn rules_decide(rules: &ImportRules, record: &Map<String, Value>) -> Option<String> {
    if rules.conditions.is_empty() {
        return None;
    }
    let matched = match rules.combine {
        Combine::All => rules.conditions.iter().all(|c| holds(c, record)),
        Combine::Any => rules.conditions.iter().any(|c| holds(c, record)),
    };
    let joiner = match rules.combine {
        Combine::All => " and ",
        Combine::Any => " or ",
    };
    let described: Vec<String> = rules.conditions.iter().map(describe).collect();
    match (rules.action, matched) {
        (RuleAction::Skip, true) => Some(format!("skip when {}", described.join(joiner))),
        (RuleAction::Import, false) => Some(format!("import only when {}", described.join(joiner))),
        _ => None,
    }
}

/// `Company contains "SkyPrep"`.
pub fn describe(c: &Condition) -> String {
    let op = match c.operator {
        Operator::Equals => "equals",
        Operator::NotEquals => "not_equals",
        Operator::Contains => "contains",
        Operator::NotContains => "not_contains",
        Operator::StartsWith => "starts_with",
        Operator::EndsWith => "ends_with",
        Operator::IsBlank => "is_blank",
        Operator::IsNotBlank => "is_not_blank",
        Operator::In => "in",
    };
    match &c.value {
        None => format!("{} {op}", c.field),
        Some(ConditionValue::One(v)) => format!("{} {op} {v:?}", c.field),
        Some(ConditionValue::Many(vs)) => format!("{} {op} {vs:?}", c.field),
    }
}

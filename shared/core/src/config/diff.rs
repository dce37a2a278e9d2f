//! Differences between two configuration documents, as JSON pointers.

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOp {
    Added,
    Removed,
    Changed,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub path: String,
    pub op: ChangeOp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<Value>,
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Every leaf or subtree that differs between `a` and `b`, in document order.
/// Objects are compared key by key; arrays element by element.
pub fn diff(a: &Value, b: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    walk("", a, b, &mut out);
    out
}

fn walk(path: &str, a: &Value, b: &Value, out: &mut Vec<Change>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                let p = format!("{path}/{}", escape(k));
                match y.get(k) {
                    Some(vb) => walk(&p, va, vb, out),
                    None => out.push(Change { path: p, op: ChangeOp::Removed, from: Some(va.clone()), to: None }),
                }
            }
            for (k, vb) in y {
                if !x.contains_key(k) {
                    let p = format!("{path}/{}", escape(k));
                    out.push(Change { path: p, op: ChangeOp::Added, from: None, to: Some(vb.clone()) });
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            for i in 0..x.len().max(y.len()) {
                let p = format!("{path}/{i}");
                match (x.get(i), y.get(i)) {
                    (Some(va), Some(vb)) => walk(&p, va, vb, out),
                    (Some(va), None) => {
                        out.push(Change { path: p, op: ChangeOp::Removed, from: Some(va.clone()), to: None })
                    }
                    (None, Some(vb)) => {
                        out.push(Change { path: p, op: ChangeOp::Added, from: None, to: Some(vb.clone()) })
                    }
                    (None, None) => {}
                }
            }
        }
        _ if a == b => {}
        _ => out.push(Change {
            path: path.to_string(),
            op: ChangeOp::Changed,
            from: Some(a.clone()),
            to: Some(b.clone()),
        }),
    }
}

//! Reading `infra/template.yaml`: parameters, the SAM `Globals`, resources,
//! and CloudFormation intrinsics (`Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::Join`,
//! `Fn::Select`, `Fn::If` is refused) in short (`!Ref`) and long form.
//!
//! The output is a [`Template`] whose values are JSON with intrinsics in long
//! form, plus helpers to resolve them once physical resources exist.

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("reading {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} is not valid YAML: {source}")]
    Yaml { path: String, source: serde_yaml::Error },
    #[error("template: {0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> TemplateError {
    TemplateError::Invalid(msg.into())
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    pub parameters: BTreeMap<String, Value>,
    pub globals_function: Map<String, Value>,
    pub resources: BTreeMap<String, Resource>,
}

#[derive(Debug, Clone)]
pub struct Resource {
    pub logical_id: String,
    pub kind: String,
    pub properties: Map<String, Value>,
    pub metadata: Map<String, Value>,
}

impl Template {
    pub fn load(path: &Path) -> Result<Template, TemplateError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| TemplateError::Read { path: path.display().to_string(), source })?;
        Template::parse(&text).map_err(|e| match e {
            TemplateError::Yaml { source, .. } => TemplateError::Yaml { path: path.display().to_string(), source },
            other => other,
        })
    }

    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let yaml: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|source| TemplateError::Yaml { path: "<template>".into(), source })?;
        let root = to_json(yaml)?;
        let root = root.as_object().ok_or_else(|| invalid("the template is not a mapping"))?;
        let obj = |k: &str| root.get(k).and_then(Value::as_object).cloned().unwrap_or_default();
        let parameters = obj("Parameters").into_iter().collect();
        let globals_function = obj("Globals").get("Function").and_then(Value::as_object).cloned().unwrap_or_default();
        let mut resources = BTreeMap::new();
        for (id, r) in obj("Resources") {
            let r = r.as_object().ok_or_else(|| invalid(format!("resource {id} is not a mapping")))?;
            let kind = r
                .get("Type")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(format!("resource {id} has no Type")))?
                .to_string();
            let properties = r.get("Properties").and_then(Value::as_object).cloned().unwrap_or_default();
            let metadata = r.get("Metadata").and_then(Value::as_object).cloned().unwrap_or_default();
            resources.insert(id.clone(), Resource { logical_id: id, kind, properties, metadata });
        }
        Ok(Template { parameters, globals_function, resources })
    }

    /// Resources of a type, in logical-id order.
    pub fn of_type<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Resource> + 'a {
        self.resources.values().filter(move |r| r.kind == kind)
    }

    /// Parameter values: defaults, then overrides. Every parameter must end
    /// up with a value; overrides must name declared parameters.
    pub fn parameter_values(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, TemplateError> {
        for k in overrides.keys() {
            if !self.parameters.contains_key(k) {
                return Err(invalid(format!("parameter override {k} names no parameter of the template")));
            }
        }
        let mut out = BTreeMap::new();
        for (name, decl) in &self.parameters {
            let v = match overrides.get(name) {
                Some(v) => v.clone(),
                None => match decl.get("Default") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Number(n)) => n.to_string(),
                    Some(Value::Bool(b)) => b.to_string(),
                    _ => return Err(invalid(format!("parameter {name} has no Default and no override"))),
                },
            };
            if let Some(allowed) = decl.get("AllowedValues").and_then(Value::as_array)
                && !allowed.iter().any(|a| a.as_str() == Some(v.as_str()) || scalar(a) == v)
            {
                return Err(invalid(format!("parameter {name}={v} is not one of its AllowedValues")));
            }
            out.insert(name.clone(), v);
        }
        Ok(out)
    }
}

/// YAML → JSON, turning CloudFormation short-form tags into long form.
fn to_json(v: serde_yaml::Value) -> Result<Value, TemplateError> {
    use serde_yaml::Value as Y;
    Ok(match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                serde_json::Number::from_f64(n.as_f64().unwrap_or(0.0)).map(Value::Number).unwrap_or(Value::Null)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(seq) => Value::Array(seq.into_iter().map(to_json).collect::<Result<_, _>>()?),
        Y::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let k = match k {
                    Y::String(s) => s,
                    other => serde_yaml::to_string(&other).unwrap_or_default().trim().to_string(),
                };
                out.insert(k, to_json(v)?);
            }
            Value::Object(out)
        }
        Y::Tagged(t) => {
            let tag = t.tag.to_string();
            let name = tag.trim_start_matches('!');
            let inner = to_json(t.value)?;
            let long = match name {
                "Ref" => "Ref".to_string(),
                "GetAtt" => {
                    // `!GetAtt A.B` is a string; the long form is [A, B].
                    let arr = match inner {
                        Value::String(s) => {
                            let (a, b) = s
                                .split_once('.')
                                .ok_or_else(|| invalid(format!("!GetAtt {s} must be Resource.Attribute")))?;
                            Value::Array(vec![Value::String(a.into()), Value::String(b.into())])
                        }
                        other => other,
                    };
                    let mut m = Map::new();
                    m.insert("Fn::GetAtt".into(), arr);
                    return Ok(Value::Object(m));
                }
                other => format!("Fn::{other}"),
            };
            let mut m = Map::new();
            m.insert(long, inner);
            Value::Object(m)
        }
    })
}

/// What `Ref` and `Fn::GetAtt` resolve to.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub parameters: BTreeMap<String, String>,
    pub pseudo: BTreeMap<String, String>,
    /// logical id → value of `Ref`
    pub refs: BTreeMap<String, String>,
    /// (logical id, attribute) → value of `Fn::GetAtt`
    pub attrs: BTreeMap<(String, String), String>,
}

impl Context {
    fn lookup_ref(&self, name: &str) -> Result<String, TemplateError> {
        self.parameters
            .get(name)
            .or_else(|| self.pseudo.get(name))
            .or_else(|| self.refs.get(name))
            .cloned()
            .ok_or_else(|| invalid(format!("Ref {name} names nothing known (parameter, pseudo parameter or resource)")))
    }

    fn lookup_attr(&self, id: &str, attr: &str) -> Result<String, TemplateError> {
        self.attrs
            .get(&(id.to_string(), attr.to_string()))
            .cloned()
            .ok_or_else(|| invalid(format!("Fn::GetAtt {id}.{attr} is not known to the local runtime")))
    }

    /// Resolve every intrinsic in `v`.
    pub fn resolve(&self, v: &Value) -> Result<Value, TemplateError> {
        match v {
            Value::Object(m) if m.len() == 1 => {
                let (k, arg) = m.iter().next().map(|(k, v)| (k.as_str(), v)).unwrap_or(("", &Value::Null));
                match k {
                    "Ref" => Ok(Value::String(self.lookup_ref(arg.as_str().unwrap_or_default())?)),
                    "Fn::GetAtt" => {
                        let parts: Vec<String> = match arg {
                            Value::Array(a) => {
                                a.iter().map(|x| self.resolve(x).map(|v| scalar(&v))).collect::<Result<_, _>>()?
                            }
                            Value::String(s) => s.splitn(2, '.').map(str::to_string).collect(),
                            _ => vec![],
                        };
                        if parts.len() != 2 {
                            return Err(invalid(format!("malformed Fn::GetAtt {arg}")));
                        }
                        Ok(Value::String(self.lookup_attr(&parts[0], &parts[1])?))
                    }
                    "Fn::Sub" => {
                        let (text, vars) = match arg {
                            Value::String(s) => (s.clone(), Map::new()),
                            Value::Array(a) if a.len() == 2 => (
                                a[0].as_str().unwrap_or_default().to_string(),
                                a[1].as_object().cloned().unwrap_or_default(),
                            ),
                            _ => return Err(invalid(format!("malformed Fn::Sub {arg}"))),
                        };
                        Ok(Value::String(self.sub(&text, &vars)?))
                    }
                    "Fn::Join" => {
                        let a = arg.as_array().filter(|a| a.len() == 2).ok_or_else(|| invalid("malformed Fn::Join"))?;
                        let sep = a[0].as_str().unwrap_or_default();
                        let items = self.resolve(&a[1])?;
                        let items = items.as_array().cloned().unwrap_or_default();
                        Ok(Value::String(items.iter().map(scalar).collect::<Vec<_>>().join(sep)))
                    }
                    "Fn::Select" => {
                        let a =
                            arg.as_array().filter(|a| a.len() == 2).ok_or_else(|| invalid("malformed Fn::Select"))?;
                        let idx =
                            scalar(&self.resolve(&a[0])?).parse::<usize>().map_err(|_| invalid("Fn::Select index"))?;
                        let list = self.resolve(&a[1])?;
                        list.as_array()
                            .and_then(|l| l.get(idx).cloned())
                            .ok_or_else(|| invalid("Fn::Select index out of range"))
                    }
                    k if k.starts_with("Fn::") => Err(invalid(format!(
                        "{k} is not supported by the local runtime; keep the template to Ref, GetAtt, Sub, Join, Select"
                    ))),
                    _ => Ok(Value::Object(m.iter().map(|(k, v)| Ok((k.clone(), self.resolve(v)?))).collect::<Result<
                        _,
                        TemplateError,
                    >>(
                    )?)),
                }
            }
            Value::Object(m) => Ok(Value::Object(
                m.iter().map(|(k, v)| Ok((k.clone(), self.resolve(v)?))).collect::<Result<_, TemplateError>>()?,
            )),
            Value::Array(a) => Ok(Value::Array(a.iter().map(|x| self.resolve(x)).collect::<Result<_, _>>()?)),
            other => Ok(other.clone()),
        }
    }

    fn sub(&self, text: &str, vars: &Map<String, Value>) -> Result<String, TemplateError> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            if let Some(lit) = after.strip_prefix('!') {
                // `${!Literal}` renders `${Literal}`.
                out.push_str("${");
                rest = lit;
                continue;
            }
            let end = after.find('}').ok_or_else(|| invalid(format!("unclosed ${{ in Fn::Sub {text:?}")))?;
            let name = &after[..end];
            let value = if let Some(v) = vars.get(name) {
                scalar(&self.resolve(v)?)
            } else if let Some((id, attr)) = name.split_once('.') {
                self.lookup_attr(id, attr)?
            } else {
                self.lookup_ref(name)?
            };
            out.push_str(&value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// A resolved scalar as a string (numbers and booleans as CloudFormation
/// passes them to services: their text).
pub fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = r#"
Parameters:
  Vis: {Type: Number, Default: 30}
  Level: {Type: String, Default: info, AllowedValues: [info, debug]}
Globals:
  Function:
    Timeout: 10
    Environment:
      Variables:
        Q: !Ref Queue
Resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: !Ref Vis
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt Dlq.Arn
        maxReceiveCount: 5
  Dlq: {Type: AWS::SQS::Queue}
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Policies:
        - Statement:
            Resource: !Sub "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:${Queue.QueueName}-${!Lit}"
      Other: !Join [",", [!Ref Level, "x"]]
"#;

    fn ctx(t: &Template, over: &[(&str, &str)]) -> Context {
        let over = over.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut c = Context { parameters: t.parameter_values(&over).unwrap(), ..Default::default() };
        c.pseudo.insert("AWS::Partition".into(), "aws".into());
        c.pseudo.insert("AWS::Region".into(), "us-east-1".into());
        c.pseudo.insert("AWS::AccountId".into(), "123456789012".into());
        c.refs.insert("Queue".into(), "http://q".into());
        c.attrs.insert(("Dlq".into(), "Arn".into()), "arn:dlq".into());
        c.attrs.insert(("Queue".into(), "QueueName".into()), "stack-Queue".into());
        c
    }

    #[test]
    fn short_and_long_forms_resolve() {
        let t = Template::parse(T).unwrap();
        assert_eq!(t.of_type("AWS::SQS::Queue").count(), 2);
        let c = ctx(&t, &[("Vis", "2")]);
        let q = c.resolve(&Value::Object(t.resources["Queue"].properties.clone())).unwrap();
        assert_eq!(q["VisibilityTimeout"], "2");
        assert_eq!(q["RedrivePolicy"]["deadLetterTargetArn"], "arn:dlq");
        let f = c.resolve(&Value::Object(t.resources["Fn"].properties.clone())).unwrap();
        assert_eq!(f["Policies"][0]["Statement"]["Resource"], "arn:aws:sqs:us-east-1:123456789012:stack-Queue-${Lit}");
        assert_eq!(f["Other"], "info,x");
        let g = c.resolve(&Value::Object(t.globals_function.clone())).unwrap();
        assert_eq!(g["Environment"]["Variables"]["Q"], "http://q");
    }

    #[test]
    fn parameter_overrides_are_checked() {
        let t = Template::parse(T).unwrap();
        let bad = [("Nope".to_string(), "1".to_string())].into_iter().collect();
        assert!(t.parameter_values(&bad).unwrap_err().to_string().contains("Nope"));
        let bad = [("Level".to_string(), "loud".to_string())].into_iter().collect();
        assert!(t.parameter_values(&bad).unwrap_err().to_string().contains("AllowedValues"));
    }

    #[test]
    fn unknown_refs_and_functions_are_named() {
        let t = Template::parse(T).unwrap();
        let c = ctx(&t, &[]);
        let e = c.resolve(&serde_json::json!({"Ref": "Ghost"})).unwrap_err();
        assert!(e.to_string().contains("Ghost"));
        let e = c.resolve(&serde_json::json!({"Fn::If": ["c", 1, 2]})).unwrap_err();
        assert!(e.to_string().contains("Fn::If"));
    }

    #[test]
    fn the_real_template_parses() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
        let t = Template::load(&path).unwrap();
        assert_eq!(t.of_type("AWS::Serverless::Function").count(), 6);
        assert!(t.parameter_values(&BTreeMap::new()).is_ok());
    }
}

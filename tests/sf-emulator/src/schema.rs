//! The org's schema: objects, fields and their types.
//!
//! Standard objects are built in ([`crate::standard`]), written in a compact field
//! notation ([`ObjectDef::from_spec`]); learnlink's own objects and fields come from the
//! SFDX package in `infra/salesforce/` ([`crate::metadata`]), the one source of truth
//! shared with the real org. Names are resolved case-insensitively, as Salesforce does;
//! responses always use the canonical case.

use std::collections::HashMap;

use crate::values::FieldValue;

/// Type of a field, with the constraints that validation needs.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldType {
    /// The record id (`Id`).
    Id,
    /// Text of at most `length` characters (`string`).
    Text { length: usize },
    /// Text area; `long` for Long Text Area.
    TextArea { length: usize, long: bool },
    /// An email address (80 characters).
    Email,
    /// A phone number (40 characters).
    Phone,
    /// A URL (255 characters).
    Url,
    /// Lookup to one of `to` (several: polymorphic, e.g. `OwnerId` → Group, User);
    /// `relationship` is the relationship name used in SOQL and in external-id
    /// references (`Contact__r`, `Account`).
    Reference { to: Vec<String>, relationship: String },
    /// Picklist; when `restricted` only `values` are accepted.
    Picklist { values: Vec<String>, restricted: bool },
    /// Multi-select picklist (values joined by `;`).
    MultiPicklist { values: Vec<String>, restricted: bool },
    /// Number with `precision` total digits, `scale` of them after the point.
    Number { precision: u32, scale: u32 },
    /// Currency (a number).
    Currency { precision: u32, scale: u32 },
    /// Percent (stored as a number: 55.5 means 55.5 %).
    Percent { precision: u32, scale: u32 },
    /// Integer of at most `digits` digits.
    Int { digits: u32 },
    /// Date and time (UTC, millisecond precision, printed with `.000+0000`).
    DateTime,
    /// Calendar date.
    Date,
    /// Checkbox.
    Boolean,
    /// Auto-number text: `prefix` followed by a zero-padded counter of `digits`.
    AutoNumber { prefix: String, digits: usize },
    /// Compound address, computed from the component fields named `<prefix>Street`,
    /// `<prefix>City`, ... (read only).
    Address { prefix: String },
}

impl FieldType {
    /// The SOAP type name used in messages such as "must be of type dateTime" and in
    /// describe's `soapType` (without the `xsd:` / `tns:` prefix).
    pub fn soap_name(&self) -> &'static str {
        match self {
            FieldType::Id | FieldType::Reference { .. } => "id",
            FieldType::Text { .. }
            | FieldType::TextArea { .. }
            | FieldType::Email
            | FieldType::Phone
            | FieldType::Url
            | FieldType::Picklist { .. }
            | FieldType::MultiPicklist { .. }
            | FieldType::AutoNumber { .. } => "string",
            FieldType::Number { .. } | FieldType::Currency { .. } | FieldType::Percent { .. } => "double",
            FieldType::Int { .. } => "int",
            FieldType::DateTime => "dateTime",
            FieldType::Date => "date",
            FieldType::Boolean => "boolean",
            FieldType::Address { .. } => "address",
        }
    }

    /// Describe's `type`.
    pub fn describe_name(&self) -> &'static str {
        match self {
            FieldType::Id => "id",
            FieldType::Text { .. } | FieldType::AutoNumber { .. } => "string",
            FieldType::TextArea { .. } => "textarea",
            FieldType::Email => "email",
            FieldType::Phone => "phone",
            FieldType::Url => "url",
            FieldType::Reference { .. } => "reference",
            FieldType::Picklist { .. } => "picklist",
            FieldType::MultiPicklist { .. } => "multipicklist",
            FieldType::Number { .. } => "double",
            FieldType::Currency { .. } => "currency",
            FieldType::Percent { .. } => "percent",
            FieldType::Int { .. } => "int",
            FieldType::DateTime => "datetime",
            FieldType::Date => "date",
            FieldType::Boolean => "boolean",
            FieldType::Address { .. } => "address",
        }
    }

    /// Whether values of this type are stored as text.
    pub fn is_textual(&self) -> bool {
        matches!(
            self,
            FieldType::Id
                | FieldType::Text { .. }
                | FieldType::TextArea { .. }
                | FieldType::Email
                | FieldType::Phone
                | FieldType::Url
                | FieldType::Reference { .. }
                | FieldType::Picklist { .. }
                | FieldType::MultiPicklist { .. }
                | FieldType::AutoNumber { .. }
        )
    }

    /// Whether values of this type are numbers.
    pub fn is_numeric(&self) -> bool {
        matches!(
            self,
            FieldType::Number { .. } | FieldType::Currency { .. } | FieldType::Percent { .. } | FieldType::Int { .. }
        )
    }

    /// Maximum length of a textual value (describe's `length`).
    pub fn length(&self) -> usize {
        match self {
            FieldType::Id | FieldType::Reference { .. } => 18,
            FieldType::Text { length } | FieldType::TextArea { length, .. } => *length,
            FieldType::Email => 80,
            FieldType::Phone => 40,
            FieldType::Url | FieldType::Picklist { .. } => 255,
            FieldType::MultiPicklist { .. } => 4099,
            FieldType::AutoNumber { .. } => 30,
            _ => 0,
        }
    }

    /// The first object a reference points to.
    pub fn reference_target(&self) -> Option<&str> {
        match self {
            FieldType::Reference { to, .. } => to.first().map(String::as_str),
            _ => None,
        }
    }
}

/// How a field's value comes to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Written by API clients on create and update.
    Writable,
    /// Written on create only (e.g. `SetupOwnerId`).
    CreateOnly,
    /// Set by the platform (Id, audit fields, auto-number, formula-like fields).
    System,
    /// Derived from other fields at save time (compound names and addresses).
    Computed,
}

/// One field of an object.
#[derive(Debug, Clone)]
pub struct FieldDef {
    pub name: String,
    pub label: String,
    pub ty: FieldType,
    /// Required on create (not nillable, no default).
    pub required: bool,
    pub external_id: bool,
    pub unique: bool,
    /// Usable to identify a record (`idLookup`): upsert and GET by this field work.
    pub id_lookup: bool,
    /// Unique/external-id matching is case-sensitive.
    pub case_sensitive: bool,
    /// The object's name field.
    pub name_field: bool,
    /// Defined in metadata (`__c`).
    pub custom: bool,
    /// Value given to new records that do not set the field.
    pub default: Option<FieldValue>,
    /// Set by the platform on create when absent (e.g. `OwnerId`).
    pub defaulted_on_create: bool,
    pub origin: Origin,
    /// Child relationship name on the parent (`LMS_Enrollments__r`), references only.
    pub child_relationship: Option<String>,
    pub description: Option<String>,
    pub help_text: Option<String>,
    /// Never null although not required from clients (platform-set fields).
    pub not_null: bool,
}

impl FieldDef {
    pub fn new(name: &str, label: &str, ty: FieldType) -> Self {
        FieldDef {
            name: name.to_owned(),
            label: label.to_owned(),
            ty,
            required: false,
            external_id: false,
            unique: false,
            id_lookup: false,
            case_sensitive: false,
            name_field: false,
            custom: name.ends_with("__c"),
            default: None,
            defaulted_on_create: false,
            origin: Origin::Writable,
            child_relationship: None,
            description: None,
            help_text: None,
            not_null: false,
        }
    }

    /// Whether API clients may set this field on create.
    pub fn createable(&self) -> bool {
        matches!(self.origin, Origin::Writable | Origin::CreateOnly)
    }

    /// Whether API clients may set this field on update.
    pub fn updateable(&self) -> bool {
        self.origin == Origin::Writable
    }

    /// Describe's `nillable`.
    pub fn nillable(&self) -> bool {
        !(self.required
            || self.not_null
            || self.defaulted_on_create
            || self.name_field
            || matches!(self.ty, FieldType::Boolean | FieldType::Id | FieldType::AutoNumber { .. }))
    }

    /// Whether the field is indexed for look-ups (external ids, unique and
    /// `idLookup` fields).
    pub fn indexed(&self) -> bool {
        self.unique || self.external_id || self.id_lookup && self.ty != FieldType::Id
    }
}

/// Positions of the platform fields an object may have.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemFields {
    pub id: usize,
    pub is_deleted: Option<usize>,
    pub owner: Option<usize>,
    pub created_date: Option<usize>,
    pub created_by: Option<usize>,
    pub last_modified_date: Option<usize>,
    pub last_modified_by: Option<usize>,
    pub system_modstamp: Option<usize>,
}

/// Derived values computed from other fields at save time.
#[derive(Debug, Clone)]
pub enum Computed {
    /// `target = join(" ", non-empty parts)` (e.g. `Contact.Name`).
    JoinNames { target: usize, parts: Vec<usize> },
    /// Compound address from its components, in describe's key order.
    Address { target: usize, parts: Vec<(&'static str, Option<usize>)> },
}

/// Kind of custom setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomSetting {
    Hierarchy,
    List,
}

/// One object (sObject type).
#[derive(Debug, Clone)]
pub struct ObjectDef {
    pub name: String,
    pub label: String,
    pub label_plural: String,
    pub key_prefix: String,
    pub custom: bool,
    pub custom_setting: Option<CustomSetting>,
    /// API clients may create/update/delete records (false: e.g. Organization).
    pub createable: bool,
    pub updateable: bool,
    pub deletable: bool,
    pub fields: Vec<FieldDef>,
    pub system: SystemFields,
    pub computed: Vec<Computed>,
    pub description: Option<String>,
    by_lower: HashMap<String, usize>,
    relationships: HashMap<String, usize>,
}

/// Splits `BillingStreet` into `Billing Street` (labels of built-in fields).
fn label_from_name(name: &str) -> String {
    let base = name.strip_suffix("__c").unwrap_or(name);
    let mut out = String::with_capacity(base.len() + 4);
    let chars: Vec<char> = base.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        if *c == '_' {
            out.push(' ');
            continue;
        }
        let prev = if i > 0 { chars.get(i - 1) } else { None };
        let next = chars.get(i + 1);
        let boundary = c.is_ascii_uppercase()
            && prev.is_some_and(|p| {
                p.is_ascii_lowercase() || (p.is_ascii_uppercase() && next.is_some_and(|n| n.is_ascii_lowercase()))
            });
        if boundary && !out.ends_with(' ') {
            out.push(' ');
        }
        out.push(*c);
    }
    out
}

/// Component fields of an address, in the key order of the compound value.
const ADDRESS_PARTS: [(&str, &str); 10] = [
    ("city", "City"),
    ("country", "Country"),
    ("countryCode", "CountryCode"),
    ("geocodeAccuracy", "GeocodeAccuracy"),
    ("latitude", "Latitude"),
    ("longitude", "Longitude"),
    ("postalCode", "PostalCode"),
    ("state", "State"),
    ("stateCode", "StateCode"),
    ("street", "Street"),
];

/// Error while building the schema (bad built-in spec or bad metadata).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaError(pub String);

impl std::fmt::Display for SchemaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SchemaError {}

/// Parses one field line of the compact notation used by [`crate::standard`]:
///
/// ```text
/// Name type[(args)] [flag ...]
///   types: id string(n) textarea(n) longtext(n) email phone url ref(A|B)
///          picklist(a;b;c) mpicklist(a;b) double(p,s) currency(p,s) percent(p,s)
///          int(n) datetime date bool autonum(PREFIX-{0000}) address
///   flags: sys createonly computed req ext unique lookup name cs restricted default
///          defaulted rel=Name label=Words_With_Underscores default=value
/// ```
pub fn parse_field_spec(line: &str) -> Result<FieldDef, SchemaError> {
    let err = |m: &str| SchemaError(format!("bad field spec `{line}`: {m}"));
    let line = line.trim();
    let (name, rest) = line.split_once(char::is_whitespace).ok_or_else(|| err("no type"))?;
    let rest = rest.trim_start();
    // The type runs to the first blank, or to the closing ')' when it has arguments
    // (picklist values may contain blanks).
    let ws = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let (ty_spec, flags_str) = match rest.find('(') {
        Some(open) if open < ws => {
            let close = rest[open..].find(')').map(|c| c + open).ok_or_else(|| err("unclosed ("))?;
            (&rest[..=close], &rest[close + 1..])
        }
        _ => (&rest[..ws], &rest[ws..]),
    };
    let (ty_name, args): (&str, Option<String>) = match ty_spec.split_once('(') {
        Some((t, a)) => (t, Some(a.trim_end_matches(')').to_owned())),
        None => (ty_spec, None),
    };
    let num = |s: Option<&str>| -> Result<u32, SchemaError> {
        s.ok_or_else(|| err("missing number"))?.trim().parse::<u32>().map_err(|_| err("bad number"))
    };
    let pair = |a: &Option<String>| -> Result<(u32, u32), SchemaError> {
        let a = a.as_deref().ok_or_else(|| err("missing (p,s)"))?;
        let (p, s) = a.split_once(',').ok_or_else(|| err("missing ,"))?;
        Ok((num(Some(p))?, num(Some(s))?))
    };
    let values = |a: &Option<String>| -> Vec<String> {
        a.as_deref()
            .map(|v| v.split(';').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default()
    };
    let flags: Vec<&str> = flags_str.split_whitespace().collect();
    let restricted = flags.contains(&"restricted");
    let rel = flags.iter().find_map(|f| f.strip_prefix("rel="));
    let ty = match ty_name {
        "id" => FieldType::Id,
        "string" => FieldType::Text { length: num(args.as_deref())? as usize },
        "textarea" => FieldType::TextArea { length: num(args.as_deref())? as usize, long: false },
        "longtext" => FieldType::TextArea { length: num(args.as_deref())? as usize, long: true },
        "email" => FieldType::Email,
        "phone" => FieldType::Phone,
        "url" => FieldType::Url,
        "ref" => {
            let to: Vec<String> = args.as_deref().unwrap_or("").split('|').map(str::to_owned).collect();
            let relationship = match rel {
                Some(r) => r.to_owned(),
                None => name
                    .strip_suffix("__c")
                    .map(|b| format!("{b}__r"))
                    .or_else(|| name.strip_suffix("Id").map(str::to_owned))
                    .unwrap_or_default(),
            };
            FieldType::Reference { to, relationship }
        }
        "picklist" => FieldType::Picklist { values: values(&args), restricted },
        "mpicklist" => FieldType::MultiPicklist { values: values(&args), restricted },
        "double" => {
            let (precision, scale) = pair(&args)?;
            FieldType::Number { precision, scale }
        }
        "currency" => {
            let (precision, scale) = pair(&args)?;
            FieldType::Currency { precision, scale }
        }
        "percent" => {
            let (precision, scale) = pair(&args)?;
            FieldType::Percent { precision, scale }
        }
        "int" => FieldType::Int { digits: num(args.as_deref())? },
        "datetime" => FieldType::DateTime,
        "date" => FieldType::Date,
        "bool" => FieldType::Boolean,
        "autonum" => parse_display_format(args.as_deref().unwrap_or("{0}")).ok_or_else(|| err("bad autonum"))?,
        "address" => FieldType::Address { prefix: name.strip_suffix("Address").unwrap_or("").to_owned() },
        other => return Err(err(&format!("unknown type {other}"))),
    };
    let label = flags
        .iter()
        .find_map(|f| f.strip_prefix("label="))
        .map(|l| l.replace('_', " "))
        .unwrap_or_else(|| label_from_name(name));
    let mut f = FieldDef::new(name, &label, ty);
    for flag in &flags {
        match *flag {
            "sys" => f.origin = Origin::System,
            "createonly" => f.origin = Origin::CreateOnly,
            "computed" => f.origin = Origin::Computed,
            "req" => f.required = true,
            "ext" => {
                f.external_id = true;
                f.id_lookup = true;
            }
            "unique" => f.unique = true,
            "lookup" => f.id_lookup = true,
            "name" => {
                f.name_field = true;
                f.id_lookup = true;
            }
            "cs" => f.case_sensitive = true,
            "defaulted" => f.defaulted_on_create = true,
            "notnull" => f.not_null = true,
            _ => {}
        }
        if let Some(d) = flag.strip_prefix("default=") {
            f.default = Some(match d {
                "true" => FieldValue::Bool(true),
                "false" => FieldValue::Bool(false),
                other => FieldValue::Text(other.replace('_', " ")),
            });
        }
    }
    if f.ty == FieldType::Boolean && f.default.is_none() {
        f.default = Some(FieldValue::Bool(false));
    }
    if matches!(f.ty, FieldType::Address { .. }) {
        f.origin = Origin::Computed;
    }
    if matches!(f.ty, FieldType::AutoNumber { .. }) {
        f.origin = Origin::System;
        f.id_lookup = true;
    }
    if f.ty == FieldType::Id {
        f.origin = Origin::System;
        f.id_lookup = true;
    }
    Ok(f)
}

/// Parses an auto-number display format such as `ENR-{0000000}`.
pub fn parse_display_format(fmt: &str) -> Option<FieldType> {
    let open = fmt.find('{')?;
    let close = fmt[open..].find('}')? + open;
    let zeros = &fmt[open + 1..close];
    if zeros.is_empty() || !zeros.chars().all(|c| c == '0') {
        return None;
    }
    Some(FieldType::AutoNumber { prefix: fmt[..open].to_owned(), digits: zeros.len() })
}

impl ObjectDef {
    /// An object from its fields (all of them, in describe order).
    pub fn new(name: &str, label: &str, label_plural: &str, key_prefix: &str, fields: Vec<FieldDef>) -> Self {
        let mut o = ObjectDef {
            name: name.to_owned(),
            label: label.to_owned(),
            label_plural: label_plural.to_owned(),
            key_prefix: key_prefix.to_owned(),
            custom: name.ends_with("__c"),
            custom_setting: None,
            createable: true,
            updateable: true,
            deletable: true,
            fields,
            system: SystemFields::default(),
            computed: Vec::new(),
            description: None,
            by_lower: HashMap::new(),
            relationships: HashMap::new(),
        };
        o.reindex();
        o
    }

    /// An object from the compact field notation, one field per line.
    pub fn from_spec(
        name: &str,
        label: &str,
        label_plural: &str,
        key_prefix: &str,
        spec: &str,
    ) -> Result<Self, SchemaError> {
        let fields = spec
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(parse_field_spec)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ObjectDef::new(name, label, label_plural, key_prefix, fields))
    }

    /// Rebuilds the name indexes, the platform field positions and the computed
    /// fields after the field list changed.
    pub fn reindex(&mut self) {
        self.by_lower.clear();
        self.relationships.clear();
        for (i, f) in self.fields.iter().enumerate() {
            self.by_lower.insert(f.name.to_ascii_lowercase(), i);
            if let FieldType::Reference { relationship, .. } = &f.ty {
                if !relationship.is_empty() {
                    self.relationships.insert(relationship.to_ascii_lowercase(), i);
                }
            }
        }
        let at = |n: &str| self.by_lower.get(&n.to_ascii_lowercase()).copied();
        self.system = SystemFields {
            id: at("Id").unwrap_or(0),
            is_deleted: at("IsDeleted"),
            owner: at("OwnerId").filter(|i| self.fields.get(*i).is_some_and(|f| f.defaulted_on_create)),
            created_date: at("CreatedDate"),
            created_by: at("CreatedById"),
            last_modified_date: at("LastModifiedDate"),
            last_modified_by: at("LastModifiedById"),
            system_modstamp: at("SystemModstamp"),
        };
        let mut computed = Vec::new();
        for (i, f) in self.fields.iter().enumerate() {
            match &f.ty {
                FieldType::Address { prefix } => {
                    let parts =
                        ADDRESS_PARTS.iter().map(|(key, suffix)| (*key, at(&format!("{prefix}{suffix}")))).collect();
                    computed.push(Computed::Address { target: i, parts });
                }
                _ if f.origin == Origin::Computed && f.name == "Name" => {
                    let parts: Vec<usize> = ["FirstName", "LastName"].iter().filter_map(|n| at(n)).collect();
                    if !parts.is_empty() {
                        computed.push(Computed::JoinNames { target: i, parts });
                    }
                }
                _ => {}
            }
        }
        self.computed = computed;
    }

    /// Index of a field by name (case-insensitive).
    pub fn field_index(&self, name: &str) -> Option<usize> {
        match self.by_lower.get(name) {
            Some(i) => Some(*i),
            None => self.by_lower.get(&name.to_ascii_lowercase()).copied(),
        }
    }

    /// The field by name (case-insensitive).
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.field_index(name).and_then(|i| self.fields.get(i))
    }

    /// The reference field whose relationship name is `rel` (case-insensitive),
    /// e.g. `Contact__r` → `Contact__c`.
    pub fn relationship_field(&self, rel: &str) -> Option<usize> {
        self.relationships.get(&rel.to_ascii_lowercase()).copied()
    }

    /// Indices of the indexed fields (unique, external id, id lookup; Id excluded).
    pub fn indexed_fields(&self) -> impl Iterator<Item = usize> + '_ {
        self.fields.iter().enumerate().filter(|(_, f)| f.indexed()).map(|(i, _)| i)
    }

    /// The name field, if any.
    pub fn name_field(&self) -> Option<usize> {
        self.fields.iter().position(|f| f.name_field)
    }

    /// Whether records may be queried (every object here is).
    pub fn queryable(&self) -> bool {
        true
    }
}

/// A child relationship as describe lists it on the parent.
#[derive(Debug, Clone)]
pub struct ChildRelationship {
    pub child_object: String,
    pub field: String,
    pub relationship_name: Option<String>,
    pub cascade_delete: bool,
}

/// The whole schema of the org.
#[derive(Debug, Clone)]
pub struct Schema {
    pub objects: Vec<ObjectDef>,
    /// Where the learnlink metadata came from (a directory, or "built-in").
    pub metadata_source: String,
    by_lower: HashMap<String, usize>,
    by_prefix: HashMap<String, usize>,
    children: Vec<Vec<ChildRelationship>>,
}

impl Schema {
    pub fn from_objects(objects: Vec<ObjectDef>, metadata_source: &str) -> Self {
        let mut by_lower = HashMap::new();
        let mut by_prefix = HashMap::new();
        for (i, o) in objects.iter().enumerate() {
            by_lower.insert(o.name.to_ascii_lowercase(), i);
            by_prefix.insert(o.key_prefix.clone(), i);
        }
        let mut children: Vec<Vec<ChildRelationship>> = vec![Vec::new(); objects.len()];
        for o in &objects {
            for f in &o.fields {
                let FieldType::Reference { to, .. } = &f.ty else { continue };
                for target in to {
                    if let Some(ti) = by_lower.get(&target.to_ascii_lowercase()) {
                        if let Some(list) = children.get_mut(*ti) {
                            let relationship_name = if f.custom {
                                f.child_relationship.as_ref().map(|r| format!("{r}__r"))
                            } else {
                                f.child_relationship.clone()
                            };
                            list.push(ChildRelationship {
                                child_object: o.name.clone(),
                                field: f.name.clone(),
                                relationship_name,
                                cascade_delete: false,
                            });
                        }
                    }
                }
            }
        }
        for list in &mut children {
            list.sort_by(|a, b| a.child_object.cmp(&b.child_object).then(a.field.cmp(&b.field)));
        }
        Schema { objects, metadata_source: metadata_source.to_owned(), by_lower, by_prefix, children }
    }

    /// Index of an object by name (case-insensitive).
    pub fn object_index(&self, name: &str) -> Option<usize> {
        self.by_lower.get(&name.to_ascii_lowercase()).copied()
    }

    /// The object by name (case-insensitive).
    pub fn object(&self, name: &str) -> Option<&ObjectDef> {
        self.object_index(name).and_then(|i| self.objects.get(i))
    }

    /// Index of the object whose ids start with `prefix`.
    pub fn object_by_prefix(&self, prefix: &str) -> Option<usize> {
        self.by_prefix.get(prefix).copied()
    }

    /// Child relationships of `object` (describe's `childRelationships`).
    pub fn child_relationships(&self, object: usize) -> &[ChildRelationship] {
        self.children.get(object).map(Vec::as_slice).unwrap_or_default()
    }

    /// The built-in standard objects plus the learnlink metadata package located as
    /// described in [`crate::metadata::locate`].
    pub fn learnlink() -> Self {
        match crate::metadata::load_schema(None) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "learnlink metadata not loaded; using the embedded copy");
                crate::metadata::embedded_schema()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_from_names() {
        assert_eq!(label_from_name("BillingStreet"), "Billing Street");
        assert_eq!(label_from_name("SLAExpirationDate__c"), "SLA Expiration Date");
        assert_eq!(label_from_name("Id"), "Id");
    }

    #[test]
    fn field_specs() {
        let f = parse_field_spec("Type picklist(Customer - Direct;Other) restricted").unwrap();
        assert_eq!(
            f.ty,
            FieldType::Picklist { values: vec!["Customer - Direct".into(), "Other".into()], restricted: true }
        );
        let f = parse_field_spec("OwnerId ref(Group|User) defaulted").unwrap();
        assert_eq!(
            f.ty,
            FieldType::Reference { to: vec!["Group".into(), "User".into()], relationship: "Owner".into() }
        );
        let f = parse_field_spec("CaseNumber autonum({00000000}) label=Case_Number").unwrap();
        assert_eq!(f.ty, FieldType::AutoNumber { prefix: String::new(), digits: 8 });
        assert_eq!(f.label, "Case Number");
        assert!(parse_field_spec("X nope").is_err());
    }

    #[test]
    fn lookups_are_case_insensitive() {
        let s = Schema::learnlink();
        let c = s.object("contact").unwrap();
        assert_eq!(c.name, "Contact");
        assert_eq!(c.fields[c.field_index("lms_learner_id__c").unwrap()].name, "LMS_Learner_Id__c");
        let e = s.object("LMS_Enrollment__c").unwrap();
        let rel = e.relationship_field("contact__r").unwrap();
        assert_eq!(e.fields[rel].name, "Contact__c");
        assert_eq!(s.object_by_prefix("003"), s.object_index("Contact"));
        assert_eq!(e.fields[e.system.system_modstamp.unwrap()].name, "SystemModstamp");
        assert_eq!(e.fields[0].name, "Id");
    }
}

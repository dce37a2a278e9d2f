//! The org's schema: objects, fields and their types.
//!
//! For now the schema is hard-coded ([`Schema::learnlink`]); it mirrors the metadata
//! learnlink ships in `infra/salesforce/` (SPEC §2). Names are resolved
//! case-insensitively, as Salesforce does; responses always use the canonical case.

use std::collections::HashMap;

/// Type of a field, with the constraints that validation needs.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldType {
    /// The record id (`Id`).
    Id,
    /// Text of at most `length` characters.
    Text { length: usize },
    /// An email address (80 characters).
    Email,
    /// Lookup to another object; `relationship` is the relationship name used in
    /// SOQL and in external-id references (`Contact__r`, `Account`).
    Reference { to: String, relationship: String },
    /// Picklist; when `restricted` only `values` are accepted.
    Picklist { values: Vec<String>, restricted: bool },
    /// Number with `precision` total digits, `scale` of them after the point.
    Number { precision: u32, scale: u32 },
    /// Percent (stored as a number: 55.5 means 55.5 %).
    Percent { precision: u32, scale: u32 },
    /// Date and time (UTC, second precision on output).
    DateTime,
    /// Calendar date.
    Date,
    /// Checkbox.
    Boolean,
    /// Auto-number text (`prefix` followed by a zero-padded counter).
    AutoNumber { prefix: String, digits: usize },
}

impl FieldType {
    /// The SOAP type name used in messages such as "must be of type dateTime".
    pub fn soap_name(&self) -> &'static str {
        match self {
            FieldType::Id | FieldType::Reference { .. } => "id",
            FieldType::Text { .. } | FieldType::Email | FieldType::Picklist { .. } | FieldType::AutoNumber { .. } => {
                "string"
            }
            FieldType::Number { .. } | FieldType::Percent { .. } => "double",
            FieldType::DateTime => "dateTime",
            FieldType::Date => "date",
            FieldType::Boolean => "boolean",
        }
    }

    /// Whether values of this type are stored as text.
    pub fn is_textual(&self) -> bool {
        matches!(
            self,
            FieldType::Id
                | FieldType::Text { .. }
                | FieldType::Email
                | FieldType::Reference { .. }
                | FieldType::Picklist { .. }
                | FieldType::AutoNumber { .. }
        )
    }
}

/// How a field's value comes to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Written by API clients.
    Writable,
    /// Set by the platform (Id, audit fields, auto-number, formula-like fields).
    System,
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
    /// Unique/external-id matching is case-sensitive.
    pub case_sensitive: bool,
    pub origin: Origin,
}

impl FieldDef {
    fn new(name: &str, label: &str, ty: FieldType) -> Self {
        FieldDef {
            name: name.to_owned(),
            label: label.to_owned(),
            ty,
            required: false,
            external_id: false,
            unique: false,
            case_sensitive: false,
            origin: Origin::Writable,
        }
    }

    fn required(mut self) -> Self {
        self.required = true;
        self
    }

    fn external_unique(mut self) -> Self {
        self.external_id = true;
        self.unique = true;
        self
    }

    fn system(mut self) -> Self {
        self.origin = Origin::System;
        self
    }

    /// Whether API clients may set this field.
    pub fn writable(&self) -> bool {
        self.origin == Origin::Writable
    }
}

/// Positions of the audit fields every object has.
#[derive(Debug, Clone, Copy)]
pub struct SystemFields {
    pub id: usize,
    pub created_date: usize,
    pub created_by: usize,
    pub last_modified_date: usize,
    pub last_modified_by: usize,
    pub system_modstamp: usize,
}

/// Derived values computed from other fields at save time (e.g. `Contact.Name`).
#[derive(Debug, Clone)]
pub enum Computed {
    /// `target = join(" ", non-empty parts)`.
    JoinNames { target: usize, parts: Vec<usize> },
}

/// One object (sObject type).
#[derive(Debug, Clone)]
pub struct ObjectDef {
    pub name: String,
    pub label: String,
    pub key_prefix: String,
    pub custom: bool,
    pub fields: Vec<FieldDef>,
    pub system: SystemFields,
    pub computed: Vec<Computed>,
    by_lower: HashMap<String, usize>,
    relationships: HashMap<String, usize>,
}

impl ObjectDef {
    /// Builds an object from its own fields; `Id` and the audit fields are added.
    fn build(name: &str, label: &str, key_prefix: &str, own: Vec<FieldDef>) -> Self {
        let user_ref = || FieldType::Reference { to: "User".to_owned(), relationship: String::new() };
        let mut fields = vec![FieldDef::new("Id", &format!("{label} ID"), FieldType::Id).system()];
        fields.extend(own);
        let base = fields.len();
        fields.push(FieldDef::new("CreatedDate", "Created Date", FieldType::DateTime).system());
        fields.push(FieldDef::new("CreatedById", "Created By ID", user_ref()).system());
        fields.push(FieldDef::new("LastModifiedDate", "Last Modified Date", FieldType::DateTime).system());
        fields.push(FieldDef::new("LastModifiedById", "Last Modified By ID", user_ref()).system());
        fields.push(FieldDef::new("SystemModstamp", "System Modstamp", FieldType::DateTime).system());
        let system = SystemFields {
            id: 0,
            created_date: base,
            created_by: base + 1,
            last_modified_date: base + 2,
            last_modified_by: base + 3,
            system_modstamp: base + 4,
        };
        let mut by_lower = HashMap::new();
        let mut relationships = HashMap::new();
        for (i, f) in fields.iter().enumerate() {
            by_lower.insert(f.name.to_ascii_lowercase(), i);
            if let FieldType::Reference { relationship, .. } = &f.ty {
                if !relationship.is_empty() {
                    relationships.insert(relationship.to_ascii_lowercase(), i);
                }
            }
        }
        ObjectDef {
            name: name.to_owned(),
            label: label.to_owned(),
            key_prefix: key_prefix.to_owned(),
            custom: name.ends_with("__c"),
            fields,
            system,
            computed: Vec::new(),
            by_lower,
            relationships,
        }
    }

    /// Index of a field by name (case-insensitive).
    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.by_lower.get(&name.to_ascii_lowercase()).copied()
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

    /// Indices of the unique fields (Id excluded).
    pub fn unique_fields(&self) -> impl Iterator<Item = usize> + '_ {
        self.fields.iter().enumerate().filter(|(_, f)| f.unique).map(|(i, _)| i)
    }
}

/// The whole schema of the org.
#[derive(Debug, Clone)]
pub struct Schema {
    pub objects: Vec<ObjectDef>,
    by_lower: HashMap<String, usize>,
    by_prefix: HashMap<String, usize>,
}

impl Schema {
    fn from_objects(objects: Vec<ObjectDef>) -> Self {
        let mut by_lower = HashMap::new();
        let mut by_prefix = HashMap::new();
        for (i, o) in objects.iter().enumerate() {
            by_lower.insert(o.name.to_ascii_lowercase(), i);
            by_prefix.insert(o.key_prefix.clone(), i);
        }
        Schema { objects, by_lower, by_prefix }
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

    /// The schema of learnlink's managed metadata plus the standard objects it uses.
    pub fn learnlink() -> Self {
        let text = |n| FieldType::Text { length: n };
        let contact_ref = || FieldType::Reference { to: "Contact".to_owned(), relationship: "Contact__r".to_owned() };

        let account = ObjectDef::build(
            "Account",
            "Account",
            "001",
            vec![FieldDef::new("Name", "Account Name", text(255)).required()],
        );

        let mut contact = ObjectDef::build(
            "Contact",
            "Contact",
            "003",
            vec![
                FieldDef::new("FirstName", "First Name", text(40)),
                FieldDef::new("LastName", "Last Name", text(80)).required(),
                FieldDef::new("Name", "Full Name", text(121)).system(),
                FieldDef::new("Email", "Email", FieldType::Email),
                FieldDef::new(
                    "AccountId",
                    "Account ID",
                    FieldType::Reference { to: "Account".to_owned(), relationship: "Account".to_owned() },
                ),
                FieldDef::new("LMS_Learner_Id__c", "LMS Learner Id", text(255)).external_unique(),
            ],
        );
        if let (Some(target), Some(first), Some(last)) =
            (contact.field_index("Name"), contact.field_index("FirstName"), contact.field_index("LastName"))
        {
            contact.computed.push(Computed::JoinNames { target, parts: vec![first, last] });
        }

        let enrollment = ObjectDef::build(
            "LMS_Enrollment__c",
            "LMS Enrollment",
            "a0A",
            vec![
                FieldDef::new(
                    "Name",
                    "LMS Enrollment Name",
                    FieldType::AutoNumber { prefix: "ENR-".to_owned(), digits: 7 },
                )
                .system(),
                FieldDef::new("LMS_Enrollment_Id__c", "LMS Enrollment Id", text(255)).external_unique(),
                FieldDef::new("Contact__c", "Contact", contact_ref()),
                FieldDef::new("Course_Id__c", "Course Id", text(255)),
                FieldDef::new("Course_Title__c", "Course Title", text(255)),
                FieldDef::new(
                    "Status__c",
                    "Status",
                    FieldType::Picklist {
                        values: ["Enrolled", "In Progress", "Completed", "Expired"]
                            .iter()
                            .map(|s| (*s).to_owned())
                            .collect(),
                        restricted: true,
                    },
                ),
                FieldDef::new("Progress__c", "Progress", FieldType::Percent { precision: 5, scale: 2 }),
                FieldDef::new("Score__c", "Score", FieldType::Number { precision: 18, scale: 2 }),
                FieldDef::new("Enrolled_At__c", "Enrolled At", FieldType::DateTime),
                FieldDef::new("Completed_At__c", "Completed At", FieldType::DateTime),
                FieldDef::new("LMS_Updated_At__c", "LMS Updated At", FieldType::DateTime),
            ],
        );

        let certification = ObjectDef::build(
            "LMS_Certification__c",
            "LMS Certification",
            "a0B",
            vec![
                FieldDef::new("Name", "LMS Certification Name", text(80)).required(),
                FieldDef::new("LMS_Certification_Id__c", "LMS Certification Id", text(255)).external_unique(),
                FieldDef::new("Contact__c", "Contact", contact_ref()),
                FieldDef::new("Issued_At__c", "Issued At", FieldType::DateTime),
                FieldDef::new("Expires_At__c", "Expires At", FieldType::DateTime),
                FieldDef::new("LMS_Updated_At__c", "LMS Updated At", FieldType::DateTime),
            ],
        );

        Schema::from_objects(vec![account, contact, enrollment, certification])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(e.fields[e.system.system_modstamp].name, "SystemModstamp");
        assert_eq!(e.fields[0].name, "Id");
    }
}

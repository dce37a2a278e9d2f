//! Loads learnlink's Salesforce metadata package (SFDX source format, SPEC §2) into the
//! emulator's schema, so the emulator and the real org share one source of truth.
//!
//! Where the package is found ([`locate`]), first match wins:
//! 1. an explicit directory (`Config::metadata_dir`, the `--metadata` flag);
//! 2. the `LEARNLINK_SF_METADATA` environment variable;
//! 3. `infra/salesforce` in an ancestor directory of the running executable (a binary in
//!    `target/debug` of the workspace finds the workspace's package);
//! 4. `infra/salesforce` relative to this crate's source directory at build time
//!    (`CARGO_MANIFEST_DIR/../../infra/salesforce`);
//! 5. a copy of the package embedded at build time (same files, `include_str!`), so
//!    the emulator still starts when it runs outside the workspace.
//!
//! An explicit directory (1, 2) that cannot be read is an error, never silently replaced.
//!
//! Supported: `sfdx-project.json` `packageDirectories`; under each,
//! `**/objects/<Object>/<Object>.object-meta.xml` (custom objects and hierarchy/list
//! custom settings: label, pluralLabel, nameField Text/AutoNumber, customSettingsType,
//! description) and `**/objects/<Object>/fields/*.field-meta.xml` (Text, TextArea,
//! LongTextArea, Html, Email, Phone, Url, Number, Currency, Percent, Checkbox, Date,
//! DateTime, Picklist, MultiselectPicklist, Lookup, MasterDetail, AutoNumber; externalId,
//! unique, caseSensitive, required, defaultValue, valueSet with restricted/default,
//! referenceTo, relationshipName, description, inlineHelpText). Fields of standard
//! objects (e.g. `Contact/fields/LMS_Learner_Id__c`) extend the built-in object. Other
//! metadata (triggers, classes, layouts) is ignored by the schema; the trigger's
//! behaviour is stood in for by [`crate::automation`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::schema::{
    CustomSetting, FieldDef, FieldType, ObjectDef, Origin, Schema, SchemaError, parse_display_format, parse_field_spec,
};
use crate::values::FieldValue;

/// Environment variable naming the metadata directory.
pub const ENV_VAR: &str = "LEARNLINK_SF_METADATA";

/// Where the schema's learnlink objects come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Dir(PathBuf),
    Embedded,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Dir(p) => write!(f, "{}", p.display()),
            Source::Embedded => f.write_str("embedded copy of infra/salesforce"),
        }
    }
}

fn is_package(dir: &Path) -> bool {
    dir.join("sfdx-project.json").is_file()
}

/// Finds the metadata package (see the module documentation for the order).
pub fn locate(explicit: Option<&Path>) -> Result<Source, SchemaError> {
    if let Some(dir) = explicit {
        return if is_package(dir) {
            Ok(Source::Dir(dir.to_path_buf()))
        } else {
            Err(SchemaError(format!("{}: no sfdx-project.json (not an SFDX package)", dir.display())))
        };
    }
    if let Some(dir) = std::env::var_os(ENV_VAR).filter(|v| !v.is_empty()) {
        let dir = PathBuf::from(dir);
        return if is_package(&dir) {
            Ok(Source::Dir(dir))
        } else {
            Err(SchemaError(format!("{ENV_VAR}={}: no sfdx-project.json (not an SFDX package)", dir.display())))
        };
    }
    if let Ok(exe) = std::env::current_exe() {
        for anc in exe.ancestors().skip(1) {
            let cand = anc.join("infra").join("salesforce");
            if is_package(&cand) {
                return Ok(Source::Dir(cand));
            }
        }
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/salesforce");
    if is_package(&built) {
        return Ok(Source::Dir(built));
    }
    Ok(Source::Embedded)
}

/// Files of the package embedded at build time (relative paths).
const EMBEDDED: &[(&str, &str)] = &[
    ("sfdx-project.json", include_str!("../../../infra/salesforce/sfdx-project.json")),
    (
        "force-app/main/default/objects/Contact/fields/LMS_Learner_Id__c.field-meta.xml",
        include_str!(
            "../../../infra/salesforce/force-app/main/default/objects/Contact/fields/LMS_Learner_Id__c.field-meta.xml"
        ),
    ),
    (
        "force-app/main/default/objects/LMS_Enrollment__c/LMS_Enrollment__c.object-meta.xml",
        include_str!(
            "../../../infra/salesforce/force-app/main/default/objects/LMS_Enrollment__c/LMS_Enrollment__c.object-meta.xml"
        ),
    ),
    (
        "force-app/main/default/objects/LMS_Enrollment__c/fields/LMS_Enrollment_Id__c.field-meta.xml",
        include_str!(
            "../../../infra/salesforce/force-app/main/default/objects/LMS_Enrollment__c/fields/LMS_Enrollment_Id__c.field-meta.xml"
        ),
    ),
    (
        "force-app/main/default/objects/LMS_Enrollment__c/fields/Contact__c.field-meta.xml",
        include_str!(
            "../../../infra/salesforce/force-app/main/default/objects/LMS_Enrollment__c/fields/Contact__c.field-meta.xml"
        ),
    ),
    (
        "force-app/main/default/objects/LMS_Enrollment__c/fields/Course_Id__c.field-meta.xml",
        include_str!(
            "../../../infra/salesforce/force-app/main/default/objects/LMS_Enrollment__c/fields/Course_Id__c.field-meta.xml"
        ),
    ),
    (
        "force-app/main/default/objects/LMS_Enrollment__c/fields/Course_Title__c.field-meta.xml",
        include_str!(
            "../../../infra/salesforce/force-app/main/default/objects/LMS_Enrollment__c/fields/Course_Title__c.field-meta.xml"
        ),
    ),
    (
        "force-app/main/default/objects/LMS_Enrollment__c/fields/Status__c.field-meta.xml",
        include_str!(
            "../../../infra/salesforce/force-app/main/default/objects/LMS_Enrollment__c/fields/Status__c.field-meta.xml"
        ),
    ),
    (
        "force-app/main/default/objects/LMS_Enrollment__c/fields/Progress__c.field-meta.xml",
        include_str!(
            "../../../infra/salesforce/force-app/main/default/objects/LMS_Enrollment__c/fields/Progress__c.field-meta.xml"
        ),
    ),
    (
        "force-app/main/default/objects/LMS_Enrollment__c/fields/Score__c.field-meta.xml",
        include_str!(
            "../../../infra/salesforce/force-app/main/default/objects/LMS_Enrollment__c/fields/Score__c.field-meta.xml"
        ),
    ),
    (
        "force-app/main/default/objects/LMS_Enrollment__c/fields/Enrolled_At__c.field-meta.xml",
        include_str!(
            "../../../infra/salesforce/force-app/main/default/objects/LMS_Enrollment__c/fields/Enrolled_At__c.field-meta.xml"
        ),
    ),
    (
        "force-app/main/default/objects/LMS_Enrollment__c/fields/Completed_At__c.field-meta.xml",
        include_str!(
            "../../../infra/salesforce/force-app/main/default/objects/LMS_Enrollment__c/fields/Completed_At__c.field-meta.xml"
        ),
    ),
    (
        "force-app/main/default/objects/LMS_Enrollment__c/fields/LMS_Updated_At__c.field-meta.xml",
        include_str!(
            "../../../infra/salesforce/force-app/main/default/objects/LMS_Enrollment__c/fields/LMS_Updated_At__c.field-meta.xml"
        ),
    ),
    (
        "force-app/main/default/objects/LMS_Certification__c/LMS_Certification__c.object-meta.xml",
        include_str!(
            "../../../infra/salesforce/force-app/main/default/objects/LMS_Certification__c/LMS_Certification__c.object-meta.xml"
        ),
    ),
    (
        "force-app/main/default/objects/LMS_Certification__c/fields/LMS_Certification_Id__c.field-meta.xml",
        include_str!(
            "../../../infra/salesforce/force-app/main/default/objects/LMS_Certification__c/fields/LMS_Certification_Id__c.field-meta.xml"
        ),
    ),
    (
        "force-app/main/default/objects/LMS_Certification__c/fields/Contact__c.field-meta.xml",
        include_str!(
            "../../../infra/salesforce/force-app/main/default/objects/LMS_Certification__c/fields/Contact__c.field-meta.xml"
        ),
    ),
    (
        "force-app/main/default/objects/LMS_Certification__c/fields/Issued_At__c.field-meta.xml",
        include_str!(
            "../../../infra/salesforce/force-app/main/default/objects/LMS_Certification__c/fields/Issued_At__c.field-meta.xml"
        ),
    ),
    (
        "force-app/main/default/objects/LMS_Certification__c/fields/Expires_At__c.field-meta.xml",
        include_str!(
            "../../../infra/salesforce/force-app/main/default/objects/LMS_Certification__c/fields/Expires_At__c.field-meta.xml"
        ),
    ),
    (
        "force-app/main/default/objects/LMS_Certification__c/fields/LMS_Updated_At__c.field-meta.xml",
        include_str!(
            "../../../infra/salesforce/force-app/main/default/objects/LMS_Certification__c/fields/LMS_Updated_At__c.field-meta.xml"
        ),
    ),
    (
        "force-app/main/default/objects/LMS_Sync_Settings__c/LMS_Sync_Settings__c.object-meta.xml",
        include_str!(
            "../../../infra/salesforce/force-app/main/default/objects/LMS_Sync_Settings__c/LMS_Sync_Settings__c.object-meta.xml"
        ),
    ),
    (
        "force-app/main/default/objects/LMS_Sync_Settings__c/fields/Bypass_Automation__c.field-meta.xml",
        include_str!(
            "../../../infra/salesforce/force-app/main/default/objects/LMS_Sync_Settings__c/fields/Bypass_Automation__c.field-meta.xml"
        ),
    ),
];

/// The package's files: relative path → content.
type Files = BTreeMap<String, String>;

/// One object's files: its object-meta (path, text) and its fields (path, text).
type ObjectFiles = (Option<(String, String)>, Vec<(String, String)>);

fn read_dir_files(root: &Path) -> Result<Files, SchemaError> {
    let mut out = Files::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| SchemaError(format!("{}: {e}", dir.display())))?;
        for entry in entries {
            let entry = entry.map_err(|e| SchemaError(format!("{}: {e}", dir.display())))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name == "node_modules" {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if name == "sfdx-project.json" || name.ends_with("-meta.xml") {
                let rel = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
                let text =
                    std::fs::read_to_string(&path).map_err(|e| SchemaError(format!("{}: {e}", path.display())))?;
                out.insert(rel, text);
            }
        }
    }
    Ok(out)
}

fn child_text<'a>(node: roxmltree::Node<'a, 'a>, name: &str) -> Option<&'a str> {
    node.children().find(|c| c.is_element() && c.tag_name().name() == name).and_then(|c| c.text()).map(str::trim)
}

fn child_bool(node: roxmltree::Node<'_, '_>, name: &str) -> bool {
    child_text(node, name).is_some_and(|t| t.eq_ignore_ascii_case("true"))
}

fn child_u32(node: roxmltree::Node<'_, '_>, name: &str, default: u32) -> Result<u32, SchemaError> {
    match child_text(node, name) {
        None => Ok(default),
        Some(t) => t.parse().map_err(|_| SchemaError(format!("<{name}>{t}</{name}> is not a number"))),
    }
}

fn parse_xml<'a>(path: &str, text: &'a str) -> Result<roxmltree::Document<'a>, SchemaError> {
    roxmltree::Document::parse(text).map_err(|e| SchemaError(format!("{path}: invalid XML: {e}")))
}

/// One `*.field-meta.xml` → field definition.
pub fn parse_field(path: &str, text: &str) -> Result<FieldDef, SchemaError> {
    let doc = parse_xml(path, text)?;
    let root = doc.root_element();
    if root.tag_name().name() != "CustomField" {
        return Err(SchemaError(format!("{path}: root element is not CustomField")));
    }
    let err = |m: String| SchemaError(format!("{path}: {m}"));
    let name = child_text(root, "fullName").ok_or_else(|| err("no <fullName>".into()))?;
    let label = child_text(root, "label").unwrap_or(name);
    let ty_name = child_text(root, "type").ok_or_else(|| err("no <type>".into()))?;
    let formula = child_text(root, "formula").is_some();
    let values = || -> (Vec<String>, bool, Option<String>) {
        let Some(vs) = root.children().find(|c| c.tag_name().name() == "valueSet") else {
            return (Vec::new(), false, None);
        };
        let restricted = child_bool(vs, "restricted");
        let mut values = Vec::new();
        let mut default = None;
        if let Some(def) = vs.children().find(|c| c.tag_name().name() == "valueSetDefinition") {
            for v in def.children().filter(|c| c.tag_name().name() == "value") {
                if let Some(full) = child_text(v, "fullName") {
                    if child_bool(v, "default") {
                        default = Some(full.to_owned());
                    }
                    values.push(full.to_owned());
                }
            }
        }
        (values, restricted, default)
    };
    let mut picklist_default = None;
    let ty = match ty_name {
        "Text" => FieldType::Text { length: child_u32(root, "length", 255)? as usize },
        "TextArea" => FieldType::TextArea { length: 255, long: false },
        "LongTextArea" | "Html" => {
            FieldType::TextArea { length: child_u32(root, "length", 32768)? as usize, long: true }
        }
        "Email" => FieldType::Email,
        "Phone" => FieldType::Phone,
        "Url" => FieldType::Url,
        "Number" => {
            FieldType::Number { precision: child_u32(root, "precision", 18)?, scale: child_u32(root, "scale", 0)? }
        }
        "Currency" => {
            FieldType::Currency { precision: child_u32(root, "precision", 18)?, scale: child_u32(root, "scale", 2)? }
        }
        "Percent" => {
            FieldType::Percent { precision: child_u32(root, "precision", 18)?, scale: child_u32(root, "scale", 0)? }
        }
        "Checkbox" => FieldType::Boolean,
        "Date" => FieldType::Date,
        "DateTime" => FieldType::DateTime,
        "Picklist" | "MultiselectPicklist" => {
            let (vals, restricted, default) = values();
            picklist_default = default;
            if ty_name == "Picklist" {
                FieldType::Picklist { values: vals, restricted }
            } else {
                FieldType::MultiPicklist { values: vals, restricted }
            }
        }
        "Lookup" | "MasterDetail" => {
            let to = child_text(root, "referenceTo").ok_or_else(|| err("a lookup needs <referenceTo>".into()))?;
            let base = name.strip_suffix("__c").ok_or_else(|| err("a custom lookup name ends with __c".into()))?;
            FieldType::Reference { to: vec![to.to_owned()], relationship: format!("{base}__r") }
        }
        "AutoNumber" => parse_display_format(child_text(root, "displayFormat").unwrap_or("{0}"))
            .ok_or_else(|| err("bad <displayFormat>".into()))?,
        other => return Err(err(format!("unsupported field type {other}"))),
    };
    let mut f = FieldDef::new(name, label, ty);
    f.custom = true;
    f.external_id = child_bool(root, "externalId");
    f.unique = child_bool(root, "unique");
    f.case_sensitive = child_bool(root, "caseSensitive");
    f.id_lookup = f.external_id || matches!(f.ty, FieldType::AutoNumber { .. });
    f.required = child_bool(root, "required") || ty_name == "MasterDetail";
    f.description = child_text(root, "description").map(str::to_owned);
    f.help_text = child_text(root, "inlineHelpText").map(str::to_owned);
    f.child_relationship = child_text(root, "relationshipName").map(str::to_owned);
    if ty_name == "MasterDetail" && !child_bool(root, "reparentableMasterDetail") {
        f.origin = Origin::CreateOnly;
    }
    if formula || ty_name == "AutoNumber" {
        f.origin = Origin::System;
    }
    f.default = match (&f.ty, child_text(root, "defaultValue")) {
        (FieldType::Boolean, d) => Some(FieldValue::Bool(d.is_some_and(|d| d.eq_ignore_ascii_case("true")))),
        (_, _) => picklist_default.map(FieldValue::Text),
    };
    if f.unique && !f.ty.is_textual() && !f.ty.is_numeric() {
        return Err(err("only text and number fields can be unique".into()));
    }
    Ok(f)
}

struct ObjectMeta {
    label: String,
    plural: String,
    name_field: FieldDef,
    custom_setting: Option<CustomSetting>,
    description: Option<String>,
    activities: bool,
}

fn parse_object(path: &str, text: &str, api_name: &str) -> Result<ObjectMeta, SchemaError> {
    let doc = parse_xml(path, text)?;
    let root = doc.root_element();
    if root.tag_name().name() != "CustomObject" {
        return Err(SchemaError(format!("{path}: root element is not CustomObject")));
    }
    let label = child_text(root, "label").unwrap_or(api_name).to_owned();
    let plural = child_text(root, "pluralLabel").map(str::to_owned).unwrap_or_else(|| label.clone());
    let custom_setting = match child_text(root, "customSettingsType") {
        Some("Hierarchy") => Some(CustomSetting::Hierarchy),
        Some("List") => Some(CustomSetting::List),
        Some(other) => return Err(SchemaError(format!("{path}: unknown customSettingsType {other}"))),
        None => None,
    };
    let name_field = match root.children().find(|c| c.tag_name().name() == "nameField") {
        Some(nf) => {
            let nlabel = child_text(nf, "label").unwrap_or("Name").replace(' ', "_");
            match child_text(nf, "type") {
                Some("AutoNumber") => {
                    let fmt = child_text(nf, "displayFormat").unwrap_or("{0}");
                    parse_field_spec(&format!("Name autonum({fmt}) name label={nlabel}"))?
                }
                _ => parse_field_spec(&format!("Name string(80) name defaulted label={nlabel}"))?,
            }
        }
        None if custom_setting.is_some() => {
            parse_field_spec(&format!("Name string(80) name sys label={}_Name", label.replace(' ', "_")))?
        }
        None => parse_field_spec("Name string(80) name defaulted")?,
    };
    Ok(ObjectMeta {
        label,
        plural,
        name_field,
        custom_setting,
        description: child_text(root, "description").map(str::to_owned),
        activities: child_bool(root, "enableActivities"),
    })
}

/// Platform fields of a custom object (or custom setting), in describe order, around
/// its name field.
fn custom_object_fields(meta: &ObjectMeta) -> Result<Vec<FieldDef>, SchemaError> {
    let mut out = Vec::new();
    let spec = |l: &str| parse_field_spec(l);
    out.push(spec("Id id")?);
    if meta.custom_setting.is_none() {
        out.push(spec("OwnerId ref(Group|User) defaulted")?);
    }
    out.push(spec("IsDeleted bool sys label=Deleted")?);
    out.push(meta.name_field.clone());
    if meta.custom_setting == Some(CustomSetting::Hierarchy) {
        let mut owner = spec(
            "SetupOwnerId ref(Organization|Profile|User) createonly defaulted unique cs rel=SetupOwner label=Location",
        )?;
        owner.id_lookup = false;
        out.push(owner);
    }
    for l in crate::standard::audit_lines() {
        out.push(spec(l)?);
    }
    if meta.custom_setting.is_none() {
        if meta.activities {
            out.push(spec("LastActivityDate date sys")?);
        }
        out.push(spec("LastViewedDate datetime sys")?);
        out.push(spec("LastReferencedDate datetime sys")?);
    }
    Ok(out)
}

/// Builds the schema from the package's files on top of the built-in standard objects.
pub fn schema_from_files(files: &Files, source: &str) -> Result<Schema, SchemaError> {
    let project = files.get("sfdx-project.json").ok_or_else(|| SchemaError("no sfdx-project.json".into()))?;
    let project: serde_json::Value =
        serde_json::from_str(project).map_err(|e| SchemaError(format!("sfdx-project.json: {e}")))?;
    let dirs: Vec<String> = project
        .get("packageDirectories")
        .and_then(|d| d.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|d| d.get("path").and_then(|p| p.as_str()))
                .map(|p| p.trim_matches('/').to_owned())
                .collect()
        })
        .unwrap_or_default();
    if dirs.is_empty() {
        return Err(SchemaError("sfdx-project.json: no packageDirectories".into()));
    }
    let mut objects = crate::standard::objects()?;
    // Object → (object-meta, fields by file name).
    let mut found: BTreeMap<String, ObjectFiles> = BTreeMap::new();
    for (path, text) in files {
        if !dirs.iter().any(|d| path.starts_with(&format!("{d}/"))) {
            continue;
        }
        let segs: Vec<&str> = path.split('/').collect();
        let Some(pos) = segs.iter().position(|s| *s == "objects") else { continue };
        let (Some(obj), Some(rest)) = (segs.get(pos + 1), segs.get(pos + 2..)) else { continue };
        let entry = found.entry((*obj).to_owned()).or_default();
        match rest {
            [file] if *file == format!("{obj}.object-meta.xml") => entry.0 = Some((path.clone(), text.clone())),
            ["fields", file] if file.ends_with(".field-meta.xml") => entry.1.push((path.clone(), text.clone())),
            _ => {}
        }
    }
    let mut next_custom = 0usize;
    for (api_name, (object_meta, fields)) in found {
        let mut own = Vec::with_capacity(fields.len());
        for (path, text) in &fields {
            let f = parse_field(path, text)?;
            let expected = path.rsplit('/').next().and_then(|n| n.strip_suffix(".field-meta.xml")).unwrap_or("");
            if f.name != expected {
                return Err(SchemaError(format!(
                    "{path}: <fullName>{}</fullName> does not match the file name",
                    f.name
                )));
            }
            own.push(f);
        }
        if let Some(existing) = objects.iter_mut().find(|o| o.name.eq_ignore_ascii_case(&api_name)) {
            for f in own {
                if existing.field(&f.name).is_some() {
                    return Err(SchemaError(format!("{api_name}.{} already exists", f.name)));
                }
                existing.fields.push(f);
            }
            existing.reindex();
            continue;
        }
        let Some((path, text)) = object_meta else {
            return Err(SchemaError(format!(
                "objects/{api_name}: fields without an object-meta.xml for a custom object"
            )));
        };
        if !api_name.ends_with("__c") {
            return Err(SchemaError(format!("{path}: unknown standard object {api_name}")));
        }
        let meta = parse_object(&path, &text, &api_name)?;
        let mut all = custom_object_fields(&meta)?;
        all.extend(own);
        // Key prefixes a0A, a0B, ... in name order.
        let prefix = format!("a0{}", crate::ids::base62_digit(10 + next_custom));
        next_custom += 1;
        let mut o = ObjectDef::new(&api_name, &meta.label, &meta.plural, &prefix, all);
        o.custom_setting = meta.custom_setting;
        o.description = meta.description;
        objects.push(o);
    }
    Ok(Schema::from_objects(objects, source))
}

/// Loads the schema from the package located by [`locate`].
pub fn load_schema(explicit: Option<&Path>) -> Result<Schema, SchemaError> {
    match locate(explicit)? {
        Source::Dir(dir) => {
            let files = read_dir_files(&dir)?;
            schema_from_files(&files, &dir.display().to_string())
        }
        Source::Embedded => Ok(embedded_schema()),
    }
}

/// The schema from the copy of the package embedded at build time.
pub fn embedded_schema() -> Schema {
    let files: Files = EMBEDDED.iter().map(|(p, t)| ((*p).to_owned(), (*t).to_owned())).collect();
    match schema_from_files(&files, &Source::Embedded.to_string()) {
        Ok(s) => s,
        Err(e) => {
            // The embedded package is checked by this crate's tests; should it ever be
            // broken, serve the standard objects alone rather than not at all.
            tracing::error!(error = %e, "embedded metadata is invalid");
            Schema::from_objects(crate::standard::objects().unwrap_or_default(), "standard objects only")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_package_matches_the_directory() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/salesforce");
        let files = read_dir_files(&dir).unwrap();
        let embedded: Files = EMBEDDED.iter().map(|(p, t)| ((*p).to_owned(), (*t).to_owned())).collect();
        assert_eq!(
            files.keys().filter(|k| k.contains("/objects/") || *k == "sfdx-project.json").collect::<Vec<_>>(),
            embedded.keys().collect::<Vec<_>>(),
            "every object/field file of infra/salesforce is embedded"
        );
        for (k, v) in &embedded {
            assert_eq!(files.get(k), Some(v), "{k} differs from its embedded copy");
        }
    }

    #[test]
    fn learnlink_objects_load() {
        let s = embedded_schema();
        let e = s.object("LMS_Enrollment__c").unwrap();
        let status = e.field("Status__c").unwrap();
        assert_eq!(
            status.ty,
            FieldType::Picklist {
                values: vec!["Enrolled".into(), "In Progress".into(), "Completed".into(), "Expired".into()],
                restricted: true
            }
        );
        assert_eq!(status.default, Some(FieldValue::Text("Enrolled".into())));
        let ext = e.field("LMS_Enrollment_Id__c").unwrap();
        assert!(ext.external_id && ext.unique && !ext.case_sensitive);
        assert_eq!(e.field("Name").unwrap().ty, FieldType::AutoNumber { prefix: "ENR-".into(), digits: 7 });
        assert_eq!(
            e.field("Contact__c").unwrap().ty,
            FieldType::Reference { to: vec!["Contact".into()], relationship: "Contact__r".into() }
        );
        let settings = s.object("LMS_Sync_Settings__c").unwrap();
        assert_eq!(settings.custom_setting, Some(CustomSetting::Hierarchy));
        assert!(settings.field("SetupOwnerId").is_some());
        assert_eq!(settings.field("Bypass_Automation__c").unwrap().default, Some(FieldValue::Bool(false)));
        let contact = s.object("Contact").unwrap();
        assert!(contact.field("LMS_Learner_Id__c").unwrap().external_id);
        let c = s.object_index("Contact").unwrap();
        assert!(s.child_relationships(c).iter().any(|r| r.relationship_name.as_deref() == Some("LMS_Enrollments__r")));
    }

    #[test]
    fn bad_metadata_is_reported() {
        let mut files: Files = EMBEDDED.iter().map(|(p, t)| ((*p).to_owned(), (*t).to_owned())).collect();
        files.insert(
            "force-app/main/default/objects/LMS_Enrollment__c/fields/Bad__c.field-meta.xml".into(),
            "<CustomField><fullName>Bad__c</fullName><type>Hologram</type></CustomField>".into(),
        );
        let e = schema_from_files(&files, "test").unwrap_err();
        assert!(e.0.contains("unsupported field type Hologram"), "{e}");
    }
}

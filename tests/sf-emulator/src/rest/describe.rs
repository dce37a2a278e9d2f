//! Describe: `GET /sobjects` (global), `GET /sobjects/{T}` (basic information) and
//! `GET /sobjects/{T}/describe`, built from the schema (standard objects + the
//! learnlink metadata package). Keys are in Salesforce's (alphabetical) order.

use serde_json::{Map, Value as Json, json};

use crate::errors::ApiError;
use crate::rest::Resp;
use crate::schema::{CustomSetting, FieldDef, FieldType, ObjectDef, Origin, Schema};

fn urls(o: &ObjectDef, version: &str) -> Json {
    let base = format!("/services/data/{version}/sobjects/{}", o.name);
    if o.custom_setting.is_some() {
        json!({"sobject": base, "describe": format!("{base}/describe"), "rowTemplate": format!("{base}/{{ID}}")})
    } else {
        json!({
            "compactLayouts": format!("{base}/describe/compactLayouts"),
            "rowTemplate": format!("{base}/{{ID}}"),
            "approvalLayouts": format!("{base}/describe/approvalLayouts"),
            "defaultValues": format!("{base}/defaultValues?recordTypeId&fields"),
            "listviews": format!("{base}/listviews"),
            "describe": format!("{base}/describe"),
            "quickActions": format!("{base}/quickActions"),
            "layouts": format!("{base}/describe/layouts"),
            "sobject": base,
        })
    }
}

fn summary(o: &ObjectDef, version: &str) -> Map<String, Json> {
    let setting = o.custom_setting.is_some();
    let m = json!({
        "activateable": false,
        "associateEntityType": null,
        "associateParentEntity": null,
        "createable": o.createable,
        "custom": o.custom,
        "customSetting": setting,
        "deepCloneable": false,
        "deletable": o.deletable,
        "deprecatedAndHidden": false,
        "feedEnabled": !setting && !o.custom,
        "hasSubtypes": false,
        "isInterface": false,
        "isSubtype": false,
        "keyPrefix": o.key_prefix,
        "label": o.label,
        "labelPlural": o.label_plural,
        "layoutable": !setting,
        "mergeable": matches!(o.name.as_str(), "Account" | "Contact" | "Case"),
        "mruEnabled": !setting,
        "name": o.name,
        "queryable": o.queryable(),
        "replicateable": true,
        "retrieveable": true,
        "searchable": !setting,
        "triggerable": true,
        "undeletable": o.deletable,
        "updateable": o.updateable,
        "urls": urls(o, version),
    });
    match m {
        Json::Object(m) => m,
        _ => Map::new(),
    }
}

/// `GET /sobjects`.
pub fn global(schema: &Schema, version: &str) -> Json {
    let mut objects: Vec<&ObjectDef> = schema.objects.iter().collect();
    objects.sort_by(|a, b| a.name.cmp(&b.name));
    let sobjects: Vec<Json> = objects.iter().map(|o| Json::Object(summary(o, version))).collect();
    json!({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": sobjects})
}

/// `GET /sobjects/{T}`: basic information and recent items.
pub fn basic_info(schema: &Schema, name: &str, version: &str) -> Resp {
    match schema.object(name) {
        Some(o) => Resp::ok(&json!({"objectDescribe": summary(o, version), "recentItems": []})),
        None => Resp::error(&ApiError::not_found()),
    }
}

fn precision_scale(ty: &FieldType) -> (u32, u32, u32) {
    match ty {
        FieldType::Number { precision, scale }
        | FieldType::Currency { precision, scale }
        | FieldType::Percent { precision, scale } => (*precision, *scale, 0),
        FieldType::Int { digits } => (0, 0, *digits),
        _ => (0, 0, 0),
    }
}

/// One field of describe.
pub fn field(o: &ObjectDef, f: &FieldDef) -> Json {
    let (precision, scale, digits) = precision_scale(&f.ty);
    let length = f.ty.length();
    let (reference_to, relationship) = match &f.ty {
        FieldType::Reference { to, relationship } => (to.clone(), Some(relationship.clone())),
        _ => (Vec::new(), None),
    };
    let picklist: Vec<Json> = match &f.ty {
        FieldType::Picklist { values, .. } | FieldType::MultiPicklist { values, .. } => values
            .iter()
            .map(|v| {
                json!({
                    "active": true,
                    "defaultValue": f.default.as_ref().and_then(|d| d.as_text()) == Some(v.as_str()),
                    "label": v,
                    "validFor": null,
                    "value": v,
                })
            })
            .collect(),
        _ => Vec::new(),
    };
    let restricted = matches!(
        &f.ty,
        FieldType::Picklist { restricted: true, .. } | FieldType::MultiPicklist { restricted: true, .. }
    );
    let compound = match &f.ty {
        FieldType::Address { .. } => None,
        _ => o.fields.iter().find_map(|c| match &c.ty {
            FieldType::Address { prefix }
                if f.name.starts_with(prefix.as_str()) && !prefix.is_empty() && f.name != c.name =>
            {
                Some(c.name.clone())
            }
            FieldType::Address { prefix }
                if prefix.is_empty()
                    && [
                        "Street",
                        "City",
                        "State",
                        "PostalCode",
                        "Country",
                        "StateCode",
                        "CountryCode",
                        "Latitude",
                        "Longitude",
                        "GeocodeAccuracy",
                    ]
                    .contains(&f.name.as_str()) =>
            {
                Some(c.name.clone())
            }
            _ => None,
        }),
    };
    let filterable = !matches!(f.ty, FieldType::TextArea { long: true, .. } | FieldType::Address { .. });
    let sortable = filterable && !matches!(f.ty, FieldType::MultiPicklist { .. });
    let soap = match &f.ty {
        FieldType::Id | FieldType::Reference { .. } => "tns:ID".to_owned(),
        FieldType::Address { .. } => "urn:address".to_owned(),
        other => format!("xsd:{}", other.soap_name()),
    };
    let default_value = match (&f.ty, &f.default) {
        (FieldType::Boolean, Some(d)) => d.to_json(),
        (FieldType::Picklist { .. }, _) => Json::Null,
        (_, Some(d)) => d.to_json(),
        _ => Json::Null,
    };
    json!({
        "aggregatable": filterable && f.ty != FieldType::Boolean,
        "aiPredictionField": false,
        "autoNumber": matches!(f.ty, FieldType::AutoNumber { .. }),
        "byteLength": length * 3,
        "calculated": f.origin == Origin::Computed && !matches!(f.ty, FieldType::Address { .. }) && !f.name_field,
        "calculatedFormula": null,
        "cascadeDelete": false,
        "caseSensitive": f.case_sensitive,
        "compoundFieldName": compound,
        "controllerName": null,
        "createable": f.createable(),
        "custom": f.custom,
        "defaultValue": default_value,
        "defaultValueFormula": null,
        "defaultedOnCreate": f.defaulted_on_create || f.default.is_some() || f.origin == Origin::System,
        "dependentPicklist": false,
        "deprecatedAndHidden": false,
        "digits": digits,
        "displayLocationInDecimal": false,
        "encrypted": false,
        "externalId": f.external_id,
        "extraTypeInfo": match &f.ty {
            FieldType::TextArea { long: true, .. } => Json::String("plaintextarea".into()),
            FieldType::Url if f.name.ends_with("PhotoUrl") => Json::String("imageurl".into()),
            _ => Json::Null,
        },
        "filterable": filterable,
        "filteredLookupInfo": null,
        "formulaTreatNullNumberAsZero": false,
        "groupable": sortable && !f.ty.is_numeric() && f.ty != FieldType::DateTime,
        "highScaleNumber": false,
        "htmlFormatted": false,
        "idLookup": f.id_lookup,
        "inlineHelpText": f.help_text,
        "label": f.label,
        "length": length,
        "mask": null,
        "maskType": null,
        "name": f.name,
        "nameField": f.name_field,
        "namePointing": reference_to.len() > 1,
        "nillable": f.nillable(),
        "permissionable": f.custom && !f.required,
        "picklistValues": picklist,
        "polymorphicForeignKey": reference_to.len() > 1,
        "precision": precision,
        "queryByDistance": false,
        "referenceTargetField": null,
        "referenceTo": reference_to,
        "relationshipName": relationship,
        "relationshipOrder": null,
        "restrictedDelete": false,
        "restrictedPicklist": restricted,
        "scale": scale,
        "searchPrefilterable": matches!(f.ty, FieldType::Reference { .. }),
        "soapType": soap,
        "sortable": sortable,
        "type": f.ty.describe_name(),
        "unique": f.unique,
        "updateable": f.updateable(),
        "writeRequiresMasterRead": false,
    })
}

/// `GET /sobjects/{T}/describe`.
pub fn object(schema: &Schema, name: &str, version: &str) -> Resp {
    let (Some(idx), Some(o)) = (schema.object_index(name), schema.object(name)) else {
        return Resp::error(&ApiError::not_found());
    };
    let mut m = summary(o, version);
    let children: Vec<Json> = schema
        .child_relationships(idx)
        .iter()
        .map(|c| {
            json!({
                "cascadeDelete": c.cascade_delete,
                "childSObject": c.child_object,
                "deprecatedAndHidden": false,
                "field": c.field,
                "junctionIdListNames": [],
                "junctionReferenceTo": [],
                "relationshipName": c.relationship_name,
                "restrictedDelete": false,
            })
        })
        .collect();
    let fields: Vec<Json> = o.fields.iter().map(|f| field(o, f)).collect();
    let extra = json!({
        "actionOverrides": [],
        "childRelationships": children,
        "compactLayoutable": o.custom_setting.is_none(),
        "defaultImplementation": null,
        "extendedBy": null,
        "extendsInterfaces": null,
        "fields": fields,
        "implementedBy": null,
        "implementsInterfaces": null,
        "listviewable": null,
        "lookupLayoutable": null,
        "namedLayoutInfos": [],
        "networkScopeFieldName": null,
        "recordTypeInfos": if o.custom_setting.is_some() { json!([]) } else { json!([{
            "active": true,
            "available": true,
            "defaultRecordTypeMapping": true,
            "developerName": "Master",
            "master": true,
            "name": "Master",
            "recordTypeId": "012000000000000AAA",
            "urls": {"layout": format!("/services/data/{version}/sobjects/{}/describe/layouts/012000000000000AAA", o.name)},
        }]) },
        "searchLayoutable": o.custom_setting.is_none(),
        "sobjectDescribeOption": "FULL",
        "supportedScopes": if o.custom_setting == Some(CustomSetting::Hierarchy) || o.custom_setting == Some(CustomSetting::List) {
            json!([])
        } else {
            json!([{"label": "All records", "name": "everything"}, {"label": "My records", "name": "mine"}])
        },
    });
    if let Json::Object(e) = extra {
        m.extend(e);
    }
    let mut sorted: Vec<(String, Json)> = m.into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    Resp::ok(&Json::Object(sorted.into_iter().collect()))
}

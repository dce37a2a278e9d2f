//! The seeded org: an Organization record, profiles with their profile-owned
//! permission sets, the learnlink permission sets, an admin user and the integration
//! user, and the permission set assignments — what a least-privilege check queries.

use serde::Serialize;

use crate::ids;
use crate::schema::Schema;
use crate::state::Config;
use crate::store::{Store, WriteCtx};
use crate::values::{FieldValue, now_ms};

/// Profile of a least-privilege integration user.
pub const INTEGRATION_PROFILE: &str = "Minimum Access - API Only Integrations";
/// The administrator profile.
pub const ADMIN_PROFILE: &str = "System Administrator";
/// Permission set granting the integration user access to learnlink's objects.
pub const INTEGRATION_PERMSET: &str = "LearnLink_Integration";
/// Permission set with Modify All Data (assigned only when configured: a
/// least-privilege violation the product must warn about).
pub const MODIFY_ALL_PERMSET: &str = "LearnLink_Admin_Override";

/// Identity of the org and its users.
#[derive(Debug, Clone, Serialize)]
pub struct Identity {
    pub org_id: String,
    pub org_name: String,
    pub sandbox: bool,
    pub integration_user_id: String,
    pub integration_username: String,
    /// Author of records seeded through the admin API (not the integration user,
    /// so loop prevention can tell them apart).
    pub admin_user_id: String,
    pub admin_username: String,
    pub profiles: Vec<(String, String)>,
    pub permission_sets: Vec<(String, String)>,
}

fn put(schema: &Schema, store: &mut Store, object: &str, values: &[(&str, FieldValue)], ctx: WriteCtx<'_>) -> String {
    let (Some(o), Some(def)) = (schema.object_index(object), schema.object(object)) else {
        return String::new();
    };
    let mut row = vec![FieldValue::Null; def.fields.len()];
    for (name, v) in values {
        if let Some(slot) = def.field_index(name).and_then(|i| row.get_mut(i)) {
            *slot = v.clone();
        }
    }
    let id = store.mint_id(def);
    store.insert(def, o, id.clone(), row, ctx);
    id
}

fn text(s: &str) -> FieldValue {
    FieldValue::Text(s.to_owned())
}

const PERMS: [&str; 8] = [
    "PermissionsModifyAllData",
    "PermissionsViewAllData",
    "PermissionsApiEnabled",
    "PermissionsApiUserOnly",
    "PermissionsAuthorApex",
    "PermissionsManageUsers",
    "PermissionsCustomizeApplication",
    "PermissionsViewSetup",
];

fn perms(granted: &[&str]) -> Vec<(&'static str, FieldValue)> {
    PERMS.iter().map(|p| (*p, FieldValue::Bool(granted.contains(p)))).collect()
}

/// Seeds the org into an empty store.
pub fn seed_org(schema: &Schema, store: &mut Store, config: &Config, base_url: &str) -> Identity {
    // Ids are minted in a fixed order, so they are the same in every run.
    let org_id = ids::mint("00D", 1);
    let admin_user_id = ids::mint("005", 2);
    let now = now_ms();
    let ctx = WriteCtx { user_id: &admin_user_id, org_id: &org_id, now_ms: now };
    let host = base_url.split("://").nth(1).unwrap_or("emulator").split(['/', ':']).next().unwrap_or("emulator");
    let org_name = "learnlink Emulator Org".to_owned();

    // The Organization record takes the pre-computed org id.
    if let (Some(o), Some(def)) = (schema.object_index("Organization"), schema.object("Organization")) {
        let mut row = vec![FieldValue::Null; def.fields.len()];
        let mut set = |n: &str, v: FieldValue| {
            if let Some(slot) = def.field_index(n).and_then(|i| row.get_mut(i)) {
                *slot = v;
            }
        };
        set("Name", text(&org_name));
        set("Country", text("US"));
        set("DefaultLocaleSidKey", text("en_US"));
        set("TimeZoneSidKey", text("America/Los_Angeles"));
        set("LanguageLocaleKey", text("en_US"));
        set("OrganizationType", text("Developer Edition"));
        set("InstanceName", text("EM1"));
        set("IsSandbox", FieldValue::Bool(config.sandbox));
        set("FiscalYearStartMonth", FieldValue::Number(1.0));
        set("DefaultAccountAccess", text("Edit"));
        set("DefaultContactAccess", text("ControlledByParent"));
        set("PrimaryContact", text("Emulator Admin"));
        store.insert(def, o, org_id.clone(), row, ctx);
    }
    // Keep the id counter past the two pre-computed ids.
    let _ = store.mint_id_counter_at_least(3);

    let license = ids::mint("100", 1);
    let mut profiles = Vec::new();
    let mut profile_permsets = Vec::new();
    for (name, granted, user_type) in [
        (
            ADMIN_PROFILE,
            &PERMS[..].iter().filter(|p| **p != "PermissionsApiUserOnly").copied().collect::<Vec<_>>(),
            "Standard",
        ),
        (INTEGRATION_PROFILE, &vec!["PermissionsApiEnabled", "PermissionsApiUserOnly"], "Standard"),
        ("Standard User", &vec!["PermissionsApiEnabled"], "Standard"),
    ] {
        let mut values = vec![
            ("Name", text(name)),
            ("UserLicenseId", text(&license)),
            ("UserType", text(user_type)),
            ("Description", FieldValue::Null),
        ];
        values.extend(perms(granted));
        let pid = put(schema, store, "Profile", &values, ctx);
        let ps_name = format!("X{}", pid.get(..15).unwrap_or_default());
        let mut ps_values = vec![
            ("Name", text(&ps_name)),
            ("Label", text(&ps_name)),
            ("ProfileId", text(&pid)),
            ("IsOwnedByProfile", FieldValue::Bool(true)),
            ("IsCustom", FieldValue::Bool(false)),
            ("Type", text("Profile")),
        ];
        ps_values.extend(perms(granted));
        let psid = put(schema, store, "PermissionSet", &ps_values, ctx);
        profiles.push((name.to_owned(), pid.clone()));
        profile_permsets.push((pid, psid));
    }
    let mut permission_sets = Vec::new();
    for (name, label, granted) in [
        (INTEGRATION_PERMSET, "LearnLink Integration", vec!["PermissionsApiEnabled"]),
        (
            MODIFY_ALL_PERMSET,
            "LearnLink Admin Override",
            vec!["PermissionsApiEnabled", "PermissionsModifyAllData", "PermissionsViewAllData"],
        ),
    ] {
        let mut values = vec![
            ("Name", text(name)),
            ("Label", text(label)),
            ("IsOwnedByProfile", FieldValue::Bool(false)),
            ("IsCustom", FieldValue::Bool(true)),
            ("Type", text("Regular")),
        ];
        values.extend(perms(&granted));
        let id = put(schema, store, "PermissionSet", &values, ctx);
        permission_sets.push((name.to_owned(), id));
    }
    let profile_id =
        |name: &str| profiles.iter().find(|(n, _)| n == name).map(|(_, id)| id.clone()).unwrap_or_default();

    // The admin user takes the pre-computed id.
    let admin_username = format!("admin@{host}.emulator");
    if let (Some(o), Some(def)) = (schema.object_index("User"), schema.object("User")) {
        let mut row = vec![FieldValue::Null; def.fields.len()];
        for (n, v) in user_values("Emulator", "Admin", &admin_username, "eadmin", &profile_id(ADMIN_PROFILE)) {
            if let Some(slot) = def.field_index(n).and_then(|i| row.get_mut(i)) {
                *slot = v;
            }
        }
        store.insert(def, o, admin_user_id.clone(), row, ctx);
    }
    let integration_username = format!("learnlink.integration@{host}.emulator");
    let integration_profile = if config.integration_user_admin { ADMIN_PROFILE } else { INTEGRATION_PROFILE };
    let integration_user_id = put(
        schema,
        store,
        "User",
        &user_values("LearnLink", "Integration", &integration_username, "llint", &profile_id(integration_profile)),
        ctx,
    );
    let permset =
        |name: &str| permission_sets.iter().find(|(n, _)| n == name).map(|(_, id)| id.clone()).unwrap_or_default();
    let profile_ps =
        |pid: &str| profile_permsets.iter().find(|(p, _)| p == pid).map(|(_, ps)| ps.clone()).unwrap_or_default();
    let mut assignments = vec![
        (admin_user_id.clone(), profile_ps(&profile_id(ADMIN_PROFILE))),
        (integration_user_id.clone(), profile_ps(&profile_id(integration_profile))),
        (integration_user_id.clone(), permset(INTEGRATION_PERMSET)),
    ];
    if config.integration_user_modify_all_data {
        assignments.push((integration_user_id.clone(), permset(MODIFY_ALL_PERMSET)));
    }
    for (user, ps) in assignments {
        put(
            schema,
            store,
            "PermissionSetAssignment",
            &[("AssigneeId", text(&user)), ("PermissionSetId", text(&ps))],
            ctx,
        );
    }
    Identity {
        org_id,
        org_name,
        sandbox: config.sandbox,
        integration_user_id,
        integration_username,
        admin_user_id,
        admin_username,
        profiles,
        permission_sets,
    }
}

fn user_values(first: &str, last: &str, username: &str, alias: &str, profile: &str) -> Vec<(&'static str, FieldValue)> {
    vec![
        ("Username", text(username)),
        ("FirstName", text(first)),
        ("LastName", text(last)),
        ("Email", text(&format!("{}@example.com", alias))),
        ("Alias", text(alias)),
        ("CommunityNickname", text(alias)),
        ("IsActive", FieldValue::Bool(true)),
        ("TimeZoneSidKey", text("America/Los_Angeles")),
        ("LocaleSidKey", text("en_US")),
        ("EmailEncodingKey", text("UTF-8")),
        ("LanguageLocaleKey", text("en_US")),
        ("ProfileId", text(profile)),
        ("UserType", text("Standard")),
        ("Country", text("US")),
        ("CountryCode", text("US")),
        ("CompanyName", text("learnlink Emulator Org")),
        ("StartDay", text("8")),
        ("EndDay", text("17")),
        ("ReceivesInfoEmails", FieldValue::Bool(true)),
        ("UserPreferencesLightningExperiencePreferred", FieldValue::Bool(true)),
        ("DigestFrequency", text("N")),
        ("DefaultGroupNotificationFrequency", text("N")),
    ]
}

/// Changes the integration user's profile and its Modify All Data permission set
/// assignment (`POST /__emulator/integration-user`).
pub fn set_integration_rights(
    schema: &Schema,
    store: &mut Store,
    identity: &Identity,
    profile_name: Option<&str>,
    modify_all_data: Option<bool>,
) -> Result<(), String> {
    let ctx = WriteCtx { user_id: &identity.admin_user_id, org_id: &identity.org_id, now_ms: now_ms() };
    let (Some(uo), Some(udef)) = (schema.object_index("User"), schema.object("User")) else {
        return Err("no User object".into());
    };
    let (Some(pso), Some(psdef)) = (schema.object_index("PermissionSet"), schema.object("PermissionSet")) else {
        return Err("no PermissionSet object".into());
    };
    let (Some(pao), Some(padef)) =
        (schema.object_index("PermissionSetAssignment"), schema.object("PermissionSetAssignment"))
    else {
        return Err("no PermissionSetAssignment object".into());
    };
    let user_idx = store.find_live(uo, &identity.integration_user_id).ok_or("integration user missing")?;
    let f = |def: &crate::schema::ObjectDef, n: &str| def.field_index(n).unwrap_or(0);
    let assignee = f(padef, "AssigneeId");
    let permset = f(padef, "PermissionSetId");
    let user_assignments: Vec<(usize, String)> = store
        .table(pao)
        .map(|t| {
            t.live()
                .filter(|(_, r)| r.get(assignee).as_text() == Some(identity.integration_user_id.as_str()))
                .map(|(i, r)| (i, r.get(permset).as_text().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let ps_of_profile = |store: &Store, pid: &str| -> Option<String> {
        let pf = f(psdef, "ProfileId");
        store.table(pso)?.live().find(|(_, r)| r.get(pf).as_text() == Some(pid)).map(|(_, r)| r.id().to_owned())
    };
    if let Some(name) = profile_name {
        let pid = identity
            .profiles
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, id)| id.clone())
            .ok_or_else(|| format!("unknown profile {name}"))?;
        let old = store.record(uo, user_idx).and_then(|r| r.get(f(udef, "ProfileId")).as_text().map(str::to_owned));
        if let Some(old_ps) = old.as_deref().and_then(|o| ps_of_profile(store, o)) {
            for (idx, ps) in &user_assignments {
                if *ps == old_ps {
                    store.delete(padef, pao, *idx, ctx);
                }
            }
        }
        store.update(udef, uo, user_idx, &[(f(udef, "ProfileId"), FieldValue::Text(pid.clone()))], ctx);
        if let Some(new_ps) = ps_of_profile(store, &pid) {
            put(
                schema,
                store,
                "PermissionSetAssignment",
                &[("AssigneeId", text(&identity.integration_user_id)), ("PermissionSetId", text(&new_ps))],
                ctx,
            );
        }
    }
    if let Some(on) = modify_all_data {
        let ps = identity
            .permission_sets
            .iter()
            .find(|(n, _)| n == MODIFY_ALL_PERMSET)
            .map(|(_, id)| id.clone())
            .unwrap_or_default();
        let existing: Vec<usize> = user_assignments.iter().filter(|(_, p)| *p == ps).map(|(i, _)| *i).collect();
        if on && existing.is_empty() {
            put(
                schema,
                store,
                "PermissionSetAssignment",
                &[("AssigneeId", text(&identity.integration_user_id)), ("PermissionSetId", text(&ps))],
                ctx,
            );
        }
        if !on {
            for idx in existing {
                store.delete(padef, pao, idx, ctx);
            }
        }
    }
    Ok(())
}

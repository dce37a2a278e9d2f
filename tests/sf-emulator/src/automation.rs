//! Stand-in for the sample Apex trigger of `infra/salesforce` (`LMSEnrollmentTrigger`):
//! after each successful insert or update of an `LMS_Enrollment__c`, one follow-up Task
//! is created (and listed at `GET /__emulator/automation`), unless the hierarchy custom
//! setting `LMS_Sync_Settings__c.Bypass_Automation__c` resolves to true for the writing
//! user — user record first, then the user's profile, then the org default
//! (`SetupOwnerId` = org id), as `LMS_Sync_Settings__c.getInstance()` does.

use crate::schema::Schema;
use crate::store::{SideEffect, Store, WriteCtx};
use crate::values::{FieldValue, format_datetime};

/// The object whose writes fire the stand-in trigger.
pub const TRIGGER_OBJECT: &str = "LMS_Enrollment__c";
/// The hierarchy custom setting and its switch.
pub const SETTINGS_OBJECT: &str = "LMS_Sync_Settings__c";
pub const BYPASS_FIELD: &str = "Bypass_Automation__c";

/// Whether `Bypass_Automation__c` resolves to true for `user_id`.
pub fn bypassed(schema: &Schema, store: &Store, user_id: &str, org_id: &str) -> bool {
    let (Some(so), Some(sdef)) = (schema.object_index(SETTINGS_OBJECT), schema.object(SETTINGS_OBJECT)) else {
        return false;
    };
    let (Some(owner_f), Some(bypass_f)) = (sdef.field_index("SetupOwnerId"), sdef.field_index(BYPASS_FIELD)) else {
        return false;
    };
    let profile = schema.object_index("User").and_then(|uo| {
        let udef = schema.objects.get(uo)?;
        let pf = udef.field_index("ProfileId")?;
        let idx = store.find_live(uo, user_id)?;
        store.record(uo, idx)?.get(pf).as_text().map(str::to_owned)
    });
    let levels = [Some(user_id.to_owned()), profile, Some(org_id.to_owned())];
    for owner in levels.into_iter().flatten() {
        if let Some(idx) = store.find_unique(sdef, so, owner_f, &FieldValue::Text(owner)) {
            return store.record(so, idx).is_some_and(|r| *r.get(bypass_f) == FieldValue::Bool(true));
        }
    }
    false
}

/// Runs after a successful write of record `idx` of `object`.
pub fn after_write(schema: &Schema, store: &mut Store, object: usize, idx: usize, created: bool, ctx: WriteCtx<'_>) {
    if schema.object_index(TRIGGER_OBJECT) != Some(object) {
        return;
    }
    if bypassed(schema, store, ctx.user_id, ctx.org_id) {
        return;
    }
    let (Some(def), Some(rec)) = (schema.objects.get(object), store.record(object, idx)) else { return };
    let text = |name: &str| def.field_index(name).and_then(|f| rec.get(f).as_text()).map(str::to_owned);
    let record_id = rec.id().to_owned();
    let course = text("Course_Title__c").or_else(|| text("Course_Id__c")).unwrap_or_default();
    let contact = text("Contact__c");
    let subject =
        if created { format!("New LMS enrollment: {course}") } else { format!("LMS enrollment updated: {course}") };
    let (Some(task_o), Some(task_def)) = (schema.object_index("Task"), schema.object("Task")) else { return };
    let mut values = vec![FieldValue::Null; task_def.fields.len()];
    let mut set = |name: &str, v: FieldValue| {
        if let Some(slot) = task_def.field_index(name).and_then(|f| values.get_mut(f)) {
            *slot = v;
        }
    };
    set("Subject", FieldValue::Text(subject.clone()));
    set("WhatId", FieldValue::Text(record_id.clone()));
    if let Some(c) = contact {
        set("WhoId", FieldValue::Text(c));
    }
    set("ActivityDate", FieldValue::Date(i32::try_from(ctx.now_ms.div_euclid(86_400_000)).unwrap_or(0)));
    let task_id = store.mint_id(task_def);
    store.insert(task_def, task_o, task_id.clone(), values, ctx);
    store.push_effect(SideEffect {
        kind: "task".to_owned(),
        object: def.name.clone(),
        record_id,
        operation: if created { "insert" } else { "update" }.to_owned(),
        task_id,
        subject,
        at: format_datetime(ctx.now_ms),
    });
}

/**
 * Sample automation on LMS enrollments: one follow-up Task per enrollment written.
 * It honours the learnlink kill switch: while LMS_Sync_Settings__c.Bypass_Automation__c
 * is true (learnlink sets it during a backfill), it does nothing.
 */
trigger LMSEnrollmentTrigger on LMS_Enrollment__c (after insert, after update) {
    if (LMSEnrollmentTriggerHandler.isBypassed()) {
        return;
    }
    LMSEnrollmentTriggerHandler.createFollowUpTasks(Trigger.new, Trigger.isInsert);
}

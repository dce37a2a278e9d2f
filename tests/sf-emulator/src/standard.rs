//! Built-in standard objects, as a Developer Edition org describes them (field order
//! included: record GETs list the fields in this order). Written in the compact notation
//! of [`crate::schema::parse_field_spec`]. `@audit` expands to the five audit fields.
//!
//! Account, Contact, Case and Opportunity carry the sample custom fields every
//! Developer Edition org ships with (`SLA__c`, `Level__c`, ...), as the recorded org has.

use crate::schema::{ObjectDef, SchemaError};

const AUDIT: &str = "
CreatedDate datetime sys notnull
CreatedById ref(User) sys notnull rel=CreatedBy
LastModifiedDate datetime sys notnull
LastModifiedById ref(User) sys notnull rel=LastModifiedBy
SystemModstamp datetime sys notnull
";

fn address(prefix: &str) -> String {
    format!(
        "{p}Street textarea(255)
{p}City string(40)
{p}State string(80)
{p}PostalCode string(20)
{p}Country string(80)
{p}StateCode picklist(TX;CA;NY;WA;IL;MA;GA;FL;OR;NC;KS;AZ;CO)
{p}CountryCode picklist(US;CA;GB;FR;DE;JP;AU;SG;KE)
{p}Latitude double(18,15)
{p}Longitude double(18,15)
{p}GeocodeAccuracy picklist(Address;NearAddress;Block;Street;ExtendedZip;Zip;Neighborhood;City;County;State;Unknown)
{p}Address address",
        p = prefix
    )
}

const ACCOUNT: &str = "
Id id
IsDeleted bool sys
MasterRecordId ref(Account) sys rel=MasterRecord
Name string(255) req name
Type picklist(Prospect;Customer - Direct;Customer - Channel;Channel Partner / Reseller;Installation Partner;Technology Partner;Other) label=Account_Type
ParentId ref(Account) rel=Parent
@address(Billing)
@address(Shipping)
Phone phone label=Account_Phone
Fax phone label=Account_Fax
AccountNumber string(40)
Website url
PhotoUrl url sys
Sic string(20) label=SIC_Code
Industry picklist(Agriculture;Apparel;Banking;Biotechnology;Chemicals;Communications;Construction;Consulting;Education;Electronics;Energy;Engineering;Entertainment;Environmental;Finance;Food & Beverage;Government;Healthcare;Hospitality;Insurance;Machinery;Manufacturing;Media;Not For Profit;Recreation;Retail;Shipping;Technology;Telecommunications;Transportation;Utilities;Other)
AnnualRevenue currency(18,0)
NumberOfEmployees int(8) label=Employees
Ownership picklist(Public;Private;Subsidiary;Other)
TickerSymbol string(20)
Description textarea(32000) label=Account_Description
Rating picklist(Hot;Warm;Cold) label=Account_Rating
Site string(80) label=Account_Site
OwnerId ref(User) defaulted
@audit
LastActivityDate date sys
LastViewedDate datetime sys
LastReferencedDate datetime sys
Jigsaw string(20) label=Data.com_Key
JigsawCompanyId string(20) sys
CleanStatus picklist(Matched;Different;Acknowledged;NotFound;Inactive;Pending;SelectMatch;Skipped) default=Pending
AccountSource picklist(Web;Phone Inquiry;Partner Referral;Purchased List;Other)
DunsNumber string(9) label=D-U-N-S_Number
Tradestyle string(255)
NaicsCode string(8) label=NAICS_Code
NaicsDesc string(120) label=NAICS_Description
YearStarted string(4)
SicDesc string(80) label=SIC_Description
DandbCompanyId ref(DandBCompany) rel=DandbCompany
OperatingHoursId ref(OperatingHours) rel=OperatingHours
CustomerPriority__c picklist(High;Low;Medium) label=Customer_Priority
SLA__c picklist(Gold;Silver;Platinum;Bronze) label=SLA
Active__c picklist(No;Yes) label=Active
NumberofLocations__c double(3,0) label=Number_of_Locations
UpsellOpportunity__c picklist(Maybe;No;Yes) label=Upsell_Opportunity
SLASerialNumber__c string(10) label=SLA_Serial_Number
SLAExpirationDate__c date label=SLA_Expiration_Date
";

const CONTACT: &str = "
Id id
IsDeleted bool sys
MasterRecordId ref(Contact) sys rel=MasterRecord
AccountId ref(Account) label=Account_ID
LastName string(80) req
FirstName string(40)
Salutation picklist(Mr.;Ms.;Mrs.;Dr.;Prof.;Mx.)
Name string(121) computed name label=Full_Name
@address(Other)
@address(Mailing)
Phone phone label=Business_Phone
Fax phone label=Business_Fax
MobilePhone phone
HomePhone phone
OtherPhone phone
AssistantPhone phone label=Asst._Phone
ReportsToId ref(Contact) rel=ReportsTo
Email email lookup
Title string(128)
Department string(80)
AssistantName string(40)
LeadSource picklist(Web;Phone Inquiry;Partner Referral;Purchased List;Other)
Birthdate date
Description textarea(32000) label=Contact_Description
OwnerId ref(User) defaulted
HasOptedOutOfEmail bool label=Email_Opt_Out
HasOptedOutOfFax bool label=Fax_Opt_Out
DoNotCall bool
@audit
LastActivityDate date sys
LastCURequestDate datetime sys
LastCUUpdateDate datetime sys
LastViewedDate datetime sys
LastReferencedDate datetime sys
EmailBouncedReason string(255)
EmailBouncedDate datetime
IsEmailBounced bool sys
PhotoUrl url sys
Jigsaw string(20) label=Data.com_Key
JigsawContactId string(20) sys
CleanStatus picklist(Matched;Different;Acknowledged;NotFound;Inactive;Pending;SelectMatch;Skipped) default=Pending
IndividualId ref(Individual) rel=Individual
Level__c picklist(Secondary;Tertiary;Primary) label=Level
Languages__c string(100) label=Languages
";

const USER_PREFS: &str = "UserPermissionsMarketingUser UserPermissionsOfflineUser UserPermissionsCallCenterAutoLogin UserPermissionsSFContentUser UserPermissionsKnowledgeUser UserPermissionsInteractionUser UserPermissionsSupportUser UserPermissionsJigsawProspectingUser UserPermissionsSiteforceContributorUser UserPermissionsSiteforcePublisherUser UserPermissionsWorkDotComUserFeature ForecastEnabled UserPreferencesActivityRemindersPopup UserPreferencesEventRemindersCheckboxDefault UserPreferencesTaskRemindersCheckboxDefault UserPreferencesReminderSoundOff UserPreferencesDisableAllFeedsEmail UserPreferencesDisableFollowersEmail UserPreferencesDisableProfilePostEmail UserPreferencesDisableChangeCommentEmail UserPreferencesDisableLaterCommentEmail UserPreferencesDisProfPostCommentEmail UserPreferencesContentNoEmail UserPreferencesContentEmailAsAndWhen UserPreferencesApexPagesDeveloperMode UserPreferencesReceiveNoNotificationsAsApprover UserPreferencesReceiveNotificationsAsDelegatedApprover UserPreferencesHideCSNGetChatterMobileTask UserPreferencesDisableMentionsPostEmail UserPreferencesDisMentionsCommentEmail UserPreferencesHideCSNDesktopTask UserPreferencesHideChatterOnboardingSplash UserPreferencesHideSecondChatterOnboardingSplash UserPreferencesDisCommentAfterLikeEmail UserPreferencesDisableLikeEmail UserPreferencesSortFeedByComment UserPreferencesDisableMessageEmail UserPreferencesJigsawListUser UserPreferencesDisableBookmarkEmail UserPreferencesDisableSharePostEmail UserPreferencesEnableAutoSubForFeeds UserPreferencesDisableFileShareNotificationsForApi UserPreferencesShowTitleToExternalUsers UserPreferencesShowManagerToExternalUsers UserPreferencesShowEmailToExternalUsers UserPreferencesShowWorkPhoneToExternalUsers UserPreferencesShowMobilePhoneToExternalUsers UserPreferencesShowFaxToExternalUsers UserPreferencesShowStreetAddressToExternalUsers UserPreferencesShowCityToExternalUsers UserPreferencesShowStateToExternalUsers UserPreferencesShowPostalCodeToExternalUsers UserPreferencesShowCountryToExternalUsers UserPreferencesShowProfilePicToGuestUsers UserPreferencesShowTitleToGuestUsers UserPreferencesShowCityToGuestUsers UserPreferencesShowStateToGuestUsers UserPreferencesShowPostalCodeToGuestUsers UserPreferencesShowCountryToGuestUsers UserPreferencesShowForecastingChangeSignals UserPreferencesLiveAgentMiawSetupDeflection UserPreferencesHideS1BrowserUI UserPreferencesDisableEndorsementEmail UserPreferencesPathAssistantCollapsed UserPreferencesCacheDiagnostics UserPreferencesShowEmailToGuestUsers UserPreferencesShowManagerToGuestUsers UserPreferencesShowWorkPhoneToGuestUsers UserPreferencesShowMobilePhoneToGuestUsers UserPreferencesShowFaxToGuestUsers UserPreferencesShowStreetAddressToGuestUsers UserPreferencesLightningExperiencePreferred UserPreferencesPreviewLightning UserPreferencesHideEndUserOnboardingAssistantModal UserPreferencesHideLightningMigrationModal UserPreferencesHideSfxWelcomeMat UserPreferencesHideBiggerPhotoCallout UserPreferencesGlobalNavBarWTShown UserPreferencesGlobalNavGridMenuWTShown UserPreferencesCreateLEXAppsWTShown UserPreferencesFavoritesWTShown UserPreferencesRecordHomeSectionCollapseWTShown UserPreferencesRecordHomeReservedWTShown UserPreferencesFavoritesShowTopFavorites UserPreferencesExcludeMailAppAttachments UserPreferencesSuppressTaskSFXReminders UserPreferencesSuppressEventSFXReminders UserPreferencesPreviewCustomTheme UserPreferencesHasCelebrationBadge UserPreferencesUserDebugModePref UserPreferencesSRHOverrideActivities UserPreferencesNewLightningReportRunPageEnabled UserPreferencesReverseOpenActivitiesView UserPreferencesShowTerritoryTimeZoneShifts UserPreferencesHasSentWarningEmail UserPreferencesHasSentWarningEmail238 UserPreferencesHasSentWarningEmail240 UserPreferencesNativeEmailClient UserPreferencesShowForecastingRoundedAmounts";

const USER: &str = "
Id id
Username string(80) req unique lookup
LastName string(80) req
FirstName string(40)
Name string(121) computed name label=Full_Name
CompanyName string(80)
Division string(80)
Department string(80)
Title string(80)
@address()
Email email req lookup
EmailPreferencesAutoBcc bool
EmailPreferencesAutoBccStayInTouch bool
EmailPreferencesStayInTouchReminder bool
SenderEmail email
SenderName string(80)
Signature textarea(1333)
StayInTouchSubject string(80)
StayInTouchSignature textarea(512)
StayInTouchNote string(512)
Phone phone
Fax phone
MobilePhone phone
Alias string(8) req
CommunityNickname string(40) lookup label=Nickname
BadgeText string(80) sys label=User_Photo_badge_text_overlay
IsActive bool default=true label=Active
TimeZoneSidKey picklist(America/Los_Angeles;America/New_York;America/Chicago;Europe/London;Europe/Paris;Europe/Berlin;Asia/Tokyo;Australia/Sydney;GMT) req label=Time_Zone
UserRoleId ref(UserRole) label=Role_ID
LocaleSidKey picklist(en_US;en_GB;fr_FR;de_DE;ja_JP) req label=Locale
ReceivesInfoEmails bool label=Info_Emails
ReceivesAdminInfoEmails bool label=Admin_Info_Emails
EmailEncodingKey picklist(UTF-8;ISO-8859-1;Shift_JIS) req label=Email_Encoding
ProfileId ref(Profile) req label=Profile_ID
UserType picklist(Standard;PowerPartner;PowerCustomerSuccess;CsnOnly;Guest;AutomatedProcess;CloudIntegrationUser) sys
StartDay picklist(0;1;2;3;4;5;6;7;8;9;10;11;12;13;14;15;16;17;18;19;20;21;22;23) label=Start_of_Day
EndDay picklist(0;1;2;3;4;5;6;7;8;9;10;11;12;13;14;15;16;17;18;19;20;21;22;23) label=End_of_Day
LanguageLocaleKey picklist(en_US;fr;de;ja;es) req label=Language
EmployeeNumber string(20)
DelegatedApproverId ref(Group|User) rel=DelegatedApprover
ManagerId ref(User) rel=Manager
LastLoginDate datetime sys
LastPasswordChangeDate datetime sys
@audit
PasswordExpirationDate datetime sys
NumberOfFailedLogins int(9) sys
SuAccessExpirationDate date sys
OfflineTrialExpirationDate datetime sys
OfflinePdaTrialExpirationDate datetime sys
@prefs
ContactId ref(Contact)
AccountId ref(Account) sys
CallCenterId ref(CallCenter) rel=CallCenter
Extension phone
FederationIdentifier string(512) label=SAML_Federation_ID
AboutMe textarea(1000)
FullPhotoUrl url sys
SmallPhotoUrl url sys
IsExtIndicatorVisible bool sys
OutOfOfficeMessage string(40) sys
MediumPhotoUrl url sys
DigestFrequency picklist(D;W;N) req default=N
DefaultGroupNotificationFrequency picklist(P;D;W;N) req default=N
JigsawImportLimitOverride int(9) sys
LastViewedDate datetime sys
LastReferencedDate datetime sys
BannerPhotoUrl url sys
SmallBannerPhotoUrl url sys
MediumBannerPhotoUrl url sys
IsProfilePhotoActive bool sys
IndividualId ref(Individual) rel=Individual
";

const PERMISSION_FLAGS: &str = "PermissionsModifyAllData PermissionsViewAllData PermissionsApiEnabled PermissionsApiUserOnly PermissionsAuthorApex PermissionsManageUsers PermissionsCustomizeApplication PermissionsViewSetup";

const PROFILE: &str = "
Id id
Name string(255) req name
@perms
UserLicenseId ref(UserLicense) req
UserType picklist(Standard;PowerPartner;CsnOnly;Guest) sys
@audit
Description string(255)
LastViewedDate datetime sys
LastReferencedDate datetime sys
";

const PERMISSION_SET: &str = "
Id id
Name string(80) req name
Label string(80) req
LicenseId ref(PermissionSetLicense|UserLicense) rel=License
ProfileId ref(Profile) sys
IsOwnedByProfile bool sys
IsCustom bool sys
@perms
@audit
Description string(255)
NamespacePrefix string(15) sys
HasActivationRequired bool sys
PermissionSetGroupId ref(PermissionSetGroup) sys
Type picklist(Regular;Profile;Group;Session;Standard) sys
";

const PERMISSION_SET_ASSIGNMENT: &str = "
Id id
PermissionSetGroupId ref(PermissionSetGroup)
PermissionSetId ref(PermissionSet) createonly req
AssigneeId ref(User) createonly req
SystemModstamp datetime sys notnull
ExpirationDate datetime
IsActive bool sys default=true
IsRevoked bool sys
";

const ORGANIZATION: &str = "
Id id
Name string(80) req name
Division string(80)
@address()
Phone phone
Fax phone
PrimaryContact string(80)
DefaultLocaleSidKey picklist(en_US;en_GB) label=Locale
TimeZoneSidKey picklist(America/Los_Angeles;America/New_York;GMT) label=Time_Zone
LanguageLocaleKey picklist(en_US;fr;de) label=Language
ReceivesInfoEmails bool
ReceivesAdminInfoEmails bool
PreferencesRequireOpportunityProducts bool
FiscalYearStartMonth int(2)
UsesStartDateAsFiscalYearName bool
DefaultAccountAccess picklist(None;Read;Edit;ReadEditTransfer;ControlledByParent)
DefaultContactAccess picklist(None;Read;Edit;ControlledByParent)
DefaultOpportunityAccess picklist(None;Read;Edit;ControlledByParent)
DefaultLeadAccess picklist(None;Read;Edit;ReadEditTransfer)
DefaultCaseAccess picklist(None;Read;Edit;ReadEditTransfer)
DefaultCalendarAccess picklist(HideDetails;HideDetailsInsert;ShowDetails;ShowDetailsInsert;AllowEdits)
DefaultPricebookAccess picklist(None;Read;ReadSelect)
DefaultCampaignAccess picklist(None;Read;Edit;All)
SystemModstamp datetime sys notnull
ComplianceBccEmail email
UiSkin picklist(Theme1;Theme2;Theme3)
SignupCountryIsoCode string(2)
TrialExpirationDate datetime
NumKnowledgeService int(9)
OrganizationType picklist(Team Edition;Professional Edition;Enterprise Edition;Developer Edition;Personal Edition;Unlimited Edition;Contact Manager Edition;Base Edition) label=Edition
NamespacePrefix string(15)
InstanceName string(5)
IsSandbox bool
WebToCaseDefaultOrigin string(40)
MonthlyPageViewsUsed int(9)
MonthlyPageViewsEntitlement int(9)
IsReadOnly bool
CreatedDate datetime sys notnull
CreatedById ref(User) sys notnull rel=CreatedBy
LastModifiedDate datetime sys notnull
LastModifiedById ref(User) sys notnull rel=LastModifiedBy
";

const CASE: &str = "
Id id
IsDeleted bool sys
MasterRecordId ref(Case) sys rel=MasterRecord
CaseNumber autonum({00000000}) name
ContactId ref(Contact) label=Contact_ID
AccountId ref(Account) label=Account_ID
AssetId ref(Asset) label=Asset_ID
ParentId ref(Case) label=Parent_Case_ID rel=Parent
SuppliedName string(80) label=Web_Name
SuppliedEmail email label=Web_Email
SuppliedPhone string(40) label=Web_Phone
SuppliedCompany string(80) label=Web_Company
Type picklist(Mechanical;Electrical;Electronic;Structural;Other) label=Case_Type
Status picklist(New;Working;Escalated;Closed) default=New
Reason picklist(Installation;Equipment Complexity;Performance;Breakdown;Equipment Design;Feedback;Other) label=Case_Reason
Origin picklist(Phone;Email;Web) label=Case_Origin
Subject string(255)
Priority picklist(High;Medium;Low) default=Medium
Description textarea(32000)
IsClosed bool sys label=Closed
ClosedDate datetime sys
IsEscalated bool label=Escalated
OwnerId ref(Group|User) defaulted
@audit
ContactPhone phone sys
ContactMobile phone sys
ContactEmail email sys
ContactFax phone sys
Comments textarea(4000) label=Internal_Comments
LastViewedDate datetime sys
LastReferencedDate datetime sys
EngineeringReqNumber__c string(12) label=Engineering_Req_Number
SLAViolation__c picklist(No;Yes) label=SLA_Violation
Product__c picklist(GC1040;GC1060;GC3020;GC3040;GC3060;GC5020;GC5040;GC5060;GC1020) label=Product
PotentialLiability__c picklist(No;Yes) label=Potential_Liability
";

const OPPORTUNITY: &str = "
Id id
IsDeleted bool sys
AccountId ref(Account) label=Account_ID
IsPrivate bool label=Private
Name string(120) req name
Description textarea(32000)
StageName picklist(Prospecting;Qualification;Needs Analysis;Value Proposition;Id. Decision Makers;Perception Analysis;Proposal/Price Quote;Negotiation/Review;Closed Won;Closed Lost) req label=Stage
Amount currency(18,2)
Probability percent(3,0) label=Probability_(%)
ExpectedRevenue currency(18,2) sys label=Expected_Amount
TotalOpportunityQuantity double(18,2) label=Quantity
CloseDate date req
Type picklist(Existing Customer - Upgrade;Existing Customer - Replacement;Existing Customer - Downgrade;New Customer) label=Opportunity_Type
NextStep string(255)
LeadSource picklist(Web;Phone Inquiry;Partner Referral;Purchased List;Other)
IsClosed bool sys label=Closed
IsWon bool sys label=Won
ForecastCategory picklist(Omitted;Pipeline;BestCase;MostLikely;Forecast;Closed) sys
ForecastCategoryName picklist(Omitted;Pipeline;Best Case;Commit;Closed) label=Forecast_Category
CampaignId ref(Campaign) label=Campaign_ID
HasOpportunityLineItem bool sys label=Has_Line_Item
Pricebook2Id ref(Pricebook2) label=Price_Book_ID
OwnerId ref(User) defaulted
@audit
LastActivityDate date sys
PushCount int(9) sys
LastStageChangeDate datetime sys
FiscalQuarter int(9) sys
FiscalYear int(9) sys
Fiscal string(6) sys label=Fiscal_Period
ContactId ref(Contact) label=Contact_ID
LastViewedDate datetime sys
LastReferencedDate datetime sys
HasOpenActivity bool sys
HasOverdueTask bool sys
LastAmountChangedHistoryId ref(OpportunityHistory) sys
LastCloseDateChangedHistoryId ref(OpportunityHistory) sys
DeliveryInstallationStatus__c picklist(In progress;Yet to begin;Completed) label=Delivery/Installation_Status
TrackingNumber__c string(12) label=Tracking_Number
OrderNumber__c string(8) label=Order_Number
CurrentGenerators__c string(100) label=Current_Generator(s)
MainCompetitors__c string(100) label=Main_Competitor(s)
";

const TASK: &str = "
Id id
WhoId ref(Contact|Lead) label=Name_ID rel=Who
WhatId ref(Account|Opportunity|Case|LMS_Enrollment__c|LMS_Certification__c) label=Related_To_ID rel=What
Subject string(255)
ActivityDate date label=Due_Date_Only
Status picklist(Not Started;In Progress;Completed;Waiting on someone else;Deferred) req default=Not_Started
Priority picklist(High;Normal;Low) req default=Normal
IsHighPriority bool sys label=High_Priority
OwnerId ref(Group|User) defaulted label=Assigned_To_ID
Description textarea(32000) label=Comments
IsDeleted bool sys
AccountId ref(Account) sys
IsClosed bool sys label=Closed
@audit
TaskSubtype picklist(Task;Email;ListEmail;Cadence;Call;LinkedIn) createonly
";

const GROUP: &str = "
Id id
Name string(40) req name
DeveloperName string(80)
Type picklist(Regular;Role;Queue;Organization) req
Email email
OwnerId ref(User|Organization) defaulted
@audit
";

fn expand(spec: &str) -> String {
    let mut out = String::with_capacity(spec.len() * 2);
    for line in spec.lines() {
        let l = line.trim();
        if l == "@audit" {
            out.push_str(AUDIT);
        } else if let Some(p) = l.strip_prefix("@address(").and_then(|r| r.strip_suffix(')')) {
            out.push_str(&address(p));
        } else if l == "@prefs" {
            for name in USER_PREFS.split_whitespace() {
                out.push_str(name);
                out.push_str(" bool\n");
            }
        } else if l == "@perms" {
            for name in PERMISSION_FLAGS.split_whitespace() {
                out.push_str(name);
                out.push_str(" bool\n");
            }
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// The built-in standard objects.
pub fn objects() -> Result<Vec<ObjectDef>, SchemaError> {
    let list: [(&str, &str, &str, &str, &str); 11] = [
        ("Account", "Account", "Accounts", "001", ACCOUNT),
        ("Contact", "Contact", "Contacts", "003", CONTACT),
        ("User", "User", "Users", "005", USER),
        ("Profile", "Profile", "Profile", "00e", PROFILE),
        ("PermissionSet", "Permission Set", "Permission Sets", "0PS", PERMISSION_SET),
        (
            "PermissionSetAssignment",
            "Permission Set Assignment",
            "Permission Set Assignments",
            "0Pa",
            PERMISSION_SET_ASSIGNMENT,
        ),
        ("Organization", "Organization", "Organizations", "00D", ORGANIZATION),
        ("Case", "Case", "Cases", "500", CASE),
        ("Opportunity", "Opportunity", "Opportunities", "006", OPPORTUNITY),
        ("Task", "Task", "Tasks", "00T", TASK),
        ("Group", "Group", "Groups", "00G", GROUP),
    ];
    let mut out = Vec::with_capacity(list.len());
    for (name, label, plural, prefix, spec) in list {
        let mut o = ObjectDef::from_spec(name, label, plural, prefix, &expand(spec))?;
        if name == "Organization" {
            o.createable = false;
            o.deletable = false;
        }
        if name == "PermissionSetAssignment" {
            o.updateable = false;
        }
        if name == "User" || name == "Profile" {
            o.deletable = false;
        }
        if name == "Profile" {
            o.createable = false;
        }
        out.push(o);
    }
    Ok(out)
}

/// The five audit field lines (used for custom objects too).
pub fn audit_lines() -> impl Iterator<Item = &'static str> {
    AUDIT.lines().map(str::trim).filter(|l| !l.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_standard_object_parses() {
        let objs = objects().unwrap();
        let user = objs.iter().find(|o| o.name == "User").unwrap();
        assert_eq!(user.fields.len(), 183, "the recorded User has 183 fields");
        let account = objs.iter().find(|o| o.name == "Account").unwrap();
        assert_eq!(account.fields.len(), 70);
        assert!(account.system.owner.is_some());
    }
}

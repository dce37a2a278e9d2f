//! Behaviour that is a guess rather than documented (or recorded) Salesforce
//! behaviour, in one place. Everything else follows the Salesforce REST API, Bulk API
//! 2.0 and OAuth documentation, or the recorded exchanges in
//! `../shared/fixtures/salesforce/recorded/`.
//!
//! OAuth
//! - Token endpoint, redirect_uri different from the authorize request:
//!   `400 {"error":"redirect_uri_mismatch","error_description":"redirect_uri must match configuration"}`
//!   (the authorize-side text is documented by users; the token-side error code is a guess).
//! - An authorization code is consumed by any exchange attempt that names it, even a
//!   failed one (wrong verifier); reuse answers "expired authorization code".
//! - A code exchanged by another client id / login host: "invalid authorization code".
//! - PKCE verifier sent for a code issued without a challenge: "unexpected code verifier".
//! - Verifiers containing `~` are rejected ("invalid code verifier"): reported by users
//!   of real orgs; switchable with the `pkce_reject_tilde` setting.
//! - Using the other login host (production vs sandbox): authorize shows a login error
//!   page (400), refresh answers `invalid_grant` "authentication failure".
//! - Session timeout is inactivity-based (each API call extends it), like org session
//!   settings; refresh-token idle TTL counts from the last refresh.
//! - Revoking an access token revokes only it; revoking a refresh token revokes its family.
//!
//! REST
//! - `GET /sobjects/{T}/{id}?fields=a,b` returns the fields asked for plus `Id`, in
//!   schema order.
//! - A custom object's text Name left empty takes the 15-character record id.
//! - Hierarchy custom setting records without SetupOwnerId default to the org;
//!   their Name is "<label> (Organization|Profile|User)".
//! - Upsert by a non-unique idLookup field (e.g. Contact.Email) matching several
//!   records inside a collection: `DUPLICATE_EXTERNAL_ID` with a "more than one
//!   record" message (single-record upsert answers 300 as documented).
//! - Failed collection delete results carry the `id`; failed create/update results do not.
//! - `nextRecordsUrl` of a queryAll cursor uses `/queryAll/<locator>-<n>`.
//! - Composite reference to a missing/failed result: 400 `PROCESSING_HALTED`
//!   "Invalid reference specified. No value for ... found in ...".
//! - Composite graph: nodes execute in the given order; at most 500 nodes per request.
//! - Describe: the set of keys follows Salesforce's, but values such as `byteLength`,
//!   `groupable`, `aggregatable` are approximations.
//! - Standard objects carry the Developer Edition sample custom fields (SLA__c, ...).
//! - Known simplification: a polymorphic relationship in SOQL (`What.Name`,
//!   `Owner.Name`) resolves against its first target object only.
//!
//! Bulk API 2.0
//! - Error codes for invalid job creation (`INVALIDJOB`, `INVALIDENTITY`) and state
//!   (`INVALIDJOBSTATE`, 409 on upload to a non-Open job) and their messages.
//! - Several uploads to one Open job are accepted if their headers match.
//! - Duplicate keys are detected per internal batch of 10,000 rows
//!   (`DUPLICATE_EXTERNAL_ID`); chunks of 200 rows are processed one lock at a time.
//! - Results CSVs quote every value (headers included); rows of every results file are
//!   shuffled by a permutation seeded with the job id; results are served in any state
//!   (partial while InProgress).
//! - A CSV row with a wrong number of columns fails alone (`INVALID_INPUT`); an unknown
//!   header column fails the whole job (`InvalidBatch : Field name not found : X`).
//! - Booleans accept true/false/1/0/yes/no/y/n; `#N/A` writes null; empty cells are skipped.
//! - Query results: datetimes as `2026-05-12T10:00:00.000Z`, numbers without a trailing
//!   `.0`, null as an empty quoted value; default page 10,000 rows (`bulk_query_page_size`).
//!
//! Automation stand-in
//! - One Task per successful enrollment insert/update (not per changed field), created
//!   by the writing user, inside the same transaction (rolled back with it).

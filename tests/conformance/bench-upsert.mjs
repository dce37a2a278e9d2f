// Benchmark helper (`make bench`, tests/e2e/src/jsforce_bench.rs): upserts
// enrollment records into LMS_Enrollment__c with jsforce, the way a
// hand-written integration would, and prints what happened as one JSON line.
//
//   node bench-upsert.mjs <records.json> [instance_url [access_token]]
//
// The instance URL and the access token may come from SF_INSTANCE_URL and
// SF_ACCESS_TOKEN instead (preferred for the token: argv is visible to every
// process). The records file is a JSON array of LMS_Enrollment__c field maps
// (LMS_Enrollment_Id__c, Contact__r: {LMS_Learner_Id__c}, Course_Id__c, ...).
//
// jsforce 3 sends an array upsert as one sObject Collections request
// (PATCH /composite/sobjects/{type}/{extIdField}); only with `allowRecursive`
// does it split the array into requests of 200 records (its MAX_DML_COUNT),
// one after the other. Without it, more than 200 records would go in one
// request, which Salesforce refuses.
//
// Output: {"records","ok","failed","created","updated","seconds","failures"}
// (seconds: the upsert alone, without node's start); exit status 1 when any
// record failed, 2 on a usage or transport error.
import { readFile } from 'node:fs/promises';
import jsforce from 'jsforce';

const SOBJECT = 'LMS_Enrollment__c';
const EXTERNAL_ID = 'LMS_Enrollment_Id__c';

function usage(message) {
  console.error(`bench-upsert: ${message}`);
  console.error('usage: node bench-upsert.mjs <records.json> [instance_url [access_token]]');
  process.exit(2);
}

async function main() {
  const [file, argUrl, argToken] = process.argv.slice(2);
  if (!file) usage('no records file given');
  const instanceUrl = argUrl || process.env.SF_INSTANCE_URL;
  const accessToken = argToken || process.env.SF_ACCESS_TOKEN;
  if (!instanceUrl) usage('no instance URL (argument or SF_INSTANCE_URL)');
  if (!accessToken) usage('no access token (argument or SF_ACCESS_TOKEN)');
  const records = JSON.parse(await readFile(file, 'utf8'));
  if (!Array.isArray(records)) usage(`${file} does not hold a JSON array`);

  const conn = new jsforce.Connection({ instanceUrl, accessToken, version: '62.0' });
  const start = performance.now();
  const results = await conn
    .sobject(SOBJECT)
    .upsert(records, EXTERNAL_ID, { allOrNone: false, allowRecursive: true });
  const seconds = (performance.now() - start) / 1000;

  const list = Array.isArray(results) ? results : [results];
  const ok = list.filter((r) => r && r.success);
  const failed = list.filter((r) => !r || !r.success);
  const summary = {
    records: records.length,
    results: list.length,
    ok: ok.length,
    failed: failed.length + Math.max(0, records.length - list.length),
    created: ok.filter((r) => r.created === true).length,
    updated: ok.filter((r) => r.created === false).length,
    seconds,
    // The first few failures, as Salesforce described them.
    failures: failed.slice(0, 5).map((r) => r?.errors ?? r),
  };
  console.log(JSON.stringify(summary));
  process.exit(summary.failed === 0 ? 0 : 1);
}

main().catch((e) => {
  console.error(`bench-upsert: ${e?.errorCode ? `${e.errorCode}: ` : ''}${e?.message ?? e}`);
  process.exit(2);
});

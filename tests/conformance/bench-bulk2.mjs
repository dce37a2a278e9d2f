// Benchmark helper (`make bench ONLY=job3`, tests/e2e/src/bin/bench.rs): the
// peer of a learnlink backfill — the same LMS_Enrollment__c rows loaded with
// jsforce's Bulk API 2.0 (`conn.bulk2.loadAndWaitForResults`, upsert by
// LMS_Enrollment_Id__c), one job per CSV file, one file after the other, the
// way a hand-written loader would.
//
//   SF_INSTANCE_URL=… SF_ACCESS_TOKEN=… node bench-bulk2.mjs <part1.csv> [<part2.csv> …]
//
// Output: one JSON line {"files","ok","failed","unprocessed","seconds"}
// (seconds: the loads alone, without node's start); exit status 1 when any
// row failed or was unprocessed, 2 on a usage or transport error.
import { createReadStream } from 'node:fs';
import jsforce from 'jsforce';

function usage(message) {
  console.error(`bench-bulk2: ${message}`);
  console.error('usage: SF_INSTANCE_URL=… SF_ACCESS_TOKEN=… node bench-bulk2.mjs <file.csv>…');
  process.exit(2);
}

async function main() {
  const files = process.argv.slice(2);
  if (files.length === 0) usage('no CSV file given');
  const instanceUrl = process.env.SF_INSTANCE_URL;
  const accessToken = process.env.SF_ACCESS_TOKEN;
  if (!instanceUrl || !accessToken) usage('SF_INSTANCE_URL and SF_ACCESS_TOKEN are required');
  const conn = new jsforce.Connection({ instanceUrl, accessToken, version: '62.0' });
  let ok = 0;
  let failed = 0;
  let unprocessed = 0;
  const start = performance.now();
  for (const file of files) {
    const results = await conn.bulk2.loadAndWaitForResults({
      object: 'LMS_Enrollment__c',
      operation: 'upsert',
      externalIdFieldName: 'LMS_Enrollment_Id__c',
      lineEnding: 'LF',
      input: createReadStream(file),
      pollInterval: 1000,
      pollTimeout: 1800000,
    });
    ok += results.successfulResults.length;
    failed += results.failedResults.length;
    unprocessed += results.unprocessedRecords.length;
  }
  const seconds = (performance.now() - start) / 1000;
  console.log(JSON.stringify({ files: files.length, ok, failed, unprocessed, seconds }));
  process.exit(failed + unprocessed > 0 ? 1 : 0);
}

main().catch((e) => {
  console.error(`bench-bulk2: ${e && e.message ? e.message : e}`);
  process.exit(2);
});

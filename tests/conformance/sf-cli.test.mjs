// The Salesforce CLI (`sf`, pinned in package.json) against the emulator.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SF, admin, seed } from './common.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const bin = join(here, 'node_modules', '.bin');
let home;
let env;

function sf(args) {
  return new Promise((resolve, reject) => {
    execFile(join(bin, 'sf'), [...args, '--json'], { env, timeout: 180_000, maxBuffer: 256 * 1024 * 1024 }, (err, stdout, stderr) => {
      let json;
      try {
        json = JSON.parse(stdout);
      } catch {
        return reject(new Error(`sf ${args.join(' ')}: no JSON output (${err?.message ?? ''})\n${stdout}\n${stderr}`));
      }
      if (json.status !== 0) return reject(new Error(`sf ${args.join(' ')} failed: ${JSON.stringify(json)}`));
      resolve(json.result);
    });
  });
}

before(async () => {
  // A private home: the CLI keeps its org aliases and auth files there.
  home = mkdtempSync(join(tmpdir(), 'sf-conformance-'));
  await admin('POST', '/reset', {});
  const tokens = await admin('POST', '/connections', {});
  env = {
    PATH: `${bin}:${process.env.PATH}`,
    HOME: home,
    SF_ACCESS_TOKEN: tokens.access_token,
    SF_USE_GENERIC_UNIX_KEYCHAIN: 'true',
    SF_DISABLE_TELEMETRY: 'true',
    SF_AUTOUPDATE_DISABLE: 'true',
    SF_SKIP_NEW_VERSION_CHECK: 'true',
    SF_HIDE_RELEASE_NOTES: 'true',
  };
  await sf(['org', 'login', 'access-token', '--instance-url', SF, '--alias', 'emu', '--no-prompt']);
});

after(() => rmSync(home, { recursive: true, force: true }));

test('sf data query returns every record', async () => {
  const N = 2_500;
  await seed('Account', Array.from({ length: N }, (_, i) => ({ Name: `CLI ${i}` })));
  const result = await sf(['data', 'query', '--query', 'SELECT Id, Name FROM Account', '--target-org', 'emu']);
  assert.equal(result.totalSize, N);
  assert.equal(result.records.length, N);
  assert.ok(result.records.every((r) => r.Name.startsWith('CLI ')));
});

test('sf data upsert bulk loads a CSV by external id', async () => {
  const N = 5_000;
  const file = join(home, 'contacts.csv');
  const rows = ['LMS_Learner_Id__c,LastName,Email'];
  for (let i = 0; i < N; i++) rows.push(`CLI-${i},Cli ${i},cli${i}@example.com`);
  writeFileSync(file, `${rows.join('\n')}\n`);
  const result = await sf([
    'data', 'upsert', 'bulk', '--sobject', 'Contact', '--file', file,
    '--external-id', 'LMS_Learner_Id__c', '--wait', '10', '--target-org', 'emu',
  ]);
  assert.equal(Number(result.processedRecords ?? result.jobInfo?.numberRecordsProcessed), N, JSON.stringify(result));
  const stored = await admin('GET', '/records/Contact');
  assert.equal(stored.filter((c) => c.LMS_Learner_Id__c?.startsWith('CLI-')).length, N);
});

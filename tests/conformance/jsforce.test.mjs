// jsforce (pinned in package.json) against the Salesforce emulator.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SF, CLIENT_ID, admin, seed, kindCount, connect } from './common.mjs';

test('query with autoFetch follows every nextRecordsUrl across 5,000+ records', async () => {
  await admin('POST', '/reset', {});
  const N = 5_500;
  await seed('Account', Array.from({ length: N }, (_, i) => ({ Name: `Conformance ${i}` })));
  const { conn } = await connect();
  const before = await kindCount('query');
  const records = [];
  await new Promise((resolve, reject) => {
    conn
      .query('SELECT Id, Name FROM Account')
      .on('record', (r) => records.push(r))
      .on('end', resolve)
      .on('error', reject)
      .run({ autoFetch: true, maxFetch: 100_000 });
  });
  assert.equal(records.length, N);
  assert.equal(new Set(records.map((r) => r.Id)).size, N, 'every record exactly once');
  assert.ok(records.every((r) => r.attributes?.type === 'Account'));
  const pages = (await kindCount('query')) - before;
  assert.ok(pages >= Math.ceil(N / 2000), `expected at least ${Math.ceil(N / 2000)} pages, saw ${pages}`);
});

test('sobject().upsert of 1,200 records by external id: created, then updated, in collections of 200', async () => {
  await admin('POST', '/reset', {});
  const { conn } = await connect();
  const N = 1_200;
  const recs = Array.from({ length: N }, (_, i) => ({
    LMS_Learner_Id__c: `JSF-${i}`,
    LastName: `Learner ${i}`,
    Email: `learner${i}@example.com`,
  }));
  const before = await kindCount('collections');
  const first = await conn.sobject('Contact').upsert(recs, 'LMS_Learner_Id__c', { allowRecursive: true });
  assert.equal(first.length, N);
  assert.ok(first.every((r) => r.success && r.created === true), JSON.stringify(first.find((r) => !r.success)));
  const second = await conn
    .sobject('Contact')
    .upsert(recs.map((r) => ({ ...r, LastName: `${r.LastName} updated` })), 'LMS_Learner_Id__c', { allowRecursive: true });
  assert.ok(second.every((r) => r.success && r.created === false));
  assert.deepEqual(second.map((r) => r.id), first.map((r) => r.id), 'the same records are updated');
  const calls = (await kindCount('collections')) - before;
  assert.equal(calls, 2 * (N / 200), 'jsforce sends collections of 200');
  const stored = await admin('GET', '/records/Contact');
  assert.equal(stored.length, N);
  assert.ok(stored.every((c) => c.LastName.endsWith(' updated')));
});

test('bulk2.loadAndWaitForResults upserts 20,000 rows and every row is accounted for', async () => {
  await admin('POST', '/reset', {});
  const { conn } = await connect();
  const N = 20_000;
  const BAD = new Set([17, 4_242, 19_999]); // rows with an invalid email fail
  const lines = ['LMS_Learner_Id__c,LastName,Email'];
  for (let i = 0; i < N; i++) {
    lines.push(`BLK-${i},"Bulk, ${i}",${BAD.has(i) ? 'not-an-email' : `bulk${i}@example.com`}`);
  }
  const res = await conn.bulk2.loadAndWaitForResults({
    object: 'Contact',
    operation: 'upsert',
    externalIdFieldName: 'LMS_Learner_Id__c',
    lineEnding: 'LF',
    input: `${lines.join('\n')}\n`,
    pollInterval: 200,
    pollTimeout: 300_000,
  });
  assert.equal(res.successfulResults.length, N - BAD.size);
  assert.equal(res.failedResults.length, BAD.size);
  assert.equal(res.unprocessedRecords.length, 0);
  const ok = new Set(res.successfulResults.map((r) => r.LMS_Learner_Id__c));
  for (let i = 0; i < N; i++) assert.equal(ok.has(`BLK-${i}`), !BAD.has(i), `row ${i}`);
  assert.ok(res.successfulResults.every((r) => r.sf__Id && r.sf__Created === 'true'));
  assert.ok(res.failedResults.every((r) => r.sf__Error.length > 0));
  const stored = await admin('GET', '/records/Contact');
  assert.equal(stored.length, N - BAD.size);
  assert.equal(stored.find((c) => c.LMS_Learner_Id__c === 'BLK-5').LastName, 'Bulk, 5');
});

test('jsforce keeps the rotated-out refresh token, so its second refresh revokes the family (jsforce issue 1656)', async () => {
  await admin('POST', '/reset', {});
  const { conn, tokens } = await connect();
  const refreshes = [];
  conn.on('refresh', (_accessToken, res) => refreshes.push(res));

  await admin('POST', '/sessions/expire', {});
  await conn.query('SELECT Id FROM Account LIMIT 1'); // 401 → refresh #1 succeeds
  assert.equal(refreshes.length, 1);
  const rotated = refreshes[0].refresh_token;
  assert.ok(rotated && rotated !== tokens.refresh_token, 'the emulator rotates the refresh token');
  assert.equal(conn.refreshToken, tokens.refresh_token, 'jsforce keeps the old one');

  await admin('POST', '/sessions/expire', {});
  await assert.rejects(conn.query('SELECT Id FROM Account LIMIT 1'), (err) => {
    assert.match(`${err.name} ${err.message}`, /invalid_grant|expired access\/refresh token/);
    return true;
  });
  // Reuse of a rotated token revoked the whole family: the new token is dead too.
  const r = await fetch(`${SF}/services/oauth2/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: rotated, client_id: CLIENT_ID }),
  });
  assert.equal(r.status, 400);
  assert.equal((await r.json()).error, 'invalid_grant');
});

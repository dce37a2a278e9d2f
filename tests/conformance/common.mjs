// Shared helpers: the emulator's admin API and a jsforce connection to it.
import jsforce from 'jsforce';

export const SF = process.env.SALESFORCE_URL;
if (!SF) {
  throw new Error('SALESFORCE_URL is not set: run these tests through `make test` (tests/e2e/tests/conformance.rs)');
}

export async function admin(method, path, body) {
  const r = await fetch(`${SF}/__emulator${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} /__emulator${path}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

export async function seed(sobject, records) {
  for (let i = 0; i < records.length; i += 1000) {
    await admin('POST', `/records/${sobject}`, records.slice(i, i + 1000));
  }
}

export async function kindCount(kind) {
  const s = await admin('GET', '/stats');
  return s.by_kind?.[kind] ?? 0;
}

export const CLIENT_ID = 'conformance-client';

/** A fresh token family at the emulator and a jsforce connection using it. */
export async function connect() {
  const tokens = await admin('POST', '/connections', {});
  const conn = new jsforce.Connection({
    instanceUrl: tokens.instance_url,
    accessToken: tokens.access_token,
    refreshToken: tokens.refresh_token,
    oauth2: { clientId: CLIENT_ID, loginUrl: SF },
    version: '62.0',
  });
  return { tokens, conn };
}

/**
 * Streamed answers and their audit events (src/audit/hold-last.ts): a WADO-RS answer streams
 * while its AuditEvent commits, but it never completes before the event is durable. While the chain head is locked
 * elsewhere the client gets bytes but not the whole answer; when the event cannot be stored, the answer never
 * completes and nothing is stored.
 */
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import { sql } from 'slonik';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { testApp, testConfig } from './helpers/app.ts';
import { bearer, tokenFor } from './helpers/auth.ts';
import { type Dataset, seedDataset } from './helpers/dicomweb-data.ts';
import { withAuditRefusing } from './helpers/audit.ts';
import { uniq } from './helpers/fhir.ts';

let app: FastifyInstance;
let base: string;
let data: Dataset;
let patA: { authorization: string };
let instanceUrl: string;

const eventStored = async (requestId: string) =>
  (await app.db.maybeOne(sql.unsafe`SELECT 1 FROM audit_event WHERE request_id = ${requestId}`)) !== null;

beforeAll(async () => {
  // Every retrieval with an event of its own (no study transfer windows: audit-transfer.int.test.ts covers those), so
  // that each request below waits for its own commit.
  app = await testApp({ auditTransferWindowS: 0 });
  base = await app.listen({ port: 0, host: '127.0.0.1' });
  data = await seedDataset(app, `aus${Date.now().toString(36)}`);
  patA = bearer(
    await tokenFor(app, {
      user: { username: `auspat-${data.A.id}`, roles: [] },
      scope: 'patient/*.rs',
      patient: data.A.id,
    }),
  );
  const study = data.A.studies[0];
  const series = study?.series[0];
  instanceUrl = `${base}/dicom-web/studies/${study?.uid}/series/${series?.uid}/instances/${series?.instances[0]}`;
});

afterAll(async () => {
  await app?.close();
});

/** Reads the body; resolves with its length, or with the error that cut it short. */
async function drain(res: Response): Promise<{ bytes: number } | { error: string }> {
  try {
    return { bytes: (await res.arrayBuffer()).byteLength };
  } catch (err) {
    return { error: String(err) };
  }
}

test('a streamed answer completes only once its event is stored', async () => {
  const requestId = uniq('streamed-held');
  const holder = new pg.Client({ connectionString: testConfig().databaseUrl });
  await holder.connect();
  let done = false;
  try {
    await holder.query('BEGIN');
    await holder.query('SELECT 1 FROM audit_chain_head WHERE singleton FOR UPDATE');
    const pending = fetch(instanceUrl, {
      headers: {
        ...patA,
        accept: 'multipart/related; type="application/dicom"',
        // Byte counts are compared with Content-Length: no content coding.
        'accept-encoding': 'identity',
        'x-request-id': requestId,
      },
    })
      .then(async (res) => ({
        status: res.status,
        length: Number(res.headers.get('content-length')),
        body: await drain(res),
      }))
      .finally(() => {
        done = true;
      });
    await new Promise((r) => setTimeout(r, 300));
    // The answer is not complete while its event waits for the chain-head lock.
    expect(done).toBe(false);
    expect(await eventStored(requestId)).toBe(false);
    await holder.query('COMMIT');
    const result = await pending;
    expect(result.status).toBe(200);
    expect(result.length).toBeGreaterThan(0);
    expect(result.body).toEqual({ bytes: result.length });
  } finally {
    await holder.end();
  }
  expect(await eventStored(requestId)).toBe(true);
});

test('an answer whose event cannot be stored never completes, and nothing is stored', async () => {
  const tag = uniq('streamed-fail').replace(/[^A-Za-z0-9-]/g, '');
  await withAuditRefusing(app, 'streamed_test_refuse', 'streamed-fail', async () => {
    const res = await fetch(instanceUrl, {
      headers: {
        ...patA,
        accept: 'multipart/related; type="application/dicom"',
        // Byte counts are compared with Content-Length: no content coding.
        'accept-encoding': 'identity',
        'x-request-id': tag,
      },
    });
    // Nothing had left yet (a small answer is one held chunk): a DICOM-shaped 503 without any of the data;
    // otherwise a 200 whose body never completes.
    if (res.status === 503) {
      const text = await res.text();
      expect(text).toContain('audit record could not be stored');
      expect(res.headers.get('content-type')).not.toContain('multipart');
    } else {
      expect(res.status).toBe(200);
      expect(await drain(res)).toHaveProperty('error');
    }
  });
  expect(await eventStored(tag)).toBe(false);
  // The writer recovers: the next answer completes and is recorded.
  const again = uniq('streamed-ok');
  const ok = await fetch(instanceUrl, {
    headers: {
      ...patA,
      accept: 'multipart/related; type="application/dicom"',
      // Byte counts are compared with Content-Length: no content coding.
      'accept-encoding': 'identity',
      'x-request-id': again,
    },
  });
  expect(await drain(ok)).toEqual({ bytes: Number(ok.headers.get('content-length')) });
  expect(await eventStored(again)).toBe(true);
});

/**
 * Refreshing on the built-in authorization server (RFC 6749 §6), over HTTP: a refresh token is used up only by a
 * refresh that succeeds (a failed client authentication, another client's credentials or a scope beyond the grant
 * leave it usable for a correct retry); a public client may leave out `client_id` when the refresh token names it; and
 * fhirclient (the SMART JS client) launches and refreshes with its own code.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { FastifyInstance } from 'fastify';
import { sql } from 'slonik';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { buildApp } from '../src/app.ts';
import { freePort } from '../src/stack/process.ts';
import { testConfig } from './helpers/app.ts';
import { bearer } from './helpers/auth.ts';
import { uniq } from './helpers/fhir.ts';
import { REDIRECT, smartSessions } from './helpers/smart-session.ts';

const tag = uniq('rf').replace(/[^A-Za-z0-9]/g, '');
const PATIENT = `rf-pat-${tag}`;

let app: FastifyInstance;
let base: string;
let flows: Awaited<ReturnType<typeof smartSessions>>;

beforeAll(async () => {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  app = await buildApp(testConfig({ publicBaseUrl: base }));
  await app.listen({ port, host: '127.0.0.1' });
  await app.db.query(sql.unsafe`
    INSERT INTO patients (id, version_id, last_updated, content, patient_id)
    VALUES (${PATIENT}, 1, now(), ${sql.jsonb({ resourceType: 'Patient', id: PATIENT })}, ${PATIENT})`);
  flows = await smartSessions(app, base, PATIENT, tag);
});
afterAll(async () => {
  await app?.close();
});

const readPatient = (token: string) => request(app.server).get(`/fhir/Patient/${PATIENT}`).set(bearer(token));

describe('a refresh token is consumed only by a refresh that succeeds', () => {
  test.each([
    ['no client authentication', async () => ({})],
    ['the public client_id of another client', async () => ({ client_id: flows.PUBLIC })],
    ['an assertion signed with a key the client never registered', async () => flows.assertion(flows.strangerKey)],
    ['a scope beyond the grant', async () => ({ ...(await flows.assertion()), scope: 'system/*.rs' })],
  ])('confidential client, %s: refused, and a correct retry refreshes', async (_name, badAuth) => {
    await flows.doctor('rf-conf');
    const s = await flows.launch(`rf-conf-${tag}`, flows.CONFIDENTIAL);
    const bad = await flows.refresh(s.refresh, await badAuth());
    expect(bad.status).toBeGreaterThanOrEqual(400);
    expect(bad.status).toBeLessThan(500);
    expect(['invalid_client', 'invalid_grant', 'invalid_scope']).toContain(bad.body['error']);
    const retry = await flows.refresh(s.refresh, await flows.assertion());
    expect(retry.status, JSON.stringify(retry.body)).toBe(200);
    expect(retry.body['patient']).toBe(PATIENT);
  });

  test('a public client may omit client_id; the old token is then used up (rotation)', async () => {
    await flows.doctor('rf-pub');
    const s = await flows.launch(`rf-pub-${tag}`);
    const r = await flows.refresh(s.refresh, {});
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body['refresh_token']).not.toBe(s.refresh);
    expect((await readPatient(r.body['access_token']!)).status).toBe(200);
    expect((await flows.refresh(r.body['refresh_token']!, {})).status).toBe(200);
  });

  test('a confidential client may not omit its authentication', async () => {
    await flows.doctor('rf-conf2');
    const s = await flows.launch(`rf-conf2-${tag}`, flows.CONFIDENTIAL);
    const r = await flows.refresh(s.refresh, {});
    expect(r.status).toBe(401);
    expect(r.body['error']).toBe('invalid_client');
  });
});

/**
 * fhirclient 2.x, loaded untyped: its type declarations pull the DOM library into the whole compilation. The part of
 * its Node API used here.
 */
interface FhirClientSession {
  readonly patient: { readonly id: string | null; read(): Promise<unknown> };
  readonly state: { readonly tokenResponse?: { access_token?: string; refresh_token?: string } };
  refresh(): Promise<unknown>;
}
type FhirClientSmart = (
  req: IncomingMessage,
  res: ServerResponse,
  storage: unknown,
) => {
  authorize(options: Record<string, string>): Promise<unknown>;
  ready(): Promise<FhirClientSession>;
};
const smart = createRequire(import.meta.url)('fhirclient') as FhirClientSmart;

describe('fhirclient (the SMART JS client): its own launch and refresh', () => {
  /** fhirclient's server-side storage: one session. */
  function sessionStorage() {
    const session: Record<string, unknown> = {};
    return {
      get: async (key: string) => session[key],
      set: async (key: string, value: unknown) => {
        session[key] = value;
        return value;
      },
      unset: async (key: string) => {
        const had = key in session;
        delete session[key];
        return had;
      },
    };
  }
  /** The app's own HTTP exchange as fhirclient's Node adapter sees it (it only reads the URL and Host). */
  function exchange(url: string) {
    let location = '';
    const req = { url, headers: { host: '127.0.0.1:9' }, socket: {} } as unknown as IncomingMessage;
    const res = {
      writeHead: (_status: number, headers: { location: string }) => {
        location = headers.location;
      },
      end: () => undefined,
    } as unknown as ServerResponse;
    return { req, res, location: () => location };
  }

  test('launch with fhirclient, then fhirclient.refresh() (no client_id, as fhirclient sends it) and read on', async () => {
    await flows.doctor('rf-fhirclient');
    const storage = sessionStorage();
    const launching = exchange('/launch');
    await smart(launching.req, launching.res, storage).authorize({
      iss: `${base}/fhir`,
      clientId: flows.PUBLIC,
      scope: 'launch/patient patient/*.rs offline_access openid fhirUser',
      redirectUri: REDIRECT,
    });
    const callback = await flows.loginAndPick(launching.location(), `rf-fhirclient-${tag}`);
    const back = exchange(`${callback.pathname}${callback.search}`);
    const client = await smart(back.req, back.res, storage).ready();
    expect(client.patient.id).toBe(PATIENT);
    const first = client.state.tokenResponse!;
    expect(((await client.patient.read()) as { id: string }).id).toBe(PATIENT);

    await client.refresh();
    const second = client.state.tokenResponse!;
    expect(second.access_token).not.toBe(first.access_token);
    expect(second.refresh_token).not.toBe(first.refresh_token);
    expect(((await client.patient.read()) as { id: string }).id).toBe(PATIENT);
    // The refresh used up the first refresh token (rotation).
    expect((await flows.refresh(first.refresh_token!, {})).body['error']).toBe('invalid_grant');
  });
});

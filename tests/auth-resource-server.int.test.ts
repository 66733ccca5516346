import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { type CryptoKey, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { sql } from 'slonik';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { buildApp } from '../src/app.ts';
import { testConfig } from './helpers/app.ts';
import { adminToken, bearer, ensureUser, grantPatient, signWithServerKey, tokenFor } from './helpers/auth.ts';
import type { RouteRules } from '../src/http/route-rules.ts';

/** A test route: any token, not audited (it discloses nothing). */
const TEST_RULES: RouteRules = { who: 'token', audit: { none: 'test route' }, dialect: 'plain' };

const config = testConfig();
const FHIR = `${config.publicBaseUrl}/fhir`;
const ISS = `${config.publicBaseUrl}/auth`;

let app: FastifyInstance;
let userId: string;

beforeAll(async () => {
  app = await buildApp(config);
  // A tiny protected route that shows what the policy gave the caller.
  app.get('/test/whoami', { config: { rules: TEST_RULES } }, async (req) => ({
    kind: req.access.kind,
    who: req.access.agent.who,
    patients: req.access.patientFilter('search', 'ImagingStudy'),
    readsAudit: req.access.allows('search', 'AuditEvent'),
  }));
  await app.ready();
  userId = await ensureUser(app, { username: 'rs-doctor', roles: ['doctor'] });
});
afterAll(async () => {
  await app.close();
});

const now = () => Math.floor(Date.now() / 1000);
const good = () => ({
  iss: ISS,
  aud: FHIR,
  sub: userId,
  jti: crypto.randomUUID(),
  exp: now() + 300,
  iat: now(),
  scope: 'user/*.rs',
});
const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

describe('public routes need no token', () => {
  test.each(['/healthz', '/fhir/.well-known/smart-configuration', '/auth/jwks'])('GET %s', async (path) => {
    const res = await request(app.server).get(path);
    expect(res.status).toBe(200);
  });
  test('the SMART configuration lists the endpoints and S256 only', async () => {
    const res = await request(app.server).get('/fhir/.well-known/smart-configuration');
    expect(res.body).toMatchObject({
      issuer: ISS,
      authorization_endpoint: `${ISS}/authorize`,
      token_endpoint: `${ISS}/token`,
      introspection_endpoint: `${ISS}/introspect`,
      revocation_endpoint: `${ISS}/revoke`,
      jwks_uri: `${ISS}/jwks`,
      code_challenge_methods_supported: ['S256'],
      grant_types_supported: ['authorization_code', 'refresh_token', 'client_credentials'],
    });
    expect(res.body.token_endpoint_auth_methods_supported).toContain('private_key_jwt');
    expect(res.body.capabilities).toEqual(expect.arrayContaining(['launch-standalone', 'permission-v2']));
  });
  test('the JWKS publishes public keys only, with kid', async () => {
    const res = await request(app.server).get('/auth/jwks');
    expect(res.body.keys.length).toBeGreaterThan(0);
    for (const k of res.body.keys) {
      expect(k.kid).toEqual(expect.any(String));
      expect(k.d).toBeUndefined();
    }
  });
});

describe('a valid token gets an Access from the policy', () => {
  test('a doctor with no grants sees no patients and no AuditEvent', async () => {
    const res = await request(app.server)
      .get('/test/whoami')
      .set(bearer(await signWithServerKey(app, good())));
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      kind: 'user',
      who: `User/${userId}`,
      patients: { all: false, patientIds: [] },
      readsAudit: false,
    });
  });
  test('an admin sees all', async () => {
    const res = await request(app.server)
      .get('/test/whoami')
      .set(bearer(await adminToken(app)));
    expect(res.body.patients).toEqual({ all: true });
  });
  test('a backend client limited to one patient', async () => {
    const token = await tokenFor(app, { client: { clientId: 'rs-backend', scope: 'system/*.rs', patients: ['pA'] } });
    const res = await request(app.server).get('/test/whoami').set(bearer(token));
    expect(res.body).toMatchObject({ kind: 'system', patients: { all: false, patientIds: ['pA'] } });
  });
  test('a deactivated user is refused even with an unexpired token', async () => {
    const id = await ensureUser(app, { username: 'rs-gone', roles: ['doctor'] });
    const token = await signWithServerKey(app, { ...good(), sub: id });
    await app.db.query(sql.unsafe`UPDATE users SET active = false WHERE id = ${id}`);
    const res = await request(app.server).get('/test/whoami').set(bearer(token));
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toMatch(/user unknown or inactive/);
  });
});

describe('token attacks: 401 with a reason, never 500', () => {
  const cases: [string, () => Promise<string>, RegExp][] = [
    ['alg none', async () => `${b64({ alg: 'none', kid: 'x' })}.${b64(good())}.`, /algorithm 'none' not allowed/],
    [
      'HS256 signed with our public key',
      async () => {
        const jwks = (await request(app.server).get('/auth/jwks')).body;
        const secret = new TextEncoder().encode(JSON.stringify(jwks.keys[0]));
        return new SignJWT(good()).setProtectedHeader({ alg: 'HS256', kid: jwks.keys[0].kid }).sign(secret);
      },
      /algorithm 'HS256' not allowed/,
    ],
    ['expired', () => signWithServerKey(app, { ...good(), exp: now() - 3600, iat: now() - 7200 }), /expired/],
    ['nbf in the future', () => signWithServerKey(app, { ...good(), nbf: now() + 3600 }), /not yet valid/],
    ['wrong aud', () => signWithServerKey(app, { ...good(), aud: 'https://other.example/fhir' }), /audience/],
    ['wrong iss', () => signWithServerKey(app, { ...good(), iss: 'https://evil.example' }), /issuer is not trusted/],
    ['unknown kid', () => signWithServerKey(app, good(), { kid: 'no-such-kid' }), /kid does not match/],
    [
      'tampered payload',
      async () => {
        const [h, , s] = (await signWithServerKey(app, good())).split('.');
        return `${h}.${b64({ ...good(), scope: 'user/*.cruds' })}.${s}`;
      },
      /signature is invalid/,
    ],
    ['truncated', async () => (await signWithServerKey(app, good())).slice(0, -12), /signature|malformed/],
    ['100 KB token', async () => `${b64({ alg: 'RS256', kid: 'k' })}.${'A'.repeat(100_000)}.sig`, /too large/],
    ['garbage', async () => 'not-a-jwt', /not a compact JWS/],
    ['no kid', async () => signWithServerKey(app, good(), { kid: undefined }), /no kid/],
    [
      'signed by a foreign key with our kid',
      async () => {
        const { generateKeyPair } = await import('jose');
        const pair = await generateKeyPair('ES256');
        const ours = (await request(app.server).get('/auth/jwks')).body.keys[0];
        return new SignJWT(good()).setProtectedHeader({ alg: 'ES256', kid: ours.kid }).sign(pair.privateKey);
      },
      /signature|algorithm|kid/,
    ],
  ];

  test.each(cases)('%s', async (_name, make, reason) => {
    // Over a real socket, so that HTTP-level limits (header size) are part of what is tested.
    const res = await request(app.server)
      .get('/test/whoami')
      .set(bearer(await make()));
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toMatch(/^Bearer error="invalid_token", error_description="/);
    expect(res.headers['www-authenticate']).toMatch(reason);
  });

  test('missing Authorization header', async () => {
    const res = await request(app.server).get('/test/whoami');
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toMatch(/missing bearer token/);
  });

  test('missing Bearer prefix', async () => {
    const res = await request(app.server)
      .get('/test/whoami')
      .set('authorization', await signWithServerKey(app, good()));
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toMatch(/scheme must be Bearer/);
  });

  test('two Authorization headers (over real HTTP; Node would keep only the first)', async () => {
    await app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = app.server.address() as AddressInfo;
    const token = await signWithServerKey(app, good());
    const status = await new Promise<{ status: number; auth: string | undefined }>((resolve, reject) => {
      const r = httpRequest(
        {
          port,
          path: '/test/whoami',
          headers: [
            ['host', `127.0.0.1:${port}`],
            ['authorization', `Bearer ${token}`],
            ['authorization', `Bearer ${token}`],
          ].flat(),
        },
        (res) => {
          res.resume();
          resolve({ status: res.statusCode ?? 0, auth: res.headers['www-authenticate'] });
        },
      );
      r.on('error', reject);
      r.end();
    });
    expect(status.status).toBe(401);
    expect(status.auth).toMatch(/more than one Authorization header/);
  });

  test('on /fhir the refusal is an OperationOutcome', async () => {
    const res = await request(app.server).get('/fhir/Patient').set('authorization', 'Bearer x.y.z');
    expect(res.status).toBe(401);
    expect(res.headers['content-type']).toMatch(/application\/fhir\+json/);
    expect(res.body).toMatchObject({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'login' }] });
  });

  test('a token without the needed scope gets 403 insufficient_scope', async () => {
    const token = await tokenFor(app, { user: { username: 'rs-auditor', roles: ['auditor'] }, scope: 'user/*.rs' });
    const res = await request(app.server).get('/fhir/Patient').set(bearer(token));
    expect(res.status).toBe(403);
    expect(res.headers['www-authenticate']).toMatch(/error="insufficient_scope"/);
    expect(res.body).toMatchObject({ resourceType: 'OperationOutcome', issue: [{ code: 'forbidden' }] });
  });
});

describe('an external IdP configured with static keys', () => {
  const IDP = 'https://idp.example/realms/ehr';
  let ext: FastifyInstance;
  let key: CryptoKey;
  beforeAll(async () => {
    const pair = await generateKeyPair('RS256');
    key = pair.privateKey;
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'idp-1', alg: 'RS256' };
    ext = await buildApp({ ...config, authExternalIssuers: JSON.stringify([{ issuer: IDP, jwks: { keys: [jwk] } }]) });
    ext.get('/test/whoami', { config: { rules: TEST_RULES } }, async (req) => ({
      kind: req.access.kind,
      patients: req.access.patientFilter('read', 'Patient'),
    }));
    await ext.ready();
    const id = await ensureUser(ext, { username: 'ext-doctor', roles: ['doctor'] });
    await ext.db.query(
      sql.unsafe`UPDATE users SET external_issuer = ${IDP}, external_subject = 'kc-123' WHERE id = ${id}`,
    );
    await grantPatient(ext, 'ext-doctor', 'pExt');
  });
  afterAll(async () => {
    await ext.close();
  });
  const idpToken = (claims: Record<string, unknown>, signer: CryptoKey = key) =>
    new SignJWT({ scope: 'patient/*.rs', ...claims })
      .setProtectedHeader({ alg: 'RS256', kid: 'idp-1' })
      .setIssuer(IDP)
      .setAudience(FHIR)
      .setExpirationTime('5m')
      .setIssuedAt()
      .sign(signer);

  test.each([
    [
      'a patient-context token',
      { sub: 'anyone', patient: 'pX' },
      { kind: 'patient', patients: { all: false, patientIds: ['pX'] } },
    ],
    [
      'a token of a mapped local user',
      { sub: 'kc-123', scope: 'user/*.rs' },
      { kind: 'user', patients: { all: false, patientIds: ['pExt'] } },
    ],
    [
      'a token of an unknown user',
      { sub: 'kc-999', scope: 'user/*.rs' },
      { kind: 'user', patients: { all: false, patientIds: [] } },
    ],
    [
      'an unregistered system client',
      { sub: 'svc', client_id: 'svc', scope: 'system/*.rs' },
      { kind: 'user', patients: { all: false, patientIds: [] } },
    ],
  ])('%s', async (_n, claims, expected) => {
    const res = await request(ext.server)
      .get('/test/whoami')
      .set(bearer(await idpToken(claims)));
    expect(res.status).toBe(200);
    expect(res.body).toEqual(expected);
  });

  test('a token signed by another key under the IdP kid is refused', async () => {
    const other = (await generateKeyPair('RS256')).privateKey;
    const res = await request(ext.server)
      .get('/test/whoami')
      .set(bearer(await idpToken({ sub: 'x', patient: 'pX' }, other)));
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toMatch(/signature is invalid/);
  });
});

describe('signing key rotation', () => {
  test('after a rotation new tokens carry the new kid; tokens of the retired key stay valid; JWKS has both', async () => {
    const { ensureActiveKey } = await import('../src/auth/signing-keys.ts');
    const before = await adminToken(app);
    const oldKid = (await app.authKeys.signingKey()).kid;
    const rotated = await ensureActiveKey(app.db, config.authSigningAlg, config.authKeyRotationDays, true);
    expect(rotated.kid).not.toBe(oldKid);
    app.authKeys.invalidate();
    const after = await adminToken(app);
    const kidOf = (t: string) => JSON.parse(Buffer.from(t.split('.')[0]!, 'base64url').toString()).kid;
    expect(kidOf(after)).toBe(rotated.kid);
    expect(kidOf(before)).toBe(oldKid);
    for (const t of [before, after]) {
      expect((await request(app.server).get('/test/whoami').set(bearer(t))).status).toBe(200);
    }
    await app.authKeys.reload();
    const kids = (await request(app.server).get('/auth/jwks')).body.keys.map((k: { kid: string }) => k.kid);
    expect(kids).toEqual(expect.arrayContaining([oldKid, rotated.kid]));
  });
});

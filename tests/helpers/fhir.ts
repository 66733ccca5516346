import { validateResource } from '@medplum/core';
import type { Bundle, Resource } from '@medplum/fhirtypes';
import type { FastifyInstance } from 'fastify';
import { Client } from 'fhir-kit-client';
import { sql } from 'slonik';
import { expect } from 'vitest';
import type { Config } from '../../src/config/spec.ts';
import { loadDefinitionsFor } from '../../src/fhir/definitions.ts';
import { freePort } from '../../src/stack/process.ts';
import { buildApp } from '../../src/app.ts';
import { mintLocalToken } from '../../src/auth/local-token.ts';
import type { Role } from '../../src/auth/policy.ts';
import { testConfig } from './app.ts';
import { bearer, ensureUser } from './auth.ts';

export interface FhirTestServer {
  app: FastifyInstance;
  base: string;
  /** fhir-kit-client with an admin token (user/*.cruds). */
  client: InstanceType<typeof Client>;
  /** `{ authorization: 'Bearer …' }` of the same admin token, for supertest. */
  auth: { authorization: string };
}

/** The real app listening on a free port, with publicBaseUrl set so that links point back at it. */
export async function fhirServer(overrides: Partial<Config> = {}): Promise<FhirTestServer> {
  const port = await freePort();
  const config = testConfig({ publicBaseUrl: `http://127.0.0.1:${port}`, ...overrides });
  const app = await buildApp(config);
  await app.listen({ host: '127.0.0.1', port });
  const base = `http://127.0.0.1:${port}/fhir`;
  const token = await tokenAt(app, config, 'test-admin', ['admin'], 'user/*.cruds');
  return { app, base, client: new Client({ baseUrl: base, bearerToken: token }), auth: bearer(token) };
}

/** A real token for a user of the app at `config.publicBaseUrl` (its issuer and audience). */
export async function tokenAt(
  app: FastifyInstance,
  _config: Config,
  username: string,
  roles: Role[],
  scope: string,
  patient?: string,
) {
  await ensureUser(app, { username, roles });
  const minted = await mintLocalToken(app.db, app.authMint, {
    username,
    scope,
    ...(patient ? { patient } : {}),
  });
  return minted.token;
}

/** Asserts that a resource returned by the API passes @medplum/core validateResource against R4. */
export function expectValid(resource: Resource): void {
  loadDefinitionsFor(resource);
  expect(() => validateResource(resource), `${resource.resourceType}/${resource.id}`).not.toThrow();
}

/** Every resource in a Bundle passes validation; returns the entries' resources. */
export function bundleResources(bundle: Bundle): Resource[] {
  const out = (bundle.entry ?? []).flatMap((e) => (e.resource ? [e.resource] : []));
  for (const r of out) expectValid(r);
  return out;
}

/** Row counts of the FHIR tables: a fingerprint to prove that a rejected request changed nothing. */
export async function dbFingerprint(app: FastifyInstance): Promise<string> {
  const row = await app.db.one(sql.unsafe`
    SELECT (SELECT count(*) FROM fhir_history)::int AS h,
           (SELECT coalesce(sum(version_id), 0) FROM patients)::int AS p,
           (SELECT coalesce(sum(version_id), 0) FROM orders)::int AS o,
           (SELECT coalesce(sum(version_id), 0) FROM encounters)::int AS e,
           (SELECT coalesce(sum(version_id), 0) FROM imaging_studies)::int AS i,
           (SELECT count(*) FROM search_token)::int AS t,
           (SELECT last_value FROM mrn_seq)::int AS m,
           (SELECT last_value FROM accession_seq)::int AS a`);
  return JSON.stringify(row);
}

let counter = 0;
/** A unique suffix so that test files do not collide in the shared database. */
export function uniq(prefix: string): string {
  counter += 1;
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${counter}`;
}

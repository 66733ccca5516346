/**
 * FHIR `/fhir/AuditEvent`: read and search (https://hl7.org/fhir/R4/http.html#read, #search), for auditors and for
 * patients about themselves (read-access.ts). AuditEvents are immutable and only this server creates them: create,
 * update, patch and delete answer 405 (https://hl7.org/fhir/R4/http.html#summary). Errors are OperationOutcomes.
 *
 * Registered as its own encapsulated plugin at the root (static `/fhir/AuditEvent` paths win over the FHIR scope's
 * parametric ones), with its own body parser and error handler, so that a write attempt always gets its 405.
 */
import { declareRules, FHIR_RULES } from '../http/route-rules.ts';
import type { Bundle, BundleLink } from '@medplum/fhirtypes';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../config/spec.ts';
import { renderFhir, sendRendered } from '../errors/render.ts';
import { FhirError } from '../fhir/errors.ts';
import { readAuditEvent, searchAuditEvents } from './query.ts';
import { type AuditReadScope, auditReadScope } from './read-access.ts';
import { parseAuditSearch } from './search.ts';

const FHIR_JSON = 'application/fhir+json; charset=utf-8';

/** The caller's visibility, or the 401/403 to answer (recorded as a denial by the audit plugin). */
function visible(req: FastifyRequest): Extract<AuditReadScope, { kind: 'all' } | { kind: 'patients' }> {
  const scope = auditReadScope(req.access);
  if (scope.kind === 'unauthenticated') throw new FhirError(401, 'login', 'authentication required');
  if (scope.kind === 'forbidden') throw new FhirError(403, 'forbidden', scope.reason);
  return scope;
}

function queryPairs(req: FastifyRequest, body?: string): [string, string][] {
  const q = req.url.indexOf('?');
  const pairs = [...new URLSearchParams(q < 0 ? '' : req.url.slice(q + 1))];
  if (body) pairs.push(...new URLSearchParams(body));
  return pairs;
}

function rawQuery(req: FastifyRequest): string {
  const q = req.url.indexOf('?');
  return q < 0 ? '' : req.url.slice(q + 1);
}

/**
 * With the durable outbox (outbox.ts), this process's accepted read events are shipped to PostgreSQL before it
 * answers, so an auditor sees them; if the database refuses them now, the answer holds what is stored.
 */
async function shipOwnEvents(req: FastifyRequest): Promise<void> {
  await req.server.auditOutbox?.drain().catch((err: unknown) => {
    req.log.warn({ err }, 'audit outbox could not be shipped before an AuditEvent query');
  });
}

export async function auditEventRoutes(app: FastifyInstance, opts: { config: Config }): Promise<void> {
  const base = `${opts.config.publicBaseUrl}/fhir`;

  // Bodies are read as text: only `_search` uses one (form-encoded); writes are refused whatever they carry.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string', bodyLimit: 65_536 }, (_req, body, done) => done(null, body));

  app.setErrorHandler((err: Error, req, reply) => {
    const r = renderFhir(err, req.id);
    if (!r.view.exposed) req.log.error({ err }, 'AuditEvent route failed');
    return sendRendered(reply.type(FHIR_JSON), r);
  });

  const search = async (req: FastifyRequest, reply: FastifyReply, body?: string) => {
    req.audit.fhir({ interaction: 'search-type', resourceType: 'AuditEvent', query: rawQuery(req) || undefined });
    const scope = visible(req);
    const params = parseAuditSearch(queryPairs(req, body));
    await shipOwnEvents(req);
    const page = await searchAuditEvents(req.server.db, params, scope);
    if (scope.kind === 'patients') req.audit.addPatients(...scope.patientIds);
    const selfQuery = new URLSearchParams(queryPairs(req, body));
    const link = (relation: string, offset: number): BundleLink => {
      const q = new URLSearchParams(selfQuery);
      q.set('_offset', String(offset));
      q.set('_count', String(params.count));
      return { relation, url: `${base}/AuditEvent?${q}` };
    };
    const links: BundleLink[] = [
      { relation: 'self', url: `${base}/AuditEvent${selfQuery.size ? `?${selfQuery}` : ''}` },
    ];
    if (params.offset + page.events.length < page.total && params.count > 0) {
      links.push(link('next', params.offset + params.count));
    }
    if (params.offset > 0) links.push(link('previous', Math.max(0, params.offset - params.count)));
    const bundle: Bundle = {
      resourceType: 'Bundle',
      type: 'searchset',
      total: page.total,
      link: links,
      entry: page.events.map((resource) => ({
        fullUrl: `${base}/AuditEvent/${resource.id}`,
        resource,
        search: { mode: 'match' },
      })),
    };
    return reply.type(FHIR_JSON).send(bundle);
  };

  declareRules(app, FHIR_RULES);
  app.get('/fhir/AuditEvent', (req, reply) => search(req, reply));
  app.post('/fhir/AuditEvent/_search', (req, reply) =>
    search(req, reply, typeof req.body === 'string' ? req.body : ''),
  );

  app.get<{ Params: { id: string } }>('/fhir/AuditEvent/:id', async (req, reply) => {
    req.audit.fhir({ interaction: 'read', resourceType: 'AuditEvent', id: req.params.id });
    const scope = visible(req);
    await shipOwnEvents(req);
    const event = await readAuditEvent(req.server.db, req.params.id, scope);
    if (!event) {
      // Unknown, or about another patient: the same 404 (recorded as a denial, without the event's patients).
      req.audit.deny();
      throw new FhirError(404, 'not-found', `AuditEvent/${req.params.id} not found`);
    }
    if (scope.kind === 'patients') req.audit.addPatients(...scope.patientIds);
    return reply.type(FHIR_JSON).send(event);
  });

  const immutable = async (req: FastifyRequest): Promise<never> => {
    const interaction = req.method === 'POST' ? 'create' : req.method === 'DELETE' ? 'delete' : 'update';
    const id = (req.params as { id?: string }).id;
    req.audit.fhir({ interaction: req.method === 'PATCH' ? 'patch' : interaction, resourceType: 'AuditEvent', id });
    throw new FhirError(405, 'not-supported', `AuditEvents are immutable: ${req.method} is not allowed`);
  };
  app.post('/fhir/AuditEvent', immutable);
  app.delete('/fhir/AuditEvent', immutable);
  for (const method of ['PUT', 'PATCH', 'DELETE'] as const) {
    app.route({ method, url: '/fhir/AuditEvent/:id', handler: immutable });
  }
}

import { declareRules, FHIR_RULES, publicRoute } from '../http/route-rules.ts';
import { createHash } from 'node:crypto';
import { parse as parseQueryString } from 'node:querystring';
import type { FastifyError, FastifyInstance, FastifyRequest } from 'fastify';
import type { Config } from '../config/spec.ts';
import { renderFhir } from '../errors/render.ts';
import { capabilityStatement } from './capability.ts';
import { loadDefinitions, loadProfiles } from './definitions.ts';
import { MethodNotAllowedError, NotFoundError } from './errors.ts';
import { checkFormat, sendFhir } from './http.ts';
import { decodeUtf8, parseFhirJson } from './json-body.ts';
import { FhirRepository, type InteractionEvent, type RepositoryContext } from './repository.ts';
import { registerRoutes } from './routes.ts';
import { assertStrictQuery } from './search/query-string.ts';
import { registerSystemRoutes } from './system-routes.ts';

export interface FhirPluginOptions {
  config: Config;
  /** Called once per FHIR interaction. */
  onInteraction?: (event: InteractionEvent) => void;
  /**
   * Called with each request's repository before its handler, so that writes and Bundle entries commit their
   * AuditEvents in the repository's own transactions (src/app.ts passes the audit's hook; the FHIR module does not
   * depend on the audit module).
   */
  onRepository?: (req: FastifyRequest, repo: FhirRepository) => void;
}

/** The repository context (definitions, profiles, identifier settings, interaction hook) for a configuration. */
export function createRepositoryContext(
  config: Config,
  onInteraction?: (event: InteractionEvent) => void,
): RepositoryContext {
  loadDefinitions();
  const profiles = loadProfiles({ mrnSystem: config.fhirMrnSystem, accessionSystem: config.fhirAccessionSystem });
  return { config, profiles, ...(onInteraction ? { onInteraction } : {}) };
}

/**
 * The FHIR R4 API under /fhir (https://hl7.org/fhir/R4/http.html): its own Fastify scope with FHIR JSON parsers,
 * an OperationOutcome error handler, one {@link FhirRepository} per request carrying the caller's access context,
 * and the routes of `routes.ts`. Definitions and profiles are loaded once, here.
 */
export async function fhirPlugin(app: FastifyInstance, opts: FhirPluginOptions): Promise<void> {
  const { config } = opts;
  loadDefinitions();
  const profiles = loadProfiles({ mrnSystem: config.fhirMrnSystem, accessionSystem: config.fhirAccessionSystem });
  const ctx: RepositoryContext = {
    config,
    profiles,
    ...(opts.onInteraction ? { onInteraction: opts.onInteraction } : {}),
  };
  const fhirBase = `${config.publicBaseUrl}/fhir`;
  const bodyLimit = config.fhirMaxBodyBytes;

  app.removeAllContentTypeParsers();
  const maxDepth = config.fhirMaxJsonDepth;
  const maxSearchValue = config.fhirMaxSearchValueLength;
  app.addContentTypeParser(
    ['application/fhir+json', 'application/json', 'application/json-patch+json'],
    { parseAs: 'buffer', bodyLimit },
    (_req, body, done) => {
      try {
        done(null, parseFhirJson(body as Buffer, maxDepth));
      } catch (err) {
        done(err as Error, undefined);
      }
    },
  );
  app.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'buffer', bodyLimit },
    (_req, body, done) => {
      try {
        const text = decodeUtf8(body as Buffer);
        assertStrictQuery(text, maxSearchValue);
        done(null, parseQueryString(text));
      } catch (err) {
        done(err as Error, undefined);
      }
    },
  );

  // Every route of the scope: a token whose scopes grant the path's interaction, FHIR audit, OperationOutcome errors.
  declareRules(app, FHIR_RULES);

  app.decorateRequest('fhir', null as unknown as FhirRepository);
  app.addHook('onRequest', async (req) => {
    // Search parameters (and If-None-Exist) are read strictly before Fastify's lenient parse is used.
    const q = req.url.indexOf('?');
    if (q >= 0) assertStrictQuery(req.url.slice(q + 1), maxSearchValue);
    const ifNoneExist = req.headers['if-none-exist'];
    if (typeof ifNoneExist === 'string') assertStrictQuery(ifNoneExist.replace(/^.*\?/, ''), maxSearchValue);
    req.fhir = new FhirRepository(app.db, req.access, ctx);
    opts.onRepository?.(req, req.fhir);
  });

  // Every successful response carries ETag and Last-Modified; resources set theirs from the version.
  app.addHook('onSend', async (_req, reply, payload) => {
    if (reply.statusCode < 300 && typeof payload === 'string' && !reply.hasHeader('etag')) {
      reply.header('etag', `W/"${createHash('sha256').update(payload).digest('base64url').slice(0, 22)}"`);
      reply.header('last-modified', new Date().toUTCString());
    }
    return payload;
  });

  app.setErrorHandler((err: FastifyError, req, reply) => {
    const r = renderFhir(err, req.id, { bodyLimit });
    if (!r.view.exposed) req.log.error({ err, requestId: req.id }, 'unexpected FHIR error');
    else if (r.statusCode >= 500) req.log.warn({ reason: err.message, status: r.statusCode }, 'FHIR request refused');
    else
      req.log.info({ status: r.statusCode, issue: r.body.issue[0]?.code, msg: err.message }, 'FHIR request rejected');
    for (const [name, value] of Object.entries(r.headers)) reply.header(name, value);
    return sendFhir(req, reply, r.statusCode, r.body);
  });
  app.setNotFoundHandler({ config: { rules: FHIR_RULES } } as object, (req, reply) => {
    const err = new NotFoundError(`no FHIR endpoint ${req.method} ${req.url.split('?')[0]}`);
    return sendFhir(req, reply, 404, err.outcome());
  });

  app.get('/metadata', { config: { rules: publicRoute('public CapabilityStatement', 'fhir') } }, async (req, reply) => {
    checkFormat(req);
    return sendFhir(
      req,
      reply,
      200,
      capabilityStatement(fhirBase, profiles, { name: 'imaging-ehr-facade', version: '0.1.0' }),
    );
  });
  app.route({
    method: ['POST', 'PUT', 'PATCH', 'DELETE'],
    url: '/metadata',
    handler: async () => {
      throw new MethodNotAllowedError('metadata is read-only');
    },
  });
  registerRoutes(app, bodyLimit);
  registerSystemRoutes(app, bodyLimit);
}

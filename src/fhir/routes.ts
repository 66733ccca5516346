import type { Resource } from '@medplum/fhirtypes';
import type { FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods } from 'fastify';
import { BadRequestError, MethodNotAllowedError, NotFoundError, UnsupportedMediaTypeError } from './errors.ts';
import { historyBundle, searchBundle, type SummaryMode, subset } from './format.ts';
import { checkFormat, ID, isStrict, parseIfMatch, sendFhir, sendResource, versionHeaders } from './http.ts';
import { type FhirType, RESOURCE_TYPES } from './registry.ts';
import type { FhirRepository, JsonPatch } from './repository.ts';
import { assertResourceBody } from './validate.ts';
import { studyLinksChanged } from '../imaging/study-links.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** The per-request FHIR repository, carrying the caller's access context. */
    fhir: FhirRepository;
  }
}

type Params = { id: string; vid: string };
type Query = Record<string, string | string[] | undefined>;
type Handler = (type: FhirType, req: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply>;

interface RouteDef {
  /** CapabilityStatement interaction code (https://hl7.org/fhir/R4/valueset-type-restful-interaction.html). */
  interaction:
    | 'read'
    | 'vread'
    | 'update'
    | 'patch'
    | 'delete'
    | 'history-instance'
    | 'history-type'
    | 'create'
    | 'search-type';
  method: HTTPMethods;
  /** Path under /fhir/<Type>. */
  path: string;
  handler: Handler;
}

function single(q: Query, key: string): string | undefined {
  const v = q[key];
  return Array.isArray(v) ? v[0] : v;
}

function shape(req: FastifyRequest) {
  const q = req.query as Query;
  const summary = single(q, '_summary') as SummaryMode | undefined;
  const elements = single(q, '_elements')?.split(',').filter(Boolean);
  return (r: Resource) => subset(r, summary, elements);
}

function checkId(id: string): void {
  if (!ID.test(id)) throw new NotFoundError(`no resource with id ${JSON.stringify(id)}`);
}

async function search(type: FhirType, req: FastifyRequest, reply: FastifyReply, query: Query) {
  const { plan, page } = await req.fhir.search(type, query, isStrict(req));
  return sendFhir(req, reply, 200, searchBundle(req.fhir.fhirBase, plan, page));
}

function historyParams(q: Query): [string, string][] {
  return ['_count', '_since'].flatMap((k) =>
    single(q, k) === undefined ? [] : [[k, single(q, k) as string] as [string, string]],
  );
}

/** The interactions, each with its method and path; routes and the CapabilityStatement both come from this table. */
export const ROUTES: readonly RouteDef[] = [
  {
    interaction: 'search-type',
    method: 'GET',
    path: '',
    handler: (t, req, reply) => search(t, req, reply, req.query as Query),
  },
  {
    interaction: 'search-type',
    method: 'POST',
    path: '/_search',
    handler: (t, req, reply) => {
      const form = (req.body ?? {}) as Query;
      const merged: Query = { ...(req.query as Query) };
      for (const [k, v] of Object.entries(form)) merged[k] = [...[merged[k] ?? []].flat(), ...[v ?? []].flat()];
      return search(t, req, reply, merged);
    },
  },
  {
    interaction: 'create',
    method: 'POST',
    path: '',
    handler: async (t, req, reply) => {
      assertResourceBody(req.body, t);
      const header = req.headers['if-none-exist'];
      const result = await req.fhir.create(t, req.body, typeof header === 'string' ? header : undefined);
      const url = `${req.fhir.fhirBase}/${t}/${result.resource.id}/_history/${result.versionId}`;
      if (result.created) reply.header('location', url);
      else reply.header('content-location', url);
      return sendResource(req, reply, result.created ? 201 : 200, result, shape(req), true);
    },
  },
  {
    interaction: 'history-type',
    method: 'GET',
    path: '/_history',
    handler: (t, req, reply) => history(t, undefined, req, reply),
  },
  {
    interaction: 'read',
    method: 'GET',
    path: '/:id',
    handler: async (t, req, reply) => {
      const { id } = req.params as Params;
      checkId(id);
      return sendResource(req, reply, 200, await req.fhir.read(t, id), shape(req));
    },
  },
  {
    interaction: 'update',
    method: 'PUT',
    path: '/:id',
    handler: async (t, req, reply) => {
      const { id } = req.params as Params;
      assertResourceBody(req.body, t);
      if (!ID.test(id)) throw new BadRequestError(`invalid id ${JSON.stringify(id)}`);
      if (req.body.id !== id) {
        throw new BadRequestError(`the body's id (${JSON.stringify(req.body.id ?? null)}) must equal the URL's id`, [
          'id',
        ]);
      }
      const ifMatch = parseIfMatch(req.headers['if-match']);
      const result = await req.fhir.update(t, id, req.body, ifMatch === undefined ? {} : { ifMatch });
      if (result.created) reply.header('location', `${req.fhir.fhirBase}/${t}/${id}/_history/${result.versionId}`);
      return sendResource(req, reply, result.created ? 201 : 200, result, shape(req), true);
    },
  },
  {
    interaction: 'patch',
    method: 'PATCH',
    path: '/:id',
    handler: async (t, req, reply) => {
      const { id } = req.params as Params;
      checkId(id);
      const ct = String(req.headers['content-type'] ?? '')
        .split(';')[0]
        ?.trim();
      if (ct !== 'application/json-patch+json') throw new UnsupportedMediaTypeError(ct ?? '');
      if (!Array.isArray(req.body)) throw new BadRequestError('a JSON Patch body is an array of operations');
      const result = await req.fhir.patch(t, id, req.body as JsonPatch, parseIfMatch(req.headers['if-match']));
      return sendResource(req, reply, 200, result, shape(req), true);
    },
  },
  {
    interaction: 'delete',
    method: 'DELETE',
    path: '/:id',
    handler: async (t, req, reply) => {
      const { id } = req.params as Params;
      checkId(id);
      const result = await req.fhir.delete(t, id);
      versionHeaders(reply, result);
      return reply.code(204).send();
    },
  },
  {
    interaction: 'history-instance',
    method: 'GET',
    path: '/:id/_history',
    handler: (t, req, reply) => history(t, (req.params as Params).id, req, reply),
  },
  {
    interaction: 'vread',
    method: 'GET',
    path: '/:id/_history/:vid',
    handler: async (t, req, reply) => {
      const { id, vid } = req.params as Params;
      checkId(id);
      return sendResource(req, reply, 200, await req.fhir.vread(t, id, vid), shape(req));
    },
  },
];

async function history(t: FhirType, id: string | undefined, req: FastifyRequest, reply: FastifyReply) {
  if (id !== undefined) checkId(id);
  const q = req.query as Query;
  const flat = Object.fromEntries(Object.keys(q).map((k) => [k, single(q, k)]));
  const result = await req.fhir.history(t, id, flat);
  const path = id === undefined ? `${t}/_history` : `${t}/${id}/_history`;
  return sendFhir(req, reply, 200, historyBundle(req.fhir.fhirBase, path, historyParams(q), result));
}

/** Interaction codes for the CapabilityStatement, in route-table order. */
export const TYPE_INTERACTIONS = [...new Set(ROUTES.map((r) => r.interaction))];

const METHODS: HTTPMethods[] = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];
/** Interactions that can change which patient an ImagingStudy (and so its DICOM study) belongs to. */
const LINK_WRITES: ReadonlySet<RouteDef['interaction']> = new Set(['create', 'update', 'patch', 'delete']);

/** Registers every route of the table for every type, and 405 for the other methods on the same paths. */
export function registerRoutes(app: FastifyInstance, bodyLimit: number): void {
  for (const type of RESOURCE_TYPES) {
    const paths = new Map<string, HTTPMethods[]>();
    for (const r of ROUTES) {
      paths.set(r.path, [...(paths.get(r.path) ?? []), r.method]);
      app.route({
        method: r.method,
        url: `/${type}${r.path}`,
        bodyLimit,
        handler: async (req, reply) => {
          checkFormat(req);
          const sent = await r.handler(type, req, reply);
          // The write has committed: drop cached study ↔ patient links (DICOMweb access) before anything else runs.
          if (type === 'ImagingStudy' && LINK_WRITES.has(r.interaction)) studyLinksChanged();
          return sent;
        },
      });
    }
    for (const [path, methods] of paths) {
      const others = METHODS.filter(
        (m) => !methods.includes(m) && !(m === 'POST' && path === '') && !(m === 'GET' && path === ''),
      );
      if (!others.length) continue;
      app.route({
        method: others,
        url: `/${type}${path}`,
        bodyLimit,
        handler: async (req) => {
          throw new MethodNotAllowedError(`${req.method} is not supported on ${type}${path}`);
        },
      });
    }
  }
}

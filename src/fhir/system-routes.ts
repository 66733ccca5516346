/**
 * Routes at the FHIR base and operations (https://hl7.org/fhir/R4/http.html): batch and transaction Bundles
 * (`POST /fhir`), system search (`GET /fhir?_type=…`) and `Patient/{id}/$everything`.
 */
import type { FastifyInstance } from 'fastify';
import { studyLinksChanged } from '../imaging/study-links.ts';
import { runBundle } from './bundle-run.ts';
import { MethodNotAllowedError } from './errors.ts';
import { everything } from './everything.ts';
import { checkFormat, ID, isStrict, returnMinimal, sendFhir } from './http.ts';
import { NotFoundError } from './errors.ts';
import { systemSearch } from './system-search.ts';

type Query = Record<string, string | string[] | undefined>;

export function registerSystemRoutes(app: FastifyInstance, bodyLimit: number): void {
  app.post('/', { bodyLimit }, async (req, reply) => {
    checkFormat(req);
    const kind = (req.body as { type?: unknown } | undefined)?.type;
    req.audit?.fhir({ interaction: kind === 'transaction' ? 'transaction' : 'batch' });
    const { bundle, wroteTypes } = await runBundle(req.fhir, req.body, {
      strict: isStrict(req),
      minimal: returnMinimal(req),
      audit: req.fhir.onEntry,
      requestId: req.id,
    });
    // Writes have committed: drop cached study ↔ patient links (DICOMweb access).
    if (wroteTypes.has('ImagingStudy')) studyLinksChanged();
    return sendFhir(req, reply, 200, bundle);
  });
  app.get('/', async (req, reply) => {
    checkFormat(req);
    return sendFhir(req, reply, 200, await systemSearch(req.fhir, req.query as Query, isStrict(req)));
  });
  app.route({
    method: ['PUT', 'PATCH', 'DELETE'],
    url: '/',
    handler: async (req) => {
      throw new MethodNotAllowedError(`${req.method} is not supported on the base`);
    },
  });
  app.get('/Patient/:id/$everything', async (req, reply) => {
    checkFormat(req);
    const { id } = req.params as { id: string };
    if (!ID.test(id)) throw new NotFoundError(`no resource with id ${JSON.stringify(id)}`);
    req.audit?.fhir({ interaction: 'operation', resourceType: 'Patient', id });
    const q = req.query as Record<string, string | string[] | undefined>;
    return sendFhir(req, reply, 200, await everything(req.fhir, id, q));
  });
}

import type { Resource } from '@medplum/fhirtypes';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { BadRequestError, NotAcceptableError } from './errors.ts';
import type { StoredResource } from './repository.ts';

/** FHIR ids (https://hl7.org/fhir/R4/datatypes.html#id). */
export const ID = /^[A-Za-z0-9\-.]{1,64}$/;

const JSON_FORMATS = new Set(['json', 'application/json', 'application/fhir+json', 'application/json+fhir']);

/**
 * Response format (https://hl7.org/fhir/R4/http.html#mime-type): JSON only, served as application/fhir+json also
 * when the client asks for application/json. `_format` overrides Accept; anything else is 406.
 */
export function checkFormat(req: FastifyRequest): void {
  const q = req.query as Record<string, string | undefined>;
  const format = q['_format'];
  if (format !== undefined) {
    if (!JSON_FORMATS.has(format.split(';')[0]?.trim() ?? '')) throw new NotAcceptableError(format);
    return;
  }
  const accept = req.headers.accept;
  if (!accept) return;
  const types = accept.split(',').map((t) => t.split(';')[0]?.trim().toLowerCase() ?? '');
  if (!types.some((t) => t === '*/*' || t === 'application/*' || JSON_FORMATS.has(t)))
    throw new NotAcceptableError(accept);
}

export function wantsPretty(req: FastifyRequest): boolean {
  return (req.query as Record<string, string | undefined>)['_pretty'] === 'true';
}

/** Sends a FHIR JSON body (`_pretty` honoured). */
export function sendFhir(req: FastifyRequest, reply: FastifyReply, status: number, body: unknown): FastifyReply {
  return reply
    .code(status)
    .type('application/fhir+json; charset=utf-8')
    .send(JSON.stringify(body, null, wantsPretty(req) ? 2 : undefined));
}

/** ETag and Last-Modified of a stored version (https://hl7.org/fhir/R4/http.html#versioning). */
export function versionHeaders(reply: FastifyReply, stored: { versionId: number; lastUpdated: string }): void {
  reply.header('etag', `W/"${stored.versionId}"`);
  const when = new Date(stored.lastUpdated);
  if (!Number.isNaN(when.getTime())) reply.header('last-modified', when.toUTCString());
}

/** `If-Match: W/"3"` → 3; absent → undefined; malformed → 400. */
export function parseIfMatch(header: string | undefined): number | undefined {
  if (header === undefined) return undefined;
  const m = /^(?:W\/)?"(\d{1,9})"$/.exec(header.trim());
  if (!m) throw new BadRequestError('If-Match must be a version ETag such as W/"1"');
  return Number(m[1]);
}

/** `Prefer: handling=strict` (https://hl7.org/fhir/R4/search.html#errors); lenient is the default. */
export function isStrict(req: FastifyRequest): boolean {
  return /(^|[,;\s])handling=strict\b/.test(String(req.headers.prefer ?? ''));
}

/** `Prefer: return=minimal` (https://hl7.org/fhir/R4/http.html#ops). */
export function returnMinimal(req: FastifyRequest): boolean {
  return /(^|[,;\s])return=minimal\b/.test(String(req.headers.prefer ?? ''));
}

/** Sends a stored resource with its version headers, honouring _summary/_elements via `shape`. */
export function sendResource(
  req: FastifyRequest,
  reply: FastifyReply,
  status: number,
  stored: StoredResource,
  shape: (r: Resource) => Resource = (r) => r,
  write = false,
): FastifyReply {
  versionHeaders(reply, stored);
  if (write && returnMinimal(req)) return reply.code(status).send();
  return sendFhir(req, reply, status, shape(stored.resource));
}

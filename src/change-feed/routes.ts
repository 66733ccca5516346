import { API_RULES, declareRules } from '../http/route-rules.ts';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Access } from '../auth/access.ts';
import type { IndexDeps } from './index-study.ts';
import { getUnmatched, listUnmatched } from './queue.ts';
import { QUEUE_STATUSES, type QueueStatus } from './queue-state.ts';
import { type Actor, linkUnmatched, rejectUnmatched, rollbackUnmatched } from './resolve.ts';
import { EhrError, type ErrorCode } from '../errors/base.ts';
import { renderJson, sendRendered } from '../errors/render.ts';

/**
 * The reconciliation queue as a small JSON API, `/api/v1/dicom/unmatched` (chosen over FHIR Task: the items are
 * DICOM studies that are not yet FHIR data, and resolving one rewrites tags in Orthanc):
 *
 * - `GET  /api/v1/dicom/unmatched?status=pending&limit=100&offset=0` → `{ items: [...] }`
 * - `GET  /api/v1/dicom/unmatched/{id}` → the item
 * - `POST /api/v1/dicom/unmatched/{id}/link`   `{ "patient": "Patient/x", "order": "ServiceRequest/y" }` → the item
 * - `POST /api/v1/dicom/unmatched/{id}/reject` `{ "reason": "..." }` → the item (a half-done re-link is rolled back)
 * - `POST /api/v1/dicom/unmatched/{id}/rollback` → the item, back to `pending` (undoes a re-link that failed half-way)
 *
 * Only admins and radiologists (roles of the caller's access context); everyone else 403, no access context 401.
 */

export const QUEUE_ROLES = ['admin', 'radiologist'] as const;

/** Whether the caller may see and resolve the queue (deny by default). */
export function mayReconcile(access: Access | null | undefined): boolean {
  if (!access) return false;
  if (access.kind !== 'user') return false;
  return access.agent.roles.some((r) => (QUEUE_ROLES as readonly string[]).includes(r));
}

export class HttpProblem extends EhrError {
  override readonly code: ErrorCode = 'EHR_QUEUE_REQUEST';
  override name = 'HttpProblem';
  constructor(status: number, message: string) {
    super(message);
    this.httpStatus = status;
  }
}

function actorOf(req: FastifyRequest): Actor {
  return { who: req.access.agent.who, roles: req.access.agent.roles };
}

const idParams = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', maxLength: 64 } },
} as const;

export async function unmatchedRoutes(app: FastifyInstance, opts: { deps: () => IndexDeps }): Promise<void> {
  declareRules(app, API_RULES);
  app.setErrorHandler((err, req, reply: FastifyReply) => {
    const r = renderJson(err, req.id);
    if (r.statusCode >= 500) req.log.error({ err }, 'unmatched queue: request failed');
    else req.log.info({ status: r.statusCode, msg: (err as Error).message }, 'unmatched queue: request refused');
    return sendRendered(reply, r);
  });

  app.addHook('onRequest', async (req) => {
    const access = req.access as Access | null | undefined;
    const allowed = mayReconcile(access);
    req.log.info(
      { authz: { decision: allowed ? 'allow' : 'deny', who: access?.agent.who, roles: access?.agent.roles } },
      'unmatched queue: access decision',
    );
    if (!access) throw new HttpProblem(401, 'authentication required');
    if (!allowed) throw new HttpProblem(403, 'only admins and radiologists may reconcile unmatched studies');
  });

  app.get<{ Querystring: { status?: QueueStatus; limit?: number; offset?: number } }>(
    '/',
    {
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            status: { enum: [...QUEUE_STATUSES] },
            limit: { type: 'integer', minimum: 1, maximum: 1000 },
            offset: { type: 'integer', minimum: 0 },
          },
        },
      },
    },
    async (req) => ({ items: await listUnmatched(app.db, req.query) }),
  );

  app.get<{ Params: { id: string } }>('/:id', { schema: { params: idParams } }, async (req) =>
    getUnmatched(app.db, req.params.id),
  );

  app.post<{ Params: { id: string }; Body: { patient: string; order: string } }>(
    '/:id/link',
    {
      schema: {
        params: idParams,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['patient', 'order'],
          properties: {
            patient: { type: 'string', minLength: 1, maxLength: 100 },
            order: { type: 'string', minLength: 1, maxLength: 100 },
          },
        },
      },
    },
    async (req) => linkUnmatched(opts.deps(), req.params.id, req.body, actorOf(req)),
  );

  app.post<{ Params: { id: string }; Body: { reason: string } }>(
    '/:id/reject',
    {
      schema: {
        params: idParams,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['reason'],
          properties: { reason: { type: 'string', minLength: 1, maxLength: 1000 } },
        },
      },
    },
    async (req) => rejectUnmatched(opts.deps(), req.params.id, req.body.reason, actorOf(req)),
  );

  app.post<{ Params: { id: string } }>('/:id/rollback', { schema: { params: idParams } }, async (req) =>
    rollbackUnmatched(opts.deps(), req.params.id, actorOf(req)),
  );
}

import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { auditStoreWithin } from '../../audit/plugin.ts';
import type { Access } from '../../auth/access.ts';
import { closeLinkedByUpload, enqueueUnmatched } from '../../change-feed/queue.ts';
import type { Config } from '../../config/spec.ts';
import { loadDefinitions, loadProfiles } from '../../fhir/definitions.ts';
import { FhirRepository, type RepositoryContext } from '../../fhir/repository.ts';
import { type FhirStore, findStudyLink, linkingAccess, matchingAccess, recordStudies } from '../../imaging/ehr-link.ts';
import { insertUploadLogs } from '../../imaging/upload-log.ts';
import type { StowDeps, StowOptions } from './store-types.ts';
import { studyContentChanged, studyLinksChanged } from '../../imaging/study-links.ts';
import { EhrError, type ErrorCode } from '../../errors/base.ts';

/**
 * Wiring of the STOW-RS pipeline to the real app: the FHIR repository (lookups with {@link matchingAccess}, writes in
 * one transaction with {@link linkingAccess}), Orthanc, the upload log and the reconciliation queue. Also the
 * request-level rules shared by STOW-RS and the upload API: 401 without access, 413 by Content-Length, and a body
 * left unread.
 */

/** An HTTP-level refusal of a whole upload request (400, 401, 413, 415). The DICOMweb error handler sends it. */
export class UploadRequestError extends EhrError {
  override readonly code: ErrorCode = 'EHR_UPLOAD_REQUEST';
  override name = 'UploadRequestError';
  constructor(statusCode: number, message: string) {
    super(message);
    this.httpStatus = statusCode;
  }
}

export function stowFactory(app: FastifyInstance, config: Config) {
  loadDefinitions();
  const ctx: RepositoryContext = {
    config,
    profiles: loadProfiles({ mrnSystem: config.fhirMrnSystem, accessionSystem: config.fhirAccessionSystem }),
  };
  return (access: Access): StowDeps => {
    // Studies linked inside the current EHR transaction: announced only after it commits (see study-links.ts).
    let linked: string[] = [];
    return {
      orthanc: app.orthanc,
      lookup: new FhirRepository(app.db, matchingAccess(access), ctx) as unknown as FhirStore,
      studyLink: (uid) => findStudyLink(app.db, uid),
      transaction: async (patientIds, fn) => {
        linked = [];
        try {
          return await app.db.transaction((tx) =>
            fn(new FhirRepository(tx, linkingAccess(access, patientIds), ctx) as unknown as FhirStore, tx),
          );
        } finally {
          for (const uid of linked) studyLinksChanged(uid);
          linked = [];
        }
      },
      recordStudies: async (store, studies) => {
        const out = await recordStudies(store, studies, {
          endpointId: config.dicomwebEndpointId,
          publicBaseUrl: config.publicBaseUrl,
          newId: randomUUID,
          now: new Date(),
        });
        linked.push(...out.map((s) => s.studyInstanceUid));
        return out;
      },
      insertLogs: insertUploadLogs,
      hold: async (tx, input) => {
        await enqueueUnmatched(tx, { ...input, source: 'stow' });
      },
      closeQueued: async (tx, studies) => {
        for (const s of studies) {
          const closed = await closeLinkedByUpload(tx, { ...s, by: access.agent.who });
          for (const item of closed) {
            app.log.info(
              { queueItemId: item.id, orthancStudyId: s.orthancStudyId },
              'unmatched study linked by upload',
            );
          }
        }
      },
      // After the commit (or the undo): linked, already-linked and held studies alike.
      studiesStored: (uids) => {
        for (const uid of uids) studyContentChanged(uid);
      },
    };
  };
}

/** The caller's access, or 401 (authentication is checked by the access plugin before this). */
export function requireAccess(req: FastifyRequest): Access {
  if (!req.access) throw new UploadRequestError(401, 'authentication required');
  return req.access;
}

/** 413 before reading when Content-Length is over the request limit. */
export function checkContentLength(req: FastifyRequest, max: number): void {
  const len = Number(req.headers['content-length']);
  if (Number.isFinite(len) && len > max) {
    throw new UploadRequestError(413, `request body of ${len} bytes exceeds the limit of ${max} bytes`);
  }
}

/**
 * The request body, failing with 413 past `max` bytes and with 400 when the client aborts; `onBytes` hears the size of
 * each chunk read (the GC pacer, gc-pacer.ts).
 */
export async function* limitedBody(
  raw: IncomingMessage,
  max: number,
  onBytes?: (n: number) => void,
): AsyncGenerator<Buffer> {
  let n = 0;
  try {
    for await (const chunk of raw) {
      n += (chunk as Buffer).length;
      onBytes?.((chunk as Buffer).length);
      if (n > max) throw new UploadRequestError(413, `request body exceeds the limit of ${max} bytes`);
      yield chunk as Buffer;
    }
  } catch (err) {
    if (err instanceof UploadRequestError) throw err;
    throw new UploadRequestError(400, 'the request body was aborted');
  }
}

export function pipelineOptions(
  req: FastifyRequest,
  config: Config,
  access: Access,
  extra: Pick<StowOptions, 'source' | 'acceptPart'> & { targetStudy?: string | undefined },
): StowOptions {
  return {
    access,
    requestId: req.id,
    maxInstanceBytes: config.stowMaxInstanceBytes,
    unmatched: config.stowUnmatched,
    demographicsMismatch: config.stowDemographicsMismatch,
    concurrency: config.stowOrthancConcurrency,
    log: req.log,
    audit: (tx, linked) => auditStoreWithin(req, tx, linked),
    ...extra,
  };
}

// `Expect: 100-continue` handling lives with the route rules that decide it (src/http/expect-continue.ts).
export { continueIfExpected, installExpectHandling } from '../../http/expect-continue.ts';

/**
 * Makes a scope whose handlers read the request body as a stream safe for keep-alive clients when they answer before
 * the body ended (a refusal of a broken or over-limit upload). Node drains an unread body only when the handler never
 * started reading it; a body read part-way stays paused, and the next request on that connection would wait behind
 * it forever. Such a response therefore closes the connection (RFC 9112 §9.6) and drops the rest of the body.
 */
export function closeAfterUnreadBody(app: FastifyInstance): void {
  app.addHook('onSend', async (req, reply) => {
    if (req.raw.complete) return;
    reply.header('connection', 'close');
    reply.raw.once('finish', () => req.raw.resume());
  });
}

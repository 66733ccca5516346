/**
 * Study download: `GET /api/v1/studies/{StudyInstanceUID}/archive` answers the study as one zip of its DICOM Part 10
 * files (Orthanc's `/studies/{id}/archive`), or with `?format=dicomdir` as DICOM media: a zip with a DICOMDIR index
 * (PS3.10 §8, Orthanc's `/studies/{id}/media`) that viewers on a CD or USB stick read.
 *
 * - Authorized exactly like WADO-RS (the study index's grant for the caller's ImagingStudy rights, SMART v2
 *   restrictions included): a study the caller may not read answers the same 404 as an unknown one.
 * - Only the Orthanc studies the EHR links under the UID for the caller are archived (another PatientID's Orthanc
 *   study may share the UID, linked-studies.ts); an all-patients caller gets whatever Orthanc holds under it.
 * - Streamed from Orthanc to the client (Orthanc writes the zip as it reads the files), never held in memory; the
 *   Orthanc request is aborted when the client goes away.
 * - Audited as a DICOM Data Export (DCM 110106, PS3.15 A.5.3.7) with the study and its patient (audit/balp-dicom.ts).
 */
import { EhrError, type ErrorCode } from '../errors/base.ts';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isUid } from '../dicomweb/qido-query.ts';
import { imagingView } from '../dicomweb/access/authorize-study.ts';
import { clientGone } from '../dicomweb/relay.ts';
import { DicomWebError } from '../dicomweb/errors.ts';
import { readText } from '../orthanc/proxy.ts';

/** A refused archive request, answered as `{error, requestId}` with its status. */
export class StudyArchiveError extends EhrError {
  override readonly code: ErrorCode = 'EHR_STUDY_ARCHIVE';
  override name = 'StudyArchiveError';
  constructor(status: number, message: string) {
    super(message);
    this.httpStatus = status;
  }
}

export type ArchiveFormat = 'zip' | 'dicomdir';

/** Reads the query: only `format` (`zip`, the default, or `dicomdir`), once. Anything else is a 400. */
export function archiveFormat(query: Record<string, unknown>): ArchiveFormat {
  for (const [k, v] of Object.entries(query)) {
    if (k !== 'format') throw new StudyArchiveError(400, `unknown parameter ${k.slice(0, 64)}`);
    if (v !== 'zip' && v !== 'dicomdir') throw new StudyArchiveError(400, 'format must be zip or dicomdir');
  }
  return query['format'] === 'dicomdir' ? 'dicomdir' : 'zip';
}

/**
 * Orthanc's request for the archive of these studies: one study, its own GET route; several (the same UID under
 * several of the patient's identifiers), one archive of them all by a synchronous POST to the tools route (Orthanc
 * 1.10 takes its resources only as a body there).
 */
export function orthancArchiveRequest(
  format: ArchiveFormat,
  orthancIds: readonly string[],
): { path: string; json?: { Resources: readonly string[]; Synchronous: true } } {
  const kind = format === 'zip' ? 'archive' : 'media';
  if (orthancIds.length === 1) return { path: `/studies/${orthancIds[0]}/${kind}` };
  return { path: `/tools/create-${kind}`, json: { Resources: orthancIds, Synchronous: true } };
}

/** The download's file name: the UID only (no patient name in a header that proxies may log). */
export function archiveFileName(studyUid: string, format: ArchiveFormat): string {
  return `study-${studyUid}${format === 'dicomdir' ? '-dicomdir' : ''}.zip`;
}

const ORTHANC_ID = /^[0-9a-f]{8}(-[0-9a-f]{8}){4}$/;

/** The Orthanc studies the caller may download under `studyUid`, those Orthanc still holds; empty: 404. */
async function orthancStudies(app: FastifyInstance, req: FastifyRequest, studyUid: string): Promise<string[]> {
  const { filter, restriction } = imagingView(req);
  const grant = await app.studyIndex.grant(filter, studyUid, restriction);
  let candidates: string[];
  if (grant.kind === 'deny') candidates = [];
  else if (grant.kind === 'linked') candidates = [...grant.study.orthancIds];
  else {
    // An all-patients caller without restrictions: whatever Orthanc holds under the UID.
    const res = await app.orthanc.request('/tools/lookup', { method: 'POST', body: studyUid });
    const found = res.ok ? ((await res.json()) as { Type?: string; ID?: string }[]) : [];
    if (!res.ok) await res.body?.cancel();
    candidates = found.filter((f) => f.Type === 'Study' && f.ID).map((f) => f.ID!);
  }
  const present: string[] = [];
  for (const id of candidates.filter((c) => ORTHANC_ID.test(c)).sort()) {
    const res = await app.orthanc.request(`/studies/${id}`, { method: 'GET' });
    await res.body?.cancel();
    if (res.ok) present.push(id);
  }
  req.log.info(
    {
      decision: present.length ? 'permit' : 'deny',
      study: studyUid,
      grant: grant.kind,
      who: req.access?.agent.who,
    },
    'study archive access',
  );
  return present;
}

async function download(app: FastifyInstance, req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const study = (req.params as { study: string }).study;
  if (!req.access) throw new StudyArchiveError(401, 'authentication required');
  if (!isUid(study)) throw new StudyArchiveError(400, 'StudyInstanceUID is not a valid UID');
  const format = archiveFormat(req.query as Record<string, unknown>);
  // Described before the decision, so that a refusal is recorded with the study asked for.
  req.audit?.describe({ kind: 'dicom-retrieve', input: { studies: [{ studyUid: study }], export: true } });
  let ids: string[];
  try {
    ids = await orthancStudies(app, req, study);
  } catch (err) {
    if (err instanceof DicomWebError) throw new StudyArchiveError(err.statusCode, err.message);
    throw err;
  }
  if (ids.length === 0) throw new StudyArchiveError(404, 'Not found');
  const { path, json } = orthancArchiveRequest(format, ids);
  const upstream = await app.dicomWebProxy.get(path, { signal: clientGone(reply), ...(json ? { json } : {}) });
  if (upstream.status !== 200) {
    const detail = await readText(upstream.body, 64 * 1024).catch(() => '');
    req.log.warn({ study, status: upstream.status, detail: detail.slice(0, 500) }, 'study archive: Orthanc refused');
    throw new StudyArchiveError(502, `the archive could not be made (Orthanc answered ${upstream.status})`);
  }
  return reply
    .code(200)
    .header('content-type', 'application/zip')
    .header('content-disposition', `attachment; filename="${archiveFileName(study, format)}"`)
    .header('cache-control', 'no-store')
    .send(upstream.body);
}

export async function studyArchiveRoutes(app: FastifyInstance): Promise<void> {
  app.get('/api/v1/studies/:study/archive', async (req, reply) => {
    try {
      return await download(app, req, reply);
    } catch (err) {
      if (!(err instanceof StudyArchiveError)) throw err;
      return reply
        .code(err.statusCode)
        .header('cache-control', 'no-store')
        .send({ error: err.message, requestId: req.id });
    }
  });
}

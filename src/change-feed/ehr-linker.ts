import { randomUUID } from 'node:crypto';
import type { ImagingStudy, ServiceRequest } from '@medplum/fhirtypes';
import { type CommonQueryMethods, sql } from 'slonik';
import type { Access } from '../auth/access.ts';
import type { Config } from '../config/spec.ts';
import { loadDefinitions, loadProfiles } from '../fhir/definitions.ts';
import { FhirRepository, type RepositoryContext } from '../fhir/repository.ts';
import type { DicomInstance } from '../imaging/dicom-instance.ts';
import { orthancValueProblems } from '../imaging/dicom-values.ts';
import { findStudyLink, lookupForMatch, recordStudies } from '../imaging/ehr-link.ts';
import { decideMatch } from '../imaging/matching.ts';
import { orderTransition } from '../imaging/order-status.ts';
import { buildUploadLogRows, insertUploadLogs } from '../imaging/upload-log.ts';
import type { OrthancClient } from '../orthanc/client.ts';
import { instanceFromOrthancTags, missingAttributes, reasonFromMismatch } from './instances.ts';
import { type LinkTarget, LinkTargetError, type StudyLinker, type StudyToLink, type UnlinkedStudy } from './ports.ts';
import { readStudyTags } from './study-read.ts';

/** The change feed's identity in FHIR writes, upload-log rows and audit events. */
export const FEED_AGENT = { who: 'system/change-feed', sub: 'system:change-feed', roles: [] as string[] };

const LINK_TYPES = new Set(['Patient', 'ServiceRequest', 'ImagingStudy', 'Endpoint']);

/** System access for linking: read and write orders, studies and the Endpoint of any patient; never delete. */
export const FEED_ACCESS: Access = {
  kind: 'system',
  agent: FEED_AGENT,
  allows: (interaction, type) => LINK_TYPES.has(type) && interaction !== 'delete',
  patientFilter: () => ({ all: true }),
  restrictions: () => [],
};

const refId = (ref: string | undefined, type: string) =>
  ref?.startsWith(`${type}/`) ? ref.slice(type.length + 1) : '';

/** Accepts `Patient/x` or `x` (and likewise for orders). */
function bareId(value: string, type: string): string {
  const id = value.startsWith(`${type}/`) ? value.slice(type.length + 1) : value;
  if (!/^[A-Za-z0-9.-]{1,64}$/.test(id)) throw new LinkTargetError(`"${value}" is not a ${type} id`);
  return id;
}

/**
 * The {@link StudyLinker} built on the STOW code: `lookupForMatch` + `decideMatch` (MRN → patient, accession → order,
 * consistency), `recordStudies` (ImagingStudy, order bridge keys and status, Endpoint) through the FHIR repository on
 * the feed's transaction, and `insertUploadLogs` with source `dimse`.
 */
export function ehrLinker(config: Config, orthanc: OrthancClient): StudyLinker {
  loadDefinitions();
  const ctx: RepositoryContext = {
    config,
    profiles: loadProfiles({ mrnSystem: config.fhirMrnSystem, accessionSystem: config.fhirAccessionSystem }),
  };
  const repo = (tx: CommonQueryMethods) => new FhirRepository(tx, FEED_ACCESS, ctx);

  /**
   * The study's instances that carry the attributes matching needs, why the first one that does not, doesn't, and the
   * value problems (dicom-values.ts) of the first instance that has any.
   */
  async function instancesOf(
    study: StudyToLink,
  ): Promise<{ instances: DicomInstance[]; problem: string | undefined; problems: string[] }> {
    const tags = await readStudyTags(orthanc, study.orthancStudyId, study.numberOfInstances);
    const instances: DicomInstance[] = [];
    let problem: string | undefined;
    for (const t of tags) {
      const inst = instanceFromOrthancTags(t);
      if (inst) instances.push(inst);
      else problem ??= missingAttributes(t);
    }
    const problems = tags.map(orthancValueProblems).find((p) => p.length > 0) ?? [];
    return { instances, problem, problems };
  }

  return {
    async link(tx, study, opts = {}) {
      const started = new Date();
      const { instances, problem, problems } = await instancesOf(study);
      // The same checks as STOW-RS makes before storing; here the study is already in Orthanc, so it is queued.
      if (problems.length > 0) return { linked: false, reason: 'missing-identifiers', detail: problems.join('; ') };
      const first = instances[0];
      if (!first) {
        const detail = `none of ${study.numberOfInstances} instance(s) has the required attributes: ${problem}`;
        return { linked: false, reason: 'missing-identifiers', detail };
      }
      const fhir = repo(tx);
      const found = await lookupForMatch(fhir, first, (uid) => findStudyLink(tx, uid));
      // Every instance must agree with the EHR, not only the first (demographics may differ between instances).
      const how = { demographics: !opts.reviewed };
      const match =
        instances.map((i) => decideMatch(i, found, how)).find((m) => !m.matched) ?? decideMatch(first, found, how);
      if (!match.matched) return { linked: false, reason: reasonFromMismatch(match.code), detail: match.detail };
      const existing = (await fhir.findImagingStudyByStudyUid(study.studyInstanceUid))?.resource as
        | ImagingStudy
        | undefined;
      const known = new Set(existing?.series?.flatMap((s) => s.instance?.map((i) => i.uid) ?? []) ?? []);
      const [recorded] = await recordStudies(
        fhir,
        [
          {
            studyInstanceUid: study.studyInstanceUid,
            orthancStudyId: study.orthancStudyId,
            patientId: match.patient.id,
            orderId: match.order.id,
            accessionNumber: match.order.accession,
            instances,
          },
        ],
        { endpointId: config.dicomwebEndpointId, publicBaseUrl: config.publicBaseUrl, newId: randomUUID, now: started },
      );
      const rows = buildUploadLogRows(
        instances.map((i) => ({
          studyInstanceUid: i.studyInstanceUid,
          sopInstanceUid: i.sopInstanceUid,
          patientId: match.patient.id,
          orderId: match.order.id,
          orthancStudyId: study.orthancStudyId,
          bytes: 0,
          stored: true,
          isNew: !known.has(i.sopInstanceUid),
        })),
        {
          requestId: `change-feed:${study.orthancStudyId}`,
          source: 'dimse',
          uploadedBy: FEED_AGENT.who,
          startedAt: started,
          finishedAt: new Date(),
        },
      );
      await insertUploadLogs(tx, rows);
      return {
        linked: true,
        imagingStudyId: recorded!.imagingStudyId,
        patientId: match.patient.id,
        orderId: match.order.id,
      };
    },

    async indexedInstances(tx, _orthancStudyId, studyInstanceUid) {
      const found = (await repo(tx).findImagingStudyByStudyUid(studyInstanceUid))?.resource as ImagingStudy | undefined;
      if (!found || found.status === 'entered-in-error') return undefined;
      return found.numberOfInstances ?? 0;
    },

    async resolveTarget(tx, patient, order, studyInstanceUid): Promise<LinkTarget> {
      const fhir = repo(tx);
      const patientId = bareId(patient, 'Patient');
      const orderId = bareId(order, 'ServiceRequest');
      const p = await fhir.read('Patient', patientId).catch(() => undefined);
      if (!p) throw new LinkTargetError(`Patient/${patientId} not found`);
      const o = await fhir.read('ServiceRequest', orderId).catch(() => undefined);
      if (!o) throw new LinkTargetError(`ServiceRequest/${orderId} not found`);
      const sr = o.resource as ServiceRequest;
      if (refId(sr.subject?.reference, 'Patient') !== patientId) {
        throw new LinkTargetError(`ServiceRequest/${orderId} is not an order of Patient/${patientId}`);
      }
      const mrn = (p.resource as { identifier?: { system?: string; value?: string }[] }).identifier?.find(
        (i) => i.system === config.fhirMrnSystem,
      )?.value;
      const accession = sr.identifier?.find((i) => i.system === config.fhirAccessionSystem)?.value;
      if (!mrn || !accession) throw new LinkTargetError('the patient has no MRN or the order no accession number');
      // The checks the final link would make, made before Orthanc is touched (so a refused target changes nothing).
      const t = orderTransition(sr.status);
      if (!t.accept) throw new LinkTargetError(`ServiceRequest/${orderId} does not accept images: ${t.reason}`);
      const linkedUid = (await fhir.orderBridge(orderId))?.study_instance_uid;
      if (linkedUid && linkedUid !== studyInstanceUid) {
        throw new LinkTargetError(`ServiceRequest/${orderId} is already linked to study ${linkedUid}`);
      }
      return { patientId, orderId, mrn, accessionNumber: accession };
    },

    async linkedOrthancStudyIds(tx) {
      const rows = (await tx.any(sql.unsafe`
        SELECT orthanc_study_id FROM imaging_studies
        WHERE NOT deleted AND orthanc_study_id IS NOT NULL AND content->>'status' <> 'entered-in-error'`)) as readonly {
        orthanc_study_id: string;
      }[];
      return rows.map((r) => r.orthanc_study_id);
    },

    async markDeleted(tx, orthancStudyId): Promise<UnlinkedStudy[]> {
      const fhir = repo(tx);
      const rows = (await tx.any(sql.unsafe`
        SELECT id FROM imaging_studies WHERE orthanc_study_id = ${orthancStudyId} AND NOT deleted`)) as readonly {
        id: string;
      }[];
      const out: UnlinkedStudy[] = [];
      for (const { id } of rows) {
        const current = (await fhir.read('ImagingStudy', id)).resource as ImagingStudy;
        if (current.status === 'entered-in-error') continue;
        await fhir.update('ImagingStudy', id, { ...current, status: 'entered-in-error' });
        const uid = current.identifier?.find((i) => i.system === 'urn:dicom:uid')?.value?.replace(/^urn:oid:/, '');
        // The order's bridge keys are not part of its FHIR content: clearing them unlinks it without a new version.
        const orders = (await tx.any(sql.unsafe`
          UPDATE orders SET study_instance_uid = NULL, orthanc_study_id = NULL, number_of_images = NULL,
            uploaded_at = NULL
          WHERE orthanc_study_id = ${orthancStudyId} RETURNING id`)) as readonly { id: string }[];
        out.push({
          imagingStudyId: id,
          orderId: orders[0]?.id,
          patientId: refId(current.subject?.reference, 'Patient') || undefined,
          studyInstanceUid: uid ?? '',
        });
      }
      return out;
    },
  };
}

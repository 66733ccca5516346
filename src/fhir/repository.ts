import type { Resource } from '@medplum/fhirtypes';
import { type CommonQueryMethods, sql } from 'slonik';
import { ForbiddenError, NotFoundError } from './errors.ts';
import { type FhirType, RESOURCES } from './registry.ts';
import { FhirRepositoryCore, type StoredResource, type StudyLink, type WriteResult } from './repository-core.ts';
import { type BridgeColumns, writeHistory, writeIndex } from './repository-write.ts';

export type {
  InteractionEvent,
  InteractionKind,
  JsonPatch,
  RepositoryContext,
  StoredResource,
  StudyLink,
  WriteResult,
} from './repository-core.ts';

function meta(resource: Resource): StoredResource {
  return { resource, versionId: Number(resource.meta?.versionId), lastUpdated: resource.meta?.lastUpdated ?? '' };
}

/**
 * The one way to FHIR data: created per request with the caller's {@link Access}, over a slonik pool or a
 * transaction the caller owns (STOW-RS links orders and studies inside its own EHR transaction). Every query applies
 * `access.patientFilter` in SQL (before paging, on includes and history) and `access.restrictions`; a read outside
 * the caller's patients is 404 like a missing resource, a write outside is 403. Every interaction ends in
 * {@link RepositoryContext.onInteraction} (where the audit issue raises AuditEvents).
 */
export class FhirRepository extends FhirRepositoryCore {
  /** The same caller and context over another connection (e.g. a transaction). */
  withConnection(conn: CommonQueryMethods): FhirRepository {
    return new FhirRepository(conn, this.access, this.ctx);
  }

  /**
   * create with an id chosen beforehand (a transaction Bundle assigns the ids of its creates first, to resolve the
   * `urn:uuid:` references between its entries).
   */
  createWithId(type: FhirType, id: string, body: Resource): Promise<WriteResult> {
    return this.track('create', type, undefined, () => this.save(type, id, 'POST', () => structuredClone(body)));
  }

  /** Logical delete (https://hl7.org/fhir/R4/http.html#delete): a new version marked deleted; reads then give 410. */
  delete(type: FhirType, id: string): Promise<StoredResource & { deleted: boolean }> {
    return this.track('delete', type, id, async () => {
      this.policy('delete', type);
      return this.conn.transaction(async (tx) => {
        const current = (await tx.maybeOne(sql.unsafe`
          SELECT r.version_id, r.deleted, r.patient_id, r.content FROM ${sql.identifier([RESOURCES[type].table])} r
          WHERE r.id = ${id} FOR UPDATE`)) as {
          version_id: number;
          deleted: boolean;
          patient_id: string | null;
          content: Resource;
        } | null;
        if (!current) throw new NotFoundError(`${type}/${id} not found`);
        if (!this.inScope('delete', type, current.patient_id))
          throw new ForbiddenError(`${type}/${id} is outside your patients`);
        if (current.deleted) return { ...meta(current.content), deleted: true };
        const versionId = current.version_id + 1;
        const lastUpdated = new Date().toISOString();
        const content = {
          ...current.content,
          meta: { ...current.content.meta, versionId: String(versionId), lastUpdated },
        };
        await tx.query(sql.unsafe`
          UPDATE ${sql.identifier([RESOURCES[type].table])}
          SET version_id = ${versionId}, last_updated = ${lastUpdated}::timestamptz, deleted = true, content = ${sql.jsonb(content as never)}
          WHERE id = ${id}`);
        await writeHistory(tx, type, content, {
          versionId,
          lastUpdated,
          patientId: current.patient_id,
          deleted: true,
          method: 'DELETE',
        });
        await writeIndex(tx, type, id, null);
        const patientId = current.patient_id;
        await this.onWrite?.(tx, { interaction: 'delete', type, id, versionId, patientId, status: 200 });
        return { resource: content, versionId, lastUpdated, deleted: true };
      });
    });
  }

  private async findBy(type: FhirType, column: string, value: string): Promise<StoredResource | undefined> {
    return this.track('search', type, undefined, async () => {
      this.policy('search', type);
      const row = (await this.conn.maybeOne(sql.unsafe`
        SELECT r.content FROM ${sql.identifier([RESOURCES[type].table])} r
        WHERE ${sql.identifier(['r', column])} = ${value} AND NOT r.deleted AND ${this.scope('search', type)}`)) as {
        content: Resource;
      } | null;
      return row ? meta(row.content) : undefined;
    });
  }

  /** The Patient whose MRN (the DICOM PatientID) is `mrn`, if the caller may see it. */
  findPatientByMrn(mrn: string): Promise<StoredResource | undefined> {
    return this.findBy('Patient', 'mrn', mrn);
  }

  /** The order (ServiceRequest) whose accession number (the DICOM AccessionNumber) is `accession`. */
  findOrderByAccession(accession: string): Promise<StoredResource | undefined> {
    return this.findBy('ServiceRequest', 'accession_number', accession);
  }

  /** The ImagingStudy of a Study Instance UID (plain UID, without `urn:oid:`). */
  findImagingStudyByStudyUid(studyInstanceUid: string): Promise<StoredResource | undefined> {
    return this.findBy('ImagingStudy', 'study_instance_uid', studyInstanceUid);
  }

  /** The bridge-key columns of an order (study UID, Orthanc id, image count, upload time), if visible. */
  async orderBridge(orderId: string): Promise<BridgeColumns | undefined> {
    this.policy('read', 'ServiceRequest');
    const row = (await this.conn.maybeOne(sql.unsafe`
      SELECT r.accession_number, r.study_instance_uid, r.orthanc_study_id, r.number_of_images,
        to_char(r.uploaded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS uploaded_at
      FROM orders r WHERE r.id = ${orderId} AND NOT r.deleted AND ${this.scope('read', 'ServiceRequest')}`)) as BridgeColumns | null;
    return row ?? undefined;
  }

  /**
   * Links an order to its DICOM study (founding design, "Update Order"): sets the bridge columns and optionally the
   * status, as a new version. Meant to run inside the STOW-RS transaction (see {@link withConnection}).
   */
  linkOrderToStudy(orderId: string, link: StudyLink): Promise<WriteResult> {
    return this.track('update', 'ServiceRequest', orderId, () =>
      this.save(
        'ServiceRequest',
        orderId,
        'PUT',
        (current) => {
          if (!current) throw new NotFoundError(`ServiceRequest/${orderId} not found`);
          return link.status ? ({ ...current, status: link.status } as Resource) : current;
        },
        undefined,
        {
          study_instance_uid: link.studyInstanceUid,
          orthanc_study_id: link.orthancStudyId,
          number_of_images: link.numberOfImages,
          uploaded_at: link.uploadedAt.toISOString(),
        },
      ),
    );
  }
}

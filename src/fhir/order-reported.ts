/**
 * The order side of a radiology report: when a released DiagnosticReport (final, amended, corrected, appended) is
 * written `basedOn` ServiceRequests, each order gets the founding design's status "reported" (src/imaging/
 * order-status.ts `orderOnReport`) as a new version, in the report's own transaction. The caller's right to write
 * the report is what counts (a radiologist writes reports, not orders); the order is in the same patient's
 * compartment, which the report's reference check has already confirmed the caller may see.
 */
import type { DiagnosticReport, ServiceRequest } from '@medplum/fhirtypes';
import { type CommonQueryMethods, sql } from 'slonik';
import { orderOnReport, REPORTED_STATUSES } from '../imaging/order-status.ts';
import { extractIndex, parseLocalReference } from './index-values.ts';
import { type BridgeColumns, writeHistory, writeIndex, writeRow } from './repository-write.ts';

/** Marks the orders of a released report as reported; returns the ids of the orders that changed. */
export async function reflectReport(tx: CommonQueryMethods, report: DiagnosticReport, fhirBase: string) {
  if (!REPORTED_STATUSES.has(report.status)) return [];
  const ids = new Set<string>();
  for (const ref of report.basedOn ?? []) {
    const local = ref.reference ? parseLocalReference(ref.reference, fhirBase) : undefined;
    if (local?.[0] === 'ServiceRequest') ids.add(local[1]);
  }
  const changed: string[] = [];
  for (const id of ids) {
    const row = (await tx.maybeOne(sql.unsafe`
      SELECT to_jsonb(o) - 'content' AS row, o.content FROM orders o WHERE o.id = ${id} AND NOT o.deleted FOR UPDATE`)) as {
      row: BridgeColumns & { version_id: number; patient_id: string | null };
      content: ServiceRequest;
    } | null;
    if (!row) continue;
    const next = orderOnReport(row.content);
    if (!next) continue;
    const versionId = row.row.version_id + 1;
    const lastUpdated = new Date().toISOString();
    const resource = { ...next, id, meta: { ...next.meta, versionId: String(versionId), lastUpdated } };
    const index = extractIndex('ServiceRequest', resource, fhirBase);
    const patientId = row.row.patient_id;
    await writeRow(
      tx,
      'ServiceRequest',
      resource,
      { versionId, lastUpdated, patientId, sortDate: index.sortDate, sortString: index.sortString },
      row.row,
    );
    await writeHistory(tx, 'ServiceRequest', resource, {
      versionId,
      lastUpdated,
      patientId,
      deleted: false,
      method: 'PUT',
    });
    await writeIndex(tx, 'ServiceRequest', id, index);
    changed.push(id);
  }
  return changed;
}

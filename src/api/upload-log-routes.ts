/**
 * An order's upload log for the web app's order detail: `GET /api/v1/dicom/orders/{order_id}/uploads` answers
 * `{ order: { studyInstanceUid, numberOfImages, uploadedAt }, items: [ { source, uploadedBy, numberOfFiles,
 * numberStored, numberNew, numberFailed, totalSizeBytes, status, failures, startedAt, finishedAt } ] }` (newest first,
 * at most 100) from `dicom_upload_logs` and the order's bridge columns.
 *
 * The caller needs read access to the order (ServiceRequest) of its patient, as for the order itself; an order the
 * caller may not see is answered like a missing one (404, no existence leak). Audited like every `/api` request.
 */
import type { FastifyInstance } from 'fastify';
import { sql } from 'slonik';
import { type Access, allowsPatient } from '../auth/access.ts';
import { AdminRequestError } from './admin-routes.ts';

interface OrderRow {
  patient_id: string | null;
  study_instance_uid: string | null;
  number_of_images: number | null;
  uploaded_at: string | null;
}

export async function uploadLogRoutes(app: FastifyInstance): Promise<void> {
  app.get<{ Params: { orderId: string } }>(
    '/api/v1/dicom/orders/:orderId/uploads',
    {
      schema: {
        params: { type: 'object', properties: { orderId: { type: 'string', pattern: '^[A-Za-z0-9.-]{1,64}$' } } },
      },
    },
    async (req) => {
      const access = req.access as Access | null | undefined;
      if (!access) throw new AdminRequestError(401, 'authentication required');
      if (!access.allows('read', 'ServiceRequest')) {
        throw new AdminRequestError(403, 'reading orders is not permitted for this token');
      }
      const order = (await app.db.maybeOne(sql.unsafe`
        SELECT patient_id, study_instance_uid, number_of_images,
               to_char(uploaded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS uploaded_at
        FROM orders WHERE id = ${req.params.orderId} AND NOT deleted`)) as OrderRow | null;
      if (!order || !allowsPatient(access, 'read', 'ServiceRequest', order.patient_id ?? undefined)) {
        throw new AdminRequestError(404, `order ${req.params.orderId} not found`);
      }
      const items = await app.db.any(sql.unsafe`
        SELECT source, uploaded_by AS "uploadedBy", number_of_files AS "numberOfFiles",
               number_stored AS "numberStored", number_new AS "numberNew", number_failed AS "numberFailed",
               total_size_bytes::text AS "totalSizeBytes", upload_status AS status, failures,
               to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS "startedAt",
               to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS "finishedAt"
        FROM dicom_upload_logs WHERE order_id = ${req.params.orderId}
        ORDER BY finished_at DESC LIMIT 100`);
      return {
        order: {
          studyInstanceUid: order.study_instance_uid,
          numberOfImages: order.number_of_images,
          uploadedAt: order.uploaded_at,
        },
        items,
      };
    },
  );
}

import { useState } from 'react';
import { Link } from 'wouter';
import { api, type Bundle, fhir, resources } from '../api.ts';
import {
  accessionOf,
  type ImagingStudy,
  modalityOf,
  mrnOf,
  nameOf,
  ORDER_STATUSES,
  type Patient,
  procedureOf,
  type ServiceRequest,
  workflowStatusOf,
} from '../model.ts';
import { may } from '../roles.ts';
import { ErrorText, Status } from '../ui.tsx';
import { OrderForm } from './order-form.tsx';
import { OrderReport, type Report } from './order-report.tsx';
import { useLoad } from '../use-load.ts';

interface UploadLog {
  order: { studyInstanceUid: string | null; numberOfImages: number | null; uploadedAt: string | null };
  items: {
    source: string;
    uploadedBy: string;
    numberOfFiles: number;
    numberStored: number;
    numberNew: number;
    numberFailed: number;
    totalSizeBytes: string;
    status: string;
    finishedAt: string;
  }[];
}

async function loadOrder(id: string) {
  const order = await fhir<ServiceRequest>(`ServiceRequest/${encodeURIComponent(id)}`);
  const patientId = order.subject.reference?.split('/')[1] ?? '';
  const [patient, studies, uploads, reports] = await Promise.all([
    fhir<Patient>(`Patient/${encodeURIComponent(patientId)}`),
    fhir<Bundle<ImagingStudy>>(`ImagingStudy?basedon=ServiceRequest/${encodeURIComponent(id)}`),
    api<UploadLog>(`/api/v1/dicom/orders/${encodeURIComponent(id)}/uploads`),
    // The radiology reports: DiagnosticReports `basedOn` the order (search parameter `based-on`).
    fhir<Bundle<Report>>(`DiagnosticReport?based-on=ServiceRequest/${encodeURIComponent(id)}&_sort=-_lastUpdated`),
  ]);
  return { order, patient, studies: resources(studies), uploads, reports: resources(reports) };
}

/** Order detail: the order, its study (series, counts, upload time), its report, and "View images". */
export function OrderDetail({
  id,
  roles,
  fhirUser,
}: {
  id: string;
  roles: readonly string[];
  fhirUser: string | null;
}) {
  const load = useLoad(() => loadOrder(id), [id]);
  const [viewError, setViewError] = useState<string>();
  const [opening, setOpening] = useState(false);
  const [editing, setEditing] = useState(false);
  const view = async () => {
    setViewError(undefined);
    setOpening(true);
    try {
      const r = await api<{ viewer_url: string }>(`/api/v1/dicom/viewer-url/${encodeURIComponent(id)}`);
      window.open(r.viewer_url, '_blank', 'noopener');
    } catch (e) {
      setViewError(e instanceof Error ? e.message : String(e));
    } finally {
      setOpening(false);
    }
  };
  const setStatus = async (o: ServiceRequest, status: string) => {
    try {
      await fhir(`ServiceRequest/${o.id}`, { method: 'PUT', body: { ...o, status } });
      load.reload();
    } catch (e) {
      setViewError(e instanceof Error ? e.message : String(e));
    }
  };
  return (
    <Status load={load}>
      {({ order, patient, studies, uploads, reports }) => (
        <>
          <h1>
            Order <span className="mono">{accessionOf(order)}</span>
          </h1>
          <div className="grid2">
            <section className="card" aria-labelledby="order-facts">
              <h2 id="order-facts">Order</h2>
              <dl className="facts">
                <dt>Patient</dt>
                <dd>
                  <Link href={`/patients/${patient.id}`}>{nameOf(patient)}</Link> (MRN{' '}
                  <span className="mono">{mrnOf(patient)}</span>)
                </dd>
                <dt>Accession</dt>
                <dd className="mono">{accessionOf(order)}</dd>
                <dt>Procedure</dt>
                <dd>{procedureOf(order)}</dd>
                <dt>Modality</dt>
                <dd>{modalityOf(order) || '—'}</dd>
                <dt>Performer</dt>
                <dd>{order.performer?.map((p) => p.display ?? p.reference).join(', ') || '—'}</dd>
                <dt>Status</dt>
                <dd>
                  {may(roles, 'write-order') ? (
                    <select
                      aria-label="Order status"
                      value={order.status}
                      onChange={(e) => void setStatus(order, e.target.value)}
                    >
                      {[...new Set([order.status, ...ORDER_STATUSES])].map((s) => (
                        <option key={s}>{s}</option>
                      ))}
                    </select>
                  ) : (
                    order.status
                  )}
                  {workflowStatusOf(order) && <span className="workflow-status"> · {workflowStatusOf(order)}</span>}
                </dd>
              </dl>
              <p>
                <button
                  type="button"
                  className="primary"
                  onClick={() => void view()}
                  disabled={opening || studies.length === 0}
                >
                  View images
                </button>{' '}
                {may(roles, 'upload') && <Link href={`/upload?order=${order.id}`}>Upload images</Link>}{' '}
                {may(roles, 'write-order') && (
                  <button type="button" onClick={() => setEditing(!editing)}>
                    {editing ? 'Cancel edit' : 'Edit order'}
                  </button>
                )}
              </p>
              {editing && (
                <OrderForm
                  patientId={order.subject.reference?.split('/')[1] ?? ''}
                  order={order}
                  done={() => {
                    setEditing(false);
                    load.reload();
                  }}
                />
              )}
              <ErrorText error={viewError} />
            </section>
            <OrderReport
              order={order}
              studies={studies}
              reports={reports}
              roles={roles}
              fhirUser={fhirUser}
              changed={load.reload}
            />
          </div>
          <section className="card" aria-labelledby="study">
            <h2 id="study">Study</h2>
            {studies.length === 0 ? (
              <p>No images uploaded yet.</p>
            ) : (
              studies.map((s) => (
                <div key={s.id}>
                  <dl className="facts">
                    <dt>Study UID</dt>
                    <dd className="mono">{s.identifier?.[0]?.value?.replace(/^urn:oid:/, '')}</dd>
                    <dt>Started</dt>
                    <dd>{s.started ?? '—'}</dd>
                    <dt>Series / instances</dt>
                    <dd>
                      {s.numberOfSeries ?? 0} / {s.numberOfInstances ?? 0}
                    </dd>
                    <dt>Uploaded at</dt>
                    <dd>{uploads.order.uploadedAt ?? '—'}</dd>
                  </dl>
                  <table aria-label="Series">
                    <thead>
                      <tr>
                        <th scope="col">#</th>
                        <th scope="col">Modality</th>
                        <th scope="col">Description</th>
                        <th scope="col">Instances</th>
                      </tr>
                    </thead>
                    <tbody>
                      {(s.series ?? []).map((se) => (
                        <tr key={se.uid}>
                          <td>{se.number ?? ''}</td>
                          <td>{se.modality?.code}</td>
                          <td>{se.description ?? ''}</td>
                          <td>{se.numberOfInstances ?? ''}</td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </div>
              ))
            )}
          </section>
          <section className="card" aria-labelledby="upload-log">
            <h2 id="upload-log">Upload log</h2>
            {uploads.items.length === 0 ? (
              <p>No uploads.</p>
            ) : (
              <table aria-label="Upload log">
                <thead>
                  <tr>
                    <th scope="col">Finished</th>
                    <th scope="col">Source</th>
                    <th scope="col">By</th>
                    <th scope="col">Files</th>
                    <th scope="col">Stored (new)</th>
                    <th scope="col">Failed</th>
                    <th scope="col">Size</th>
                    <th scope="col">Status</th>
                  </tr>
                </thead>
                <tbody>
                  {uploads.items.map((u) => (
                    <tr key={`${u.finishedAt}-${u.source}-${u.numberOfFiles}`}>
                      <td>{u.finishedAt.slice(0, 19).replace('T', ' ')}</td>
                      <td>{u.source}</td>
                      <td className="mono">{u.uploadedBy}</td>
                      <td>{u.numberOfFiles}</td>
                      <td>
                        {u.numberStored} ({u.numberNew})
                      </td>
                      <td>{u.numberFailed}</td>
                      <td>{(Number(u.totalSizeBytes) / 1048576).toFixed(1)} MB</td>
                      <td className={u.status === 'success' ? 'ok' : 'bad'}>{u.status}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </section>
        </>
      )}
    </Status>
  );
}

import { useState } from 'react';
import { api, type Bundle, fhir, resources } from '../api.ts';
import {
  accessionOf,
  type Encounter,
  type ImagingStudy,
  mrnOf,
  nameOf,
  type Patient,
  procedureOf,
  type ServiceRequest,
  workflowStatusOf,
} from '../model.ts';
import type { Report } from '../screens/order-report.tsx';
import { ErrorText, Status } from '../ui.tsx';
import { useLoad } from '../use-load.ts';
import { type ArchiveFormat, downloadStudy } from './download.ts';

/** Everything of the patient's own record the portal shows; the token reaches nothing else anyway. */
async function loadRecord(patientId: string) {
  const p = encodeURIComponent(`Patient/${patientId}`);
  const [patient, visits, orders, studies, reports] = await Promise.all([
    fhir<Patient>(`Patient/${encodeURIComponent(patientId)}`),
    fhir<Bundle<Encounter>>(`Encounter?patient=${p}&_count=100`),
    fhir<Bundle<ServiceRequest>>(`ServiceRequest?patient=${p}&_count=100`),
    fhir<Bundle<ImagingStudy>>(`ImagingStudy?patient=${p}&_count=100`),
    fhir<Bundle<Report & { basedOn?: { reference?: string }[] }>>(`DiagnosticReport?patient=${p}&_count=100`),
  ]);
  const newest = <T,>(xs: T[], key: (x: T) => string | undefined) =>
    xs.sort((a, b) => (key(b) ?? '').localeCompare(key(a) ?? ''));
  return {
    patient,
    visits: newest(resources(visits), (v) => v.period?.start),
    orders: newest(resources(orders), (o) => o.authoredOn),
    studies: newest(resources(studies), (s) => s.started),
    reports: newest(resources(reports), (r) => r.issued),
  };
}

const day = (iso: string | undefined) => (iso ? iso.slice(0, 10) : '—');
const studyUid = (s: ImagingStudy) => s.identifier?.[0]?.value?.replace(/^urn:oid:/, '') ?? '';
const orderOf = (s: ImagingStudy) => s.basedOn?.find((b) => b.reference?.startsWith('ServiceRequest/'))?.reference;

/** The patient's own record: visits, orders, images (view, download) and reports. */
export function MyRecord({ patientId }: { patientId: string }) {
  const load = useLoad(() => loadRecord(patientId), [patientId]);
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState<string>();
  const run = async (key: string, f: () => Promise<void>) => {
    setError(undefined);
    setBusy(key);
    try {
      await f();
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(undefined);
    }
  };
  const view = (order: string) =>
    run(`view ${order}`, async () => {
      const id = order.split('/')[1] ?? '';
      const r = await api<{ viewer_url: string }>(`/api/v1/dicom/viewer-url/${encodeURIComponent(id)}`);
      window.open(r.viewer_url, '_blank', 'noopener');
    });
  const download = (uid: string, format: ArchiveFormat) => run(`${format} ${uid}`, () => downloadStudy(uid, format));
  return (
    <Status load={load}>
      {({ patient, visits, orders, studies, reports }) => (
        <>
          <h1>
            {nameOf(patient)} <span className="mono">MRN {mrnOf(patient)}</span>
          </h1>
          <p>
            Born {patient.birthDate ?? '—'}. This is your own record: what the hospital holds about your visits, imaging
            orders, images and reports.
          </p>
          <ErrorText error={error} />
          <section className="card" aria-labelledby="my-images">
            <h2 id="my-images">My images</h2>
            {studies.length === 0 ? (
              <p>No images yet.</p>
            ) : (
              <table aria-label="My images">
                <thead>
                  <tr>
                    <th scope="col">Date</th>
                    <th scope="col">Study</th>
                    <th scope="col">Modality</th>
                    <th scope="col">Series / images</th>
                    <th scope="col">Actions</th>
                  </tr>
                </thead>
                <tbody>
                  {studies.map((s) => {
                    const uid = studyUid(s);
                    const order = orderOf(s);
                    const label = s.description ?? procedureOf(orders.find((o) => `ServiceRequest/${o.id}` === order));
                    return (
                      <tr key={s.id}>
                        <td>{day(s.started)}</td>
                        <td>{label || 'Imaging study'}</td>
                        <td>{(s.modality ?? []).map((m) => m.code).join(', ') || '—'}</td>
                        <td>
                          {s.numberOfSeries ?? 0} / {s.numberOfInstances ?? 0}
                        </td>
                        <td className="actions">
                          {order && (
                            <button
                              type="button"
                              className="primary"
                              disabled={busy !== undefined}
                              onClick={() => void view(order)}
                            >
                              View images
                            </button>
                          )}{' '}
                          <button type="button" disabled={busy !== undefined} onClick={() => void download(uid, 'zip')}>
                            Download (zip)
                          </button>{' '}
                          <button
                            type="button"
                            disabled={busy !== undefined}
                            onClick={() => void download(uid, 'dicomdir')}
                          >
                            Download (DICOMDIR)
                          </button>
                        </td>
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            )}
            {busy && (
              <p role="status" className="loading">
                {busy.startsWith('view') ? 'Opening the viewer…' : 'Preparing the download…'}
              </p>
            )}
          </section>
          <section className="card" aria-labelledby="my-reports">
            <h2 id="my-reports">My reports</h2>
            {reports.length === 0 ? (
              <p>No reports yet.</p>
            ) : (
              reports.map((r) => (
                <article key={r.id} className="report" aria-label={`Report of ${day(r.issued)}`}>
                  <h3>
                    {day(r.issued)} · {r.status}
                  </h3>
                  <p>{r.conclusion ?? '(no conclusion)'}</p>
                  <p className="muted">
                    By {r.resultsInterpreter?.map((x) => x.display ?? x.reference).join(', ') || '—'}
                  </p>
                </article>
              ))
            )}
          </section>
          <div className="grid2">
            <section className="card" aria-labelledby="my-orders">
              <h2 id="my-orders">My imaging orders</h2>
              {orders.length === 0 ? (
                <p>No orders.</p>
              ) : (
                <table aria-label="My orders">
                  <thead>
                    <tr>
                      <th scope="col">Ordered</th>
                      <th scope="col">Procedure</th>
                      <th scope="col">Accession</th>
                      <th scope="col">Status</th>
                    </tr>
                  </thead>
                  <tbody>
                    {orders.map((o) => (
                      <tr key={o.id}>
                        <td>{day(o.authoredOn)}</td>
                        <td>{procedureOf(o)}</td>
                        <td className="mono">{accessionOf(o)}</td>
                        <td>
                          {o.status}
                          {workflowStatusOf(o) && ` · ${workflowStatusOf(o)}`}
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              )}
            </section>
            <section className="card" aria-labelledby="my-visits">
              <h2 id="my-visits">My visits</h2>
              {visits.length === 0 ? (
                <p>No visits.</p>
              ) : (
                <table aria-label="My visits">
                  <thead>
                    <tr>
                      <th scope="col">Date</th>
                      <th scope="col">Kind</th>
                      <th scope="col">Reason</th>
                      <th scope="col">Status</th>
                    </tr>
                  </thead>
                  <tbody>
                    {visits.map((v) => (
                      <tr key={v.id}>
                        <td>{day(v.period?.start)}</td>
                        <td>{v.class.display ?? v.class.code}</td>
                        <td>{v.reasonCode?.map((r) => r.text).join(', ') || '—'}</td>
                        <td>{v.status}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              )}
            </section>
          </div>
        </>
      )}
    </Status>
  );
}

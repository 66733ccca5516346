import { type FormEvent, useState } from 'react';
import { Link } from 'wouter';
import { type Bundle, fhir, resources } from '../api.ts';
import {
  accessionOf,
  type Encounter,
  type ImagingStudy,
  modalityOf,
  mrnOf,
  nameOf,
  type Patient,
  procedureOf,
  type ServiceRequest,
  VISIT_CLASSES,
  VISIT_STATUSES,
} from '../model.ts';
import { may } from '../roles.ts';
import { ErrorText, Field, Status } from '../ui.tsx';
import { useLoad } from '../use-load.ts';
import { OrderForm } from './order-form.tsx';
import { VisitEdit } from './visit-edit.tsx';
import { PatientForm } from './patients.tsx';

interface Chart {
  patient: Patient;
  visits: Encounter[];
  orders: ServiceRequest[];
  studies: ImagingStudy[];
}

async function loadChart(id: string): Promise<Chart> {
  const [patient, visits, orders, studies] = await Promise.all([
    fhir<Patient>(`Patient/${encodeURIComponent(id)}`),
    fhir<Bundle<Encounter>>(`Encounter?patient=${encodeURIComponent(id)}&_count=100&_sort=-date`),
    fhir<Bundle<ServiceRequest>>(`ServiceRequest?patient=${encodeURIComponent(id)}&_count=100&_sort=-authored`),
    fhir<Bundle<ImagingStudy>>(`ImagingStudy?patient=${encodeURIComponent(id)}&_count=100&_sort=-started`),
  ]);
  return { patient, visits: resources(visits), orders: resources(orders), studies: resources(studies) };
}

/** The patient chart: demographics, visits, orders (status, accession) and studies; create and edit. */
export function PatientChart({ id, roles }: { id: string; roles: readonly string[] }) {
  const load = useLoad(() => loadChart(id), [id]);
  const [editing, setEditing] = useState(false);
  return (
    <Status load={load}>
      {(c) => (
        <>
          <h1>
            {nameOf(c.patient)} <span className="mono">MRN {mrnOf(c.patient)}</span>
          </h1>
          <section className="card" aria-labelledby="demographics">
            <h2 id="demographics">Demographics</h2>
            {editing ? (
              <PatientForm
                initial={c.patient}
                submitLabel="Save patient"
                onSubmit={async (p) => {
                  await fhir(`Patient/${id}`, { method: 'PUT', body: p });
                  setEditing(false);
                  load.reload();
                }}
              />
            ) : (
              <dl className="facts">
                <dt>Name</dt>
                <dd>{nameOf(c.patient)}</dd>
                <dt>MRN</dt>
                <dd className="mono">{mrnOf(c.patient)}</dd>
                <dt>Birth date</dt>
                <dd>{c.patient.birthDate ?? '—'}</dd>
                <dt>Gender</dt>
                <dd>{c.patient.gender ?? '—'}</dd>
              </dl>
            )}
            {may(roles, 'write-patient') && (
              <button type="button" onClick={() => setEditing(!editing)}>
                {editing ? 'Cancel edit' : 'Edit patient'}
              </button>
            )}
          </section>
          <div className="grid2">
            <section className="card" aria-labelledby="visits">
              <h2 id="visits">Visits</h2>
              <Visits chart={c} reload={load.reload} canWrite={may(roles, 'write-visit')} />
            </section>
            <section className="card" aria-labelledby="studies">
              <h2 id="studies">Studies</h2>
              {c.studies.length === 0 ? (
                <p>No studies.</p>
              ) : (
                <table aria-label="Studies">
                  <thead>
                    <tr>
                      <th scope="col">Started</th>
                      <th scope="col">Modality</th>
                      <th scope="col">Series</th>
                      <th scope="col">Instances</th>
                      <th scope="col">Order</th>
                    </tr>
                  </thead>
                  <tbody>
                    {c.studies.map((s) => {
                      const order = s.basedOn?.[0]?.reference?.split('/')[1];
                      return (
                        <tr key={s.id}>
                          <td>{s.started?.slice(0, 16).replace('T', ' ') ?? '—'}</td>
                          <td>{(s.modality ?? []).map((m) => m.code).join(', ')}</td>
                          <td>{s.numberOfSeries ?? '—'}</td>
                          <td>{s.numberOfInstances ?? '—'}</td>
                          <td>{order ? <Link href={`/orders/${order}`}>order</Link> : '—'}</td>
                        </tr>
                      );
                    })}
                  </tbody>
                </table>
              )}
            </section>
          </div>
          <section className="card" aria-labelledby="orders">
            <h2 id="orders">Orders</h2>
            <Orders chart={c} reload={load.reload} roles={roles} />
          </section>
        </>
      )}
    </Status>
  );
}

function Visits({ chart, reload, canWrite }: { chart: Chart; reload: () => void; canWrite: boolean }) {
  const [status, setStatus] = useState<string>('arrived');
  const [cls, setCls] = useState('AMB');
  const [start, setStart] = useState(() => new Date().toISOString().slice(0, 16));
  const [reason, setReason] = useState('');
  const [error, setError] = useState<string>();
  const [editing, setEditing] = useState<string>();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(undefined);
    try {
      const visit: Encounter = {
        resourceType: 'Encounter',
        status,
        class: VISIT_CLASSES.find((c) => c.code === cls) ?? { code: cls },
        subject: { reference: `Patient/${chart.patient.id}` },
        period: { start: new Date(start).toISOString() },
        ...(reason ? { reasonCode: [{ text: reason }] } : {}),
      };
      await fhir('Encounter', { method: 'POST', body: visit });
      setReason('');
      reload();
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  };
  const setVisitStatus = async (v: Encounter, s: string) => {
    setError(undefined);
    try {
      await fhir(`Encounter/${v.id}`, { method: 'PUT', body: { ...v, status: s } });
      reload();
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  };
  return (
    <>
      {chart.visits.length === 0 ? (
        <p>No visits.</p>
      ) : (
        <table aria-label="Visits">
          <thead>
            <tr>
              <th scope="col">Start</th>
              <th scope="col">End</th>
              <th scope="col">Class</th>
              <th scope="col">Reason</th>
              <th scope="col">Status</th>
              {canWrite && <th scope="col">Action</th>}
            </tr>
          </thead>
          <tbody>
            {chart.visits.map((v) => (
              <tr key={v.id}>
                <td>{v.period?.start?.slice(0, 16).replace('T', ' ') ?? '—'}</td>
                <td>{v.period?.end?.slice(0, 16).replace('T', ' ') ?? '—'}</td>
                <td>{v.class.display ?? v.class.code}</td>
                <td>{v.reasonCode?.[0]?.text ?? ''}</td>
                <td>
                  {canWrite ? (
                    <select
                      aria-label={`Status of the visit of ${v.period?.start?.slice(0, 10) ?? ''}`}
                      value={v.status}
                      onChange={(e) => void setVisitStatus(v, e.target.value)}
                    >
                      {[...new Set([v.status, ...VISIT_STATUSES])].map((s) => (
                        <option key={s}>{s}</option>
                      ))}
                    </select>
                  ) : (
                    v.status
                  )}
                </td>
                {canWrite && (
                  <td>
                    <button
                      type="button"
                      aria-label={`Edit the visit of ${v.period?.start?.slice(0, 10) ?? ''}`}
                      onClick={() => setEditing(v.id)}
                    >
                      Edit
                    </button>
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {canWrite &&
        chart.visits
          .filter((v) => v.id === editing)
          .map((v) => (
            <VisitEdit
              key={v.id}
              visit={v}
              done={(changed) => {
                setEditing(undefined);
                if (changed) reload();
              }}
            />
          ))}
      {canWrite && (
        <form className="inline" onSubmit={submit} aria-label="New visit">
          <Field label="Visit start">
            <input type="datetime-local" required value={start} onChange={(e) => setStart(e.target.value)} />
          </Field>
          <Field label="Visit class">
            <select value={cls} onChange={(e) => setCls(e.target.value)}>
              {VISIT_CLASSES.map((c) => (
                <option key={c.code} value={c.code}>
                  {c.display}
                </option>
              ))}
            </select>
          </Field>
          <Field label="Visit status">
            <select value={status} onChange={(e) => setStatus(e.target.value)}>
              {VISIT_STATUSES.map((s) => (
                <option key={s}>{s}</option>
              ))}
            </select>
          </Field>
          <Field label="Reason">
            <input value={reason} onChange={(e) => setReason(e.target.value)} />
          </Field>
          <button type="submit" className="primary">
            Add visit
          </button>
          <ErrorText error={error} />
        </form>
      )}
    </>
  );
}

function Orders({ chart, reload, roles }: { chart: Chart; reload: () => void; roles: readonly string[] }) {
  const canWrite = may(roles, 'write-order');
  return (
    <>
      {chart.orders.length === 0 ? (
        <p>No orders.</p>
      ) : (
        <table aria-label="Orders">
          <thead>
            <tr>
              <th scope="col">Accession</th>
              <th scope="col">Procedure</th>
              <th scope="col">Modality</th>
              <th scope="col">Status</th>
              <th scope="col">Performer</th>
              <th scope="col">Authored</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {chart.orders.map((o) => (
              <tr key={o.id}>
                <td className="mono">
                  <Link href={`/orders/${o.id}`}>{accessionOf(o) || o.id}</Link>
                </td>
                <td>{procedureOf(o)}</td>
                <td>{modalityOf(o)}</td>
                <td>{o.status}</td>
                <td>{o.performer?.map((p) => p.display ?? p.reference).join(', ')}</td>
                <td>{o.authoredOn?.slice(0, 10)}</td>
                <td>
                  <Link href={`/orders/${o.id}`}>Details</Link>
                  {may(roles, 'upload') && (
                    <>
                      {' · '}
                      <Link href={`/upload?order=${o.id}`}>Upload images</Link>
                    </>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {canWrite && <OrderForm patientId={chart.patient.id ?? ''} visits={chart.visits} done={reload} />}
    </>
  );
}

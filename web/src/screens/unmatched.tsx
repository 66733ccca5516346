import { type FormEvent, useState } from 'react';
import { api, type Bundle, fhir, resources } from '../api.ts';
import { accessionOf, mrnOf, nameOf, type Patient, procedureOf, type ServiceRequest } from '../model.ts';
import { ErrorText, Field, Status } from '../ui.tsx';
import { useLoad } from '../use-load.ts';

interface Item {
  id: string;
  studyInstanceUid: string;
  patientId: string | null;
  accessionNumber: string | null;
  patientName: string | null;
  studyDate: string | null;
  modalities: string[];
  numberOfInstances: number | null;
  reason: string;
  source: string;
  status: string;
  lastError: string | null;
  createdAt: string;
}

const REASONS: Record<string, string> = {
  'unknown-mrn': 'no patient has this Patient ID (MRN)',
  'unknown-accession': 'no order has this accession number',
  'patient-order-mismatch': 'the order belongs to another patient',
  'order-not-actionable': 'the order is draft, revoked or entered in error',
  'order-linked-elsewhere': 'the order is linked to another study',
  'missing-identifiers': 'Patient ID or accession number missing',
};

/** The reconciliation queue: studies that matched no patient or order; link them to one, or reject them. */
export function UnmatchedScreen() {
  const [status, setStatus] = useState('pending');
  const load = useLoad(
    () => api<{ items: Item[] }>(`/api/v1/dicom/unmatched?status=${status}&limit=100`).then((r) => r.items),
    [status],
  );
  const [open, setOpen] = useState<string>();
  return (
    <>
      <h1>Reconciliation queue</h1>
      <Field label="Status">
        <select value={status} onChange={(e) => setStatus(e.target.value)}>
          {['pending', 'relinking', 'linked', 'rejected', 'deleted'].map((s) => (
            <option key={s}>{s}</option>
          ))}
        </select>
      </Field>
      <Status load={load}>
        {(items) =>
          items.length === 0 ? (
            <p>The queue is empty.</p>
          ) : (
            <table aria-label="Unmatched studies">
              <thead>
                <tr>
                  <th scope="col">Received</th>
                  <th scope="col">Patient in files</th>
                  <th scope="col">Accession</th>
                  <th scope="col">Study</th>
                  <th scope="col">Why</th>
                  <th scope="col">Action</th>
                </tr>
              </thead>
              <tbody>
                {items.map((i) => (
                  <tr key={i.id}>
                    <td>{i.createdAt.slice(0, 16).replace('T', ' ')}</td>
                    <td>
                      {i.patientName ?? '—'} <span className="mono">{i.patientId ?? ''}</span>
                    </td>
                    <td className="mono">{i.accessionNumber ?? '—'}</td>
                    <td>
                      {i.studyDate ?? ''} {i.modalities.join(', ')} · {i.numberOfInstances ?? '?'} instances ({i.source}
                      )
                    </td>
                    <td>
                      {REASONS[i.reason] ?? i.reason}
                      {i.lastError && <span className="error"> · {i.lastError}</span>}
                    </td>
                    <td>
                      {(i.status === 'pending' || i.status === 'relinking' || i.status === 'rejected') && (
                        <button type="button" onClick={() => setOpen(open === i.id ? undefined : i.id)}>
                          {open === i.id ? 'Close' : 'Resolve'}
                        </button>
                      )}
                      {open === i.id && <Resolve item={i} done={load.reload} />}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )
        }
      </Status>
    </>
  );
}

function Resolve({ item, done }: { item: Item; done: () => void }) {
  const [q, setQ] = useState(item.patientId ?? '');
  const [search, setSearch] = useState<string>();
  const patients = useLoad(async () => {
    if (!search) return [] as Patient[];
    const byMrn = resources(await fhir<Bundle<Patient>>(`Patient?identifier=${encodeURIComponent(search)}`));
    return byMrn.length > 0
      ? byMrn
      : resources(await fhir<Bundle<Patient>>(`Patient?name=${encodeURIComponent(search)}`));
  }, [search]);
  const [patient, setPatient] = useState<Patient>();
  const orders = useLoad(async () => {
    if (!patient?.id) return [] as ServiceRequest[];
    return resources(await fhir<Bundle<ServiceRequest>>(`ServiceRequest?patient=${patient.id}&_count=100`));
  }, [patient?.id]);
  const [order, setOrder] = useState('');
  const [reason, setReason] = useState('');
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const act = async (path: string, body: unknown) => {
    setBusy(true);
    setError(undefined);
    try {
      await api(`/api/v1/dicom/unmatched/${item.id}/${path}`, { method: 'POST', body });
      done();
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="card">
      <form
        className="inline"
        onSubmit={(e: FormEvent) => {
          e.preventDefault();
          setSearch(q);
        }}
      >
        <Field label="Find patient (MRN or name)">
          <input value={q} onChange={(e) => setQ(e.target.value)} />
        </Field>
        <button type="submit">Find</button>
      </form>
      {search && (
        <Status load={patients}>
          {(ps) =>
            ps.length === 0 ? (
              <p>No patient found.</p>
            ) : (
              <Field label="Patient">
                <select value={patient?.id ?? ''} onChange={(e) => setPatient(ps.find((p) => p.id === e.target.value))}>
                  <option value="">(choose)</option>
                  {ps.map((p) => (
                    <option key={p.id} value={p.id}>
                      {nameOf(p)} · MRN {mrnOf(p)}
                    </option>
                  ))}
                </select>
              </Field>
            )
          }
        </Status>
      )}
      {patient && (
        <Status load={orders}>
          {(os) => (
            <Field label="Order">
              <select value={order} onChange={(e) => setOrder(e.target.value)}>
                <option value="">(choose)</option>
                {os.map((o) => (
                  <option key={o.id} value={o.id}>
                    {accessionOf(o)} · {procedureOf(o)} · {o.status}
                  </option>
                ))}
              </select>
            </Field>
          )}
        </Status>
      )}
      <div className="toolbar">
        <button
          type="button"
          className="primary"
          disabled={busy || !patient || !order}
          onClick={() => void act('link', { patient: `Patient/${patient?.id}`, order: `ServiceRequest/${order}` })}
        >
          Link to patient and order
        </button>
      </div>
      <div className="toolbar">
        <Field label="Reason for rejecting">
          <input value={reason} onChange={(e) => setReason(e.target.value)} />
        </Field>
        <button type="button" disabled={busy || !reason} onClick={() => void act('reject', { reason })}>
          Reject
        </button>
      </div>
      {busy && <p role="status">Working… (linking rewrites the study in the archive)</p>}
      <ErrorText error={error} />
    </div>
  );
}

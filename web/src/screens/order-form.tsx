import { type FormEvent, useState } from 'react';
import { type Bundle, fhir, resources } from '../api.ts';
import {
  DCM,
  type Encounter,
  LOINC,
  MODALITIES,
  modalityOf,
  nameOf,
  type Patient,
  type Practitioner,
  PROCEDURES,
  type ServiceRequest,
} from '../model.ts';
import { ErrorText, Field } from '../ui.tsx';
import { useLoad } from '../use-load.ts';

/**
 * The one order form: procedure (LOINC), modality (DCM), performer (a Practitioner) and, when visits are given, the
 * visit. Without `order` it creates a new active order for the patient (POST); with one it saves the order as a new
 * version (PUT), keeping every other element as it was.
 */
export function OrderForm({
  patientId,
  order,
  visits,
  done,
}: {
  patientId: string;
  order?: ServiceRequest;
  visits?: readonly Encounter[];
  done: () => void;
}) {
  const first = PROCEDURES[0];
  const [code, setCode] = useState(order?.code?.coding?.[0]?.code ?? first?.code ?? '');
  const [modality, setModality] = useState((order && modalityOf(order)) || first?.modality || 'CT');
  const [performer, setPerformer] = useState(order?.performer?.[0]?.reference ?? '');
  const [visit, setVisit] = useState(order?.encounter?.reference?.split('/')[1] ?? '');
  const [error, setError] = useState<string>();
  const [saving, setSaving] = useState(false);
  const practitioners = useLoad(
    () => fhir<Bundle<Practitioner>>('Practitioner?_count=100&_sort=family').then(resources),
    [],
  );
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(undefined);
    setSaving(true);
    const proc = PROCEDURES.find((p) => p.code === code);
    const who = practitioners.data?.find((p) => `Practitioner/${p.id}` === performer);
    const {
      performer: _p,
      encounter: _e,
      ...kept
    } = order ?? {
      resourceType: 'ServiceRequest' as const,
      status: 'active',
      intent: 'order',
      subject: { reference: `Patient/${patientId}` },
      authoredOn: new Date().toISOString(),
    };
    const encounter = visits ? visit : order?.encounter?.reference?.split('/')[1];
    const body: ServiceRequest = {
      ...kept,
      code: { coding: [{ system: LOINC, code, display: proc?.display ?? code }], text: proc?.display ?? code },
      orderDetail: [{ coding: [{ system: DCM, code: modality }] }],
      ...(encounter ? { encounter: { reference: `Encounter/${encounter}` } } : {}),
      ...(performer
        ? { performer: [{ reference: performer, display: who ? nameOf(who as unknown as Patient) : performer }] }
        : {}),
    };
    try {
      await (order
        ? fhir(`ServiceRequest/${order.id}`, { method: 'PUT', body })
        : fhir('ServiceRequest', { method: 'POST', body }));
      done();
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setSaving(false);
    }
  };
  return (
    <form className="inline" onSubmit={submit} aria-label={order ? 'Edit order' : 'New order'}>
      <Field label="Procedure">
        <select
          value={code}
          onChange={(e) => {
            setCode(e.target.value);
            setModality(PROCEDURES.find((p) => p.code === e.target.value)?.modality ?? modality);
          }}
        >
          {PROCEDURES.map((p) => (
            <option key={p.code} value={p.code}>
              {p.display} ({p.code})
            </option>
          ))}
        </select>
      </Field>
      <Field label="Modality">
        <select value={modality} onChange={(e) => setModality(e.target.value)}>
          {MODALITIES.map((m) => (
            <option key={m}>{m}</option>
          ))}
        </select>
      </Field>
      <Field label="Performer">
        <select value={performer} onChange={(e) => setPerformer(e.target.value)}>
          <option value="">(none)</option>
          {(practitioners.data ?? []).map((p) => (
            <option key={p.id} value={`Practitioner/${p.id}`}>
              {nameOf(p as unknown as Patient)}
            </option>
          ))}
        </select>
      </Field>
      {visits && (
        <Field label="Visit">
          <select value={visit} onChange={(e) => setVisit(e.target.value)}>
            <option value="">(none)</option>
            {visits.map((v) => (
              <option key={v.id} value={v.id}>
                {v.period?.start?.slice(0, 10)} {v.class.display ?? v.class.code}
              </option>
            ))}
          </select>
        </Field>
      )}
      <button type="submit" className="primary" disabled={saving}>
        {order ? 'Save order' : 'Create order'}
      </button>
      <ErrorText error={error} />
    </form>
  );
}

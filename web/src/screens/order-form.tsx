import { type FormEvent, useState } from 'react';
import { type Bundle, fhir, resources } from '../api.ts';
import {
  DCM,
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

/** Edits an order's procedure (LOINC), modality (DCM) and performer (a Practitioner), as a new version (PUT). */
export function OrderEdit({ order, done }: { order: ServiceRequest; done: () => void }) {
  const [code, setCode] = useState(order.code?.coding?.[0]?.code ?? PROCEDURES[0]?.code ?? '');
  const [modality, setModality] = useState(modalityOf(order) || 'CT');
  const [performer, setPerformer] = useState(order.performer?.[0]?.reference ?? '');
  const [error, setError] = useState<string>();
  const practitioners = useLoad(
    () => fhir<Bundle<Practitioner>>('Practitioner?_count=100&_sort=family').then(resources),
    [],
  );
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(undefined);
    const proc = PROCEDURES.find((p) => p.code === code);
    const who = practitioners.data?.find((p) => `Practitioner/${p.id}` === performer);
    const { performer: _old, ...rest } = order;
    try {
      await fhir(`ServiceRequest/${order.id}`, {
        method: 'PUT',
        body: {
          ...rest,
          code: { coding: [{ system: LOINC, code, display: proc?.display ?? code }], text: proc?.display ?? code },
          orderDetail: [{ coding: [{ system: DCM, code: modality }] }],
          ...(performer
            ? { performer: [{ reference: performer, display: who ? nameOf(who as unknown as Patient) : performer }] }
            : {}),
        },
      });
      done();
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  };
  return (
    <form className="inline" onSubmit={submit} aria-label="Edit order">
      <Field label="Procedure">
        <select value={code} onChange={(e) => setCode(e.target.value)}>
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
      <button type="submit" className="primary">
        Save order
      </button>
      <ErrorText error={error} />
    </form>
  );
}

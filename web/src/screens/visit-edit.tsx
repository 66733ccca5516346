import { type FormEvent, useState } from 'react';
import { fhir } from '../api.ts';
import { type Encounter, VISIT_CLASSES, VISIT_STATUSES } from '../model.ts';
import { ErrorText, Field } from '../ui.tsx';

/** An instant as the value of a `datetime-local` input (the browser's local time, minutes). */
function localInput(iso: string | undefined): string {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const local = new Date(d.getTime() - d.getTimezoneOffset() * 60000);
  return local.toISOString().slice(0, 16);
}

/**
 * Edits a visit (FHIR R4 Encounter) as a new version (PUT): period start and end, class, reason text and status.
 * Members the form does not show are kept as they are.
 */
export function VisitEdit({ visit, done }: { visit: Encounter; done: (changed: boolean) => void }) {
  const [start, setStart] = useState(localInput(visit.period?.start));
  const [end, setEnd] = useState(localInput(visit.period?.end));
  const [cls, setCls] = useState(visit.class.code ?? 'AMB');
  const [reason, setReason] = useState(visit.reasonCode?.[0]?.text ?? '');
  const [status, setStatus] = useState(visit.status);
  const [error, setError] = useState<string>();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(undefined);
    if (start && end && new Date(end) < new Date(start)) {
      setError('The visit cannot end before it starts.');
      return;
    }
    const { period: _p, reasonCode: _r, ...rest } = visit;
    const period = {
      ...(start ? { start: new Date(start).toISOString() } : {}),
      ...(end ? { end: new Date(end).toISOString() } : {}),
    };
    const body: Encounter = {
      ...rest,
      status,
      class: VISIT_CLASSES.find((c) => c.code === cls) ?? visit.class,
      ...(Object.keys(period).length ? { period } : {}),
      ...(reason.trim() ? { reasonCode: [{ text: reason.trim() }] } : {}),
    };
    try {
      await fhir(`Encounter/${visit.id}`, { method: 'PUT', body });
      done(true);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  };
  return (
    <form className="inline" onSubmit={submit} aria-label="Edit visit">
      <Field label="Edit visit start">
        <input type="datetime-local" required value={start} onChange={(e) => setStart(e.target.value)} />
      </Field>
      <Field label="Edit visit end">
        <input type="datetime-local" value={end} onChange={(e) => setEnd(e.target.value)} />
      </Field>
      <Field label="Edit visit class">
        <select value={cls} onChange={(e) => setCls(e.target.value)}>
          {[...VISIT_CLASSES, ...(VISIT_CLASSES.some((c) => c.code === visit.class.code) ? [] : [visit.class])].map(
            (c) => (
              <option key={c.code} value={c.code}>
                {c.display ?? c.code}
              </option>
            ),
          )}
        </select>
      </Field>
      <Field label="Edit visit reason">
        <input value={reason} onChange={(e) => setReason(e.target.value)} />
      </Field>
      <Field label="Edit visit status">
        <select value={status} onChange={(e) => setStatus(e.target.value)}>
          {[...new Set([visit.status, ...VISIT_STATUSES])].map((s) => (
            <option key={s}>{s}</option>
          ))}
        </select>
      </Field>
      <button type="submit" className="primary">
        Save visit
      </button>
      <button type="button" onClick={() => done(false)}>
        Cancel
      </button>
      <ErrorText error={error} />
    </form>
  );
}

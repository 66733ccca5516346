import { type FormEvent, useState } from 'react';
import { type Bundle, fhir, resources } from '../api.ts';
import { ErrorText, Field, Status } from '../ui.tsx';
import { useLoad } from '../use-load.ts';

interface AuditEvent {
  id?: string;
  recorded?: string;
  type?: { code?: string; display?: string };
  subtype?: { code?: string; display?: string }[];
  action?: string;
  outcome?: string;
  outcomeDesc?: string;
  agent?: {
    who?: { reference?: string; display?: string; identifier?: { value?: string } };
    requestor?: boolean;
  }[];
  entity?: { what?: { reference?: string; identifier?: { value?: string } } }[];
}

const OUTCOMES: Record<string, string> = { '0': 'success', '4': 'minor failure (denied)', '8': 'serious failure' };

function query(f: Record<string, string>, count = 50): string {
  const p = new URLSearchParams({ _count: String(count) });
  if (f.patient) p.set('patient', f.patient.includes('/') ? f.patient : `Patient/${f.patient}`);
  if (f.agent) p.set('agent', f.agent);
  if (f.from) p.append('date', `ge${f.from}`);
  if (f.to) p.append('date', `le${f.to}`);
  if (f.outcome) p.set('outcome', f.outcome);
  return p.toString();
}

const who = (e: AuditEvent) => {
  const a = e.agent?.find((x) => x.requestor) ?? e.agent?.[0];
  return a?.who?.reference ?? a?.who?.display ?? a?.who?.identifier?.value ?? '—';
};

/** The audit trail, for auditors: search, the event's detail, and NDJSON export of the search. */
/** When the event was recorded, as shown in the list (UTC, to the second). */
const recordedOf = (e: AuditEvent) => e.recorded?.slice(0, 19).replace('T', ' ') ?? '';

export function AuditScreen() {
  const empty = { patient: '', agent: '', from: '', to: '', outcome: '' };
  const [form, setForm] = useState(empty);
  const [applied, setApplied] = useState(empty);
  const load = useLoad(() => fhir<Bundle<AuditEvent>>(`AuditEvent?${query(applied)}`).then(resources), [applied]);
  const [selected, setSelected] = useState<AuditEvent>();
  const [exporting, setExporting] = useState(false);
  const [error, setError] = useState<string>();
  const exportNdjson = async () => {
    setExporting(true);
    setError(undefined);
    try {
      const lines: string[] = [];
      let url: string | undefined = `AuditEvent?${query(applied, 100)}`;
      // Follows the Bundle's next links, up to 5000 events.
      while (url && lines.length < 5000) {
        const b: Bundle<AuditEvent> = await fhir<Bundle<AuditEvent>>(url);
        for (const r of resources(b)) lines.push(JSON.stringify(r));
        const next = b.link?.find((l) => l.relation === 'next')?.url;
        url = next ? next.slice(next.indexOf('/fhir/') + 6) : undefined;
      }
      const a = document.createElement('a');
      a.href = URL.createObjectURL(new Blob([`${lines.join('\n')}\n`], { type: 'application/x-ndjson' }));
      a.download = `audit-${new Date().toISOString().slice(0, 19)}.ndjson`;
      a.click();
      URL.revokeObjectURL(a.href);
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setExporting(false);
    }
  };
  const set = (k: keyof typeof empty) => (e: { target: { value: string } }) =>
    setForm({ ...form, [k]: e.target.value });
  return (
    <>
      <h1>Audit trail</h1>
      <search>
        <form
          className="inline"
          aria-label="Search audit events"
          onSubmit={(e: FormEvent) => {
            e.preventDefault();
            setApplied(form);
          }}
        >
          <Field label="Patient id">
            <input value={form.patient} onChange={set('patient')} />
          </Field>
          <Field label="User (agent)">
            <input value={form.agent} onChange={set('agent')} placeholder="Practitioner/… or user id" />
          </Field>
          <Field label="From">
            <input type="date" value={form.from} onChange={set('from')} />
          </Field>
          <Field label="To">
            <input type="date" value={form.to} onChange={set('to')} />
          </Field>
          <Field label="Outcome">
            <select value={form.outcome} onChange={set('outcome')}>
              <option value="">(any)</option>
              {Object.entries(OUTCOMES).map(([k, v]) => (
                <option key={k} value={k}>
                  {v}
                </option>
              ))}
            </select>
          </Field>
          <button type="submit" className="primary">
            Search
          </button>
          <button type="button" disabled={exporting} onClick={() => void exportNdjson()}>
            Export NDJSON
          </button>
        </form>
      </search>
      <ErrorText error={error} />
      <div className="grid2">
        <Status load={load}>
          {(events) =>
            events.length === 0 ? (
              <p>No events.</p>
            ) : (
              <div className="scroll">
                <table aria-label="Audit events">
                  <thead>
                    <tr>
                      <th scope="col">When</th>
                      <th scope="col">What</th>
                      <th scope="col">Who</th>
                      <th scope="col">Outcome</th>
                    </tr>
                  </thead>
                  <tbody>
                    {events.map((e) => (
                      <tr key={e.id}>
                        <td>
                          <button
                            type="button"
                            onClick={() => setSelected(e)}
                            aria-label={`${recordedOf(e)}: details of event ${e.id}`}
                          >
                            {recordedOf(e)}
                          </button>
                        </td>
                        <td>
                          {e.type?.display ?? e.type?.code} · {e.subtype?.[0]?.display ?? e.subtype?.[0]?.code} ·{' '}
                          {e.action}
                        </td>
                        <td className="mono">{who(e)}</td>
                        <td className={e.outcome === '0' ? 'ok' : 'bad'}>{OUTCOMES[e.outcome ?? ''] ?? e.outcome}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )
          }
        </Status>
        <section className="card" aria-labelledby="event-detail">
          <h2 id="event-detail">Event detail</h2>
          {selected ? (
            <>
              <dl className="facts">
                <dt>Recorded</dt>
                <dd>{selected.recorded}</dd>
                <dt>Who</dt>
                <dd className="mono">{who(selected)}</dd>
                <dt>Entities</dt>
                <dd className="mono">
                  {(selected.entity ?? []).map((x) => x.what?.reference ?? x.what?.identifier?.value).join(', ')}
                </dd>
                <dt>Outcome</dt>
                <dd>
                  {OUTCOMES[selected.outcome ?? ''] ?? selected.outcome} {selected.outcomeDesc ?? ''}
                </dd>
              </dl>
              <section aria-label="The event as JSON">
                {/* biome-ignore lint/a11y/noNoninteractiveTabindex: a scrollable box must be reachable by keyboard (WCAG 2.1.1) */}
                <pre tabIndex={0}>{JSON.stringify(selected, null, 2)}</pre>
              </section>
            </>
          ) : (
            <p>Choose an event.</p>
          )}
        </section>
      </div>
    </>
  );
}

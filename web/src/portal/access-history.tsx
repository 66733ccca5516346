import { type Bundle, fhir, resources } from '../api.ts';
import { Status } from '../ui.tsx';
import { useLoad } from '../use-load.ts';
import { type AuditEvent, accessRows, practitionerRefs } from './access-model.ts';

/** A Practitioner's name, or undefined when it cannot be read. */
async function practitionerName(ref: string): Promise<string | undefined> {
  try {
    const p = await fhir<{ name?: { family?: string; given?: string[]; prefix?: string[] }[] }>(ref);
    const n = p.name?.[0];
    return [...(n?.prefix ?? []), ...(n?.given ?? []), n?.family].filter(Boolean).join(' ') || undefined;
  } catch {
    return undefined;
  }
}

async function loadRows(patientId: string) {
  const self = `Patient/${patientId}`;
  const b = await fhir<Bundle<AuditEvent>>(`AuditEvent?patient=${encodeURIComponent(self)}&_count=100&_sort=-date`);
  const events = resources(b);
  const refs = practitionerRefs(events);
  const found = await Promise.all(refs.map(async (r) => [r, await practitionerName(r)] as const));
  const names = new Map(found.filter((x): x is readonly [string, string] => x[1] !== undefined));
  return accessRows(events, self, names);
}

const OUTCOME_TEXT = { allowed: 'allowed', refused: 'refused', failed: 'failed' } as const;

/**
 * "Who accessed my record": the AuditEvents about the patient (`AuditEvent?patient=`, readable with
 * `patient/AuditEvent.rs` in the patient's own context), redacted by the server to what concerns them, newest first.
 */
export function AccessHistory({ patientId }: { patientId: string }) {
  const load = useLoad(() => loadRows(patientId), [patientId]);
  return (
    <>
      <h1>Access history</h1>
      <p>
        Every time someone opens, searches or downloads your record or your images, the hospital records it. These are
        the latest 100 records about you: when, who, what, and whether it was allowed. Details about other patients are
        removed.
      </p>
      <Status load={load}>
        {(rows) =>
          rows.length === 0 ? (
            <p>No accesses recorded yet.</p>
          ) : (
            <table aria-label="Access history">
              <thead>
                <tr>
                  <th scope="col">When</th>
                  <th scope="col">Who</th>
                  <th scope="col">What</th>
                  <th scope="col">Outcome</th>
                </tr>
              </thead>
              <tbody>
                {rows.map((r) => (
                  <tr key={r.id}>
                    <td>{r.when.slice(0, 19).replace('T', ' ')}</td>
                    <td>{r.who}</td>
                    <td>{r.what}</td>
                    <td className={r.outcome === 'allowed' ? 'ok' : 'bad'}>{OUTCOME_TEXT[r.outcome]}</td>
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

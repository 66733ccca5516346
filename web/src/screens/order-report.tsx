import { useState } from 'react';
import { fhir } from '../api.ts';
import type { ImagingStudy, ServiceRequest } from '../model.ts';
import { may } from '../roles.ts';
import { ErrorText, Field } from '../ui.tsx';

/** A radiology report: a DiagnosticReport `basedOn` the order (FHIR R4, https://hl7.org/fhir/R4/diagnosticreport.html). */
export interface Report {
  resourceType: 'DiagnosticReport';
  id?: string;
  status?: string;
  conclusion?: string;
  issued?: string;
  performer?: { reference?: string; display?: string }[];
  resultsInterpreter?: { reference?: string; display?: string }[];
  presentedForm?: { contentType?: string; data?: string; title?: string }[];
}

const RAD_CATEGORY = { system: 'http://terminology.hl7.org/CodeSystem/v2-0074', code: 'RAD', display: 'Radiology' };
const IMAGING_REPORT_CODE = { system: 'http://loinc.org', code: '18748-4', display: 'Diagnostic imaging study' };

/** The text of a text/plain presented form (base64 per R4 Attachment.data), or undefined. */
function plainText(r: Report): string | undefined {
  const form = r.presentedForm?.find((f) => f.contentType?.split(';')[0]?.trim() === 'text/plain' && f.data);
  if (!form?.data) return undefined;
  try {
    const bytes = Uint8Array.from(atob(form.data), (c) => c.charCodeAt(0));
    return new TextDecoder().decode(bytes);
  } catch {
    return undefined;
  }
}

/** A Practitioner's name for a reference's display (the reference itself when it cannot be read). */
async function nameOfRef(ref: string): Promise<string> {
  try {
    const p = await fhir<{ name?: { family?: string; given?: string[] }[] }>(ref);
    const n = p.name?.[0];
    const text = [n?.family, n?.given?.join(' ')].filter(Boolean).join(', ');
    return text || ref;
  } catch {
    return ref;
  }
}

function names(refs: { reference?: string; display?: string }[] | undefined): string {
  return (refs ?? []).map((p) => p.display ?? p.reference).join(', ');
}

function ShownReport({ r }: { r: Report }) {
  const text = plainText(r);
  return (
    <div className="report">
      <dl className="facts">
        <dt>Report status</dt>
        <dd>{r.status}</dd>
        <dt>Issued</dt>
        <dd>{r.issued?.slice(0, 19).replace('T', ' ') ?? '—'}</dd>
        <dt>Interpreter</dt>
        <dd>{names(r.resultsInterpreter) || names(r.performer) || '—'}</dd>
        <dt>Conclusion</dt>
        <dd>{r.conclusion ?? '—'}</dd>
      </dl>
      {text && <pre className="report-text">{text}</pre>}
    </div>
  );
}

/** The order's reports, and for radiologists a simple report form (conclusion and status). */
export function OrderReport(props: {
  order: ServiceRequest;
  studies: readonly ImagingStudy[];
  reports: readonly Report[];
  roles: readonly string[];
  fhirUser: string | null;
  changed: () => void;
}) {
  const { order, studies, reports, roles, fhirUser, changed } = props;
  const [conclusion, setConclusion] = useState('');
  const [status, setStatus] = useState('preliminary');
  const [error, setError] = useState<string>();
  const [saving, setSaving] = useState(false);
  const [editing, setEditing] = useState<Report>();
  const open = (r: Report | undefined) => {
    setEditing(r);
    setConclusion(r?.conclusion ?? '');
    setStatus(r?.status === 'final' ? 'final' : 'preliminary');
    setError(undefined);
  };
  const save = async () => {
    setError(undefined);
    if (!conclusion.trim()) {
      setError('Write a conclusion first.');
      return;
    }
    setSaving(true);
    const me = fhirUser?.replace(/^.*\/(Practitioner\/[^/]+)$/, '$1');
    const body: Record<string, unknown> = {
      ...(editing ?? {}),
      resourceType: 'DiagnosticReport',
      status,
      category: [{ coding: [RAD_CATEGORY] }],
      code: { coding: [IMAGING_REPORT_CODE] },
      subject: order.subject,
      basedOn: [{ reference: `ServiceRequest/${order.id}` }],
      issued: new Date().toISOString(),
      conclusion: conclusion.trim(),
      ...(studies.length ? { imagingStudy: studies.map((s) => ({ reference: `ImagingStudy/${s.id}` })) } : {}),
      ...(me?.startsWith('Practitioner/')
        ? { resultsInterpreter: [{ reference: me, display: await nameOfRef(me) }] }
        : {}),
    };
    try {
      if (editing?.id) {
        await fhir(`DiagnosticReport/${encodeURIComponent(editing.id)}`, { method: 'PUT', body });
      } else {
        await fhir('DiagnosticReport', { method: 'POST', body });
      }
      setEditing(undefined);
      setConclusion('');
      changed();
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setSaving(false);
    }
  };
  const canWrite = may(roles, 'write-report');
  // Once a report is released the form is not offered again (amending a final report is not done in the app).
  const released = reports.some((r) => ['final', 'amended', 'corrected', 'appended'].includes(r.status ?? ''));
  const draft = reports.find((r) => r.status === 'preliminary' || r.status === 'registered' || r.status === 'partial');
  return (
    <section className="card" aria-labelledby="report">
      <h2 id="report">Report</h2>
      {reports.length === 0 ? <p>No report yet.</p> : reports.map((r) => <ShownReport key={r.id} r={r} />)}
      {canWrite && released && <p>The report is final.</p>}
      {canWrite && !released && (
        <form
          aria-label="Write report"
          onSubmit={(e) => {
            e.preventDefault();
            void save();
          }}
        >
          {draft && !editing && (
            <p>
              <button type="button" onClick={() => open(draft)}>
                Edit preliminary report
              </button>
            </p>
          )}
          <Field label="Conclusion">
            <textarea rows={4} value={conclusion} onChange={(e) => setConclusion(e.target.value)} />
          </Field>
          <Field label="Report status">
            <select value={status} onChange={(e) => setStatus(e.target.value)}>
              <option value="preliminary">preliminary</option>
              <option value="final">final</option>
            </select>
          </Field>
          <p>
            <button type="submit" className="primary" disabled={saving}>
              {editing ? 'Save report' : 'Add report'}
            </button>{' '}
            {editing && (
              <button type="button" onClick={() => open(undefined)}>
                Cancel edit
              </button>
            )}
          </p>
          <ErrorText error={error} />
        </form>
      )}
    </section>
  );
}

import { type FormEvent, useRef, useState } from 'react';
import { Link, useSearch } from 'wouter';
import { accessToken, type Bundle, fhir, resources } from '../api.ts';
import { fromDrop, fromInput } from '../dicom/files.ts';
import { EDITABLE, type Editable } from '../dicom/header.ts';
import { sendBatch } from '../dicom/stow.ts';
import { accessionOf, dicomDate, dicomNameOf, mrnOf, nameOf, type Patient, type ServiceRequest } from '../model.ts';
import { ErrorText, Field, Status } from '../ui.tsx';
import { useLoad } from '../use-load.ts';
import { FileTable } from './upload-files.tsx';
import { applyCorrections, type Expected, inspect, type StudySummary, summarize, type UFile } from './upload-model.ts';

const BATCH_FILES = 10;
const BATCH_BYTES = 32 * 1024 * 1024;

async function loadOrder(orderId: string | null, accession: string | null) {
  if (!orderId && !accession) return undefined;
  const order = orderId
    ? await fhir<ServiceRequest>(`ServiceRequest/${encodeURIComponent(orderId)}`)
    : resources(
        await fhir<Bundle<ServiceRequest>>(`ServiceRequest?identifier=${encodeURIComponent(accession ?? '')}`),
      )[0];
  if (!order) throw new Error(`no order with accession ${accession}`);
  const patient = await fhir<Patient>(`Patient/${order.subject.reference?.split('/')[1] ?? ''}`);
  return { order, patient };
}

/** DICOM upload: pick, inspect and compare, correct, then STOW-RS in batches with progress and per-file results. */
export function UploadScreen() {
  const params = new URLSearchParams(useSearch());
  const [accession, setAccession] = useState<string | null>(null);
  const target = useLoad(() => loadOrder(params.get('order'), accession), [params.get('order'), accession]);
  const expected: Expected | undefined = target.data && {
    patientId: mrnOf(target.data.patient),
    accessionNumber: accessionOf(target.data.order),
    patientName: dicomNameOf(target.data.patient),
    birthDate: dicomDate(target.data.patient.birthDate),
  };
  const [files, setFiles] = useState<UFile[]>([]);
  const [, setTick] = useState(0);
  const refresh = () => setTick((t) => t + 1);
  const [reading, setReading] = useState(false);
  const [over, setOver] = useState(false);
  const [running, setRunning] = useState<'idle' | 'running' | 'pausing' | 'paused'>('idle');
  const [error, setError] = useState<string>();
  const control = useRef<{ pause: boolean; cancel: boolean; abort?: () => void }>({ pause: false, cancel: false });
  const [accInput, setAccInput] = useState('');

  const add = async (picked: Promise<Awaited<ReturnType<typeof fromInput>>>) => {
    setReading(true);
    setError(undefined);
    try {
      const more = await inspect(await picked);
      setFiles((fs) => [...fs, ...more]);
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setReading(false);
    }
  };

  const studies = summarize(files, expected);
  const sendable = files.filter((f) => f.status === 'ready');
  const total = files.filter((f) => f.status !== 'skipped').reduce((n, f) => n + f.blob.size, 0);
  const sent = files.filter((f) => f.status !== 'skipped').reduce((n, f) => n + f.blob.size * f.progress, 0);

  const run = async () => {
    control.current = { pause: false, cancel: false };
    setRunning('running');
    setError(undefined);
    try {
      const token = await accessToken();
      for (;;) {
        if (control.current.cancel || control.current.pause) break;
        const queue = files.filter((f) => f.status === 'ready');
        const first = queue[0];
        if (!first) break;
        const study = first.header?.studyInstanceUid;
        const batch: UFile[] = [];
        let bytes = 0;
        for (const f of queue) {
          if (f.header?.studyInstanceUid !== study || batch.length >= BATCH_FILES) continue;
          if (batch.length > 0 && bytes + f.blob.size > BATCH_BYTES) continue;
          batch.push(f);
          bytes += f.blob.size;
        }
        for (const f of batch) f.status = 'sending';
        refresh();
        const req = sendBatch(
          batch.map((f) => f.blob),
          token,
          (done) => {
            batch.forEach((f, i) => {
              const start = req.offsets[i] ?? 0;
              f.progress = Math.max(0, Math.min(1, (done - start) / Math.max(1, f.blob.size)));
            });
            refresh();
          },
        );
        control.current.abort = req.abort;
        const result = await req.done;
        for (const f of batch) {
          const o = result.outcomes.find((x) => x.sopInstanceUid === f.header?.sopInstanceUid);
          if (!o) {
            const cancelled = result.error === 'cancelled';
            Object.assign(f, {
              status: cancelled ? 'ready' : 'failed',
              progress: 0,
              reason: cancelled ? 'cancelled' : (result.error ?? 'no answer for this instance'),
            });
          } else if (o.kind === 'stored') Object.assign(f, { status: 'stored', progress: 1, reason: undefined });
          else Object.assign(f, { status: o.kind, progress: 1, reason: o.reason });
        }
        refresh();
      }
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setRunning(control.current.pause && !control.current.cancel ? 'paused' : 'idle');
    }
  };

  const retryFailed = () => {
    for (const f of files) {
      if (f.status === 'failed' || (f.status === 'refused' && f.reason?.startsWith('Processing failure'))) {
        Object.assign(f, { status: 'ready', progress: 0, reason: undefined });
      }
    }
    void run();
  };

  const counts = (s: string) => files.filter((f) => f.status === s).length;
  return (
    <>
      <h1>Upload images</h1>
      <section className="card" aria-labelledby="target">
        <h2 id="target">Order</h2>
        {!params.get('order') && (
          <form
            className="inline"
            onSubmit={(e: FormEvent) => {
              e.preventDefault();
              setAccession(accInput);
            }}
          >
            <Field label="Order accession">
              <input value={accInput} onChange={(e) => setAccInput(e.target.value)} required />
            </Field>
            <button type="submit">Find order</button>
          </form>
        )}
        {target.data === undefined && !target.loading && !target.error ? (
          <p>Choose an order (from a patient chart, or by its accession) to compare the files with.</p>
        ) : (
          <Status load={target}>
            {(t) =>
              t && (
                <p>
                  Order <Link href={`/orders/${t.order.id}`}>{accessionOf(t.order)}</Link> for{' '}
                  <Link href={`/patients/${t.patient.id}`}>{nameOf(t.patient)}</Link> (MRN {mrnOf(t.patient)}, born{' '}
                  {t.patient.birthDate ?? '—'})
                </p>
              )
            }
          </Status>
        )}
      </section>

      <section className="card" aria-labelledby="pick">
        <h2 id="pick">Files</h2>
        {/* biome-ignore lint/a11y/noStaticElementInteractions: dropping is a pointer extra; the pickers inside work by keyboard */}
        <div
          className={`drop${over ? ' over' : ''}`}
          onDragOver={(e) => {
            e.preventDefault();
            setOver(true);
          }}
          onDragLeave={() => setOver(false)}
          onDrop={(e) => {
            e.preventDefault();
            setOver(false);
            void add(fromDrop(e.dataTransfer));
          }}
        >
          <p>Drop DICOM files, a folder, a DICOMDIR folder or a zip here, or choose:</p>
          <Field label="Choose files or zip">
            <input type="file" multiple onChange={(e) => e.target.files && void add(fromInput(e.target.files))} />
          </Field>
          <Field label="Choose a folder">
            <input
              type="file"
              webkitdirectory=""
              onChange={(e) => e.target.files && void add(fromInput(e.target.files))}
            />
          </Field>
          {reading && <p role="status">Reading headers…</p>}
        </div>
        <ErrorText error={error} />
      </section>

      {studies.map((s) => (
        <StudyCard
          key={s.studyInstanceUid}
          study={s}
          expected={expected}
          onChange={refresh}
          disabled={running !== 'idle'}
        />
      ))}

      {files.length > 0 && (
        <section className="card" aria-labelledby="send">
          <h2 id="send">Upload</h2>
          <div className="toolbar">
            <button
              type="button"
              className="primary"
              disabled={running === 'running' || sendable.length === 0}
              onClick={() => void run()}
            >
              {running === 'paused' ? 'Resume' : `Upload ${sendable.length} files`}
            </button>
            <button
              type="button"
              disabled={running !== 'running'}
              onClick={() => {
                control.current.pause = true;
                setRunning('pausing');
              }}
            >
              Pause
            </button>
            <button
              type="button"
              disabled={running === 'idle'}
              onClick={() => {
                control.current.cancel = true;
                control.current.abort?.();
                setRunning('idle');
              }}
            >
              Cancel
            </button>
            <button type="button" disabled={running !== 'idle' || counts('failed') === 0} onClick={retryFailed}>
              Retry failed
            </button>
            <button type="button" disabled={running !== 'idle'} onClick={() => setFiles([])}>
              Clear
            </button>
          </div>
          <label>
            Total progress
            <progress max={Math.max(1, total)} value={sent} />
          </label>
          <p role="status" aria-live="polite">
            {counts('stored')} stored · {counts('held')} held · {counts('refused')} refused · {counts('failed')} failed
            · {counts('ready')} waiting · {counts('skipped')} skipped
            {running === 'pausing' && ' · pausing after this batch'}
          </p>
          <FileTable files={files} />
        </section>
      )}
    </>
  );
}

function StudyCard({
  study,
  expected,
  onChange,
  disabled,
}: {
  study: StudySummary;
  expected: Expected | undefined;
  onChange: () => void;
  disabled: boolean;
}) {
  const [fix, setFix] = useState<Editable[]>([]);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const keys = Object.keys(EDITABLE) as Editable[];
  const corrections = study.files.flatMap((f) => f.corrections);
  return (
    <section className="card" aria-label={`Study ${study.studyInstanceUid}`}>
      <h2>
        Study {study.studyDate || '(no date)'} · {study.modalities.join(', ')} · {study.series} series,{' '}
        {study.files.length} instances
      </h2>
      <p className="mono">{study.studyInstanceUid}</p>
      <table aria-label="Files compared with the order">
        <thead>
          <tr>
            <th scope="col">Attribute</th>
            <th scope="col">In the files</th>
            <th scope="col">Order and patient</th>
            <th scope="col">Match</th>
            {expected && <th scope="col">Correct from order</th>}
          </tr>
        </thead>
        <tbody>
          {keys.map((k) => {
            const bad = study.mismatches.includes(k);
            return (
              <tr key={k}>
                <th scope="row">{EDITABLE[k].label}</th>
                <td className="mono">{study.values[k] || '—'}</td>
                <td className="mono">{expected?.[k] || '—'}</td>
                <td className={bad ? 'bad' : 'ok'}>{expected ? (bad ? '✗ mismatch' : '✓ match') : '—'}</td>
                {expected && (
                  <td>
                    {bad && (
                      <label>
                        <input
                          type="checkbox"
                          checked={fix.includes(k)}
                          onChange={(e) => setFix(e.target.checked ? [...fix, k] : fix.filter((x) => x !== k))}
                        />{' '}
                        Set {EDITABLE[k].label}
                      </label>
                    )}
                  </td>
                )}
              </tr>
            );
          })}
        </tbody>
      </table>
      {expected && study.mismatches.length > 0 && (
        <p>
          <button
            type="button"
            disabled={busy || disabled || fix.length === 0}
            onClick={async () => {
              setBusy(true);
              setError(undefined);
              try {
                await applyCorrections(study, expected, fix);
                setFix([]);
                onChange();
              } catch (e) {
                setError(e instanceof Error ? e.message : String(e));
              } finally {
                setBusy(false);
              }
            }}
          >
            Apply corrections
          </button>
        </p>
      )}
      {corrections.length > 0 && (
        <p className="warn">
          Corrected in {study.files.filter((f) => f.corrections.length > 0).length} files (recorded in each file's
          Original Attributes Sequence): {[...new Set(corrections)].join('; ')}
        </p>
      )}
      <ErrorText error={error} />
    </section>
  );
}

/**
 * STOW-RS from the browser (DICOM PS3.18 §10.5): one multipart/related request per batch, sent with XMLHttpRequest
 * for upload progress, and the answer read per instance (ReferencedSOPSequence, FailedSOPSequence, PS3.18 §10.5.3).
 */

export type Outcome =
  | { kind: 'stored'; sopInstanceUid: string }
  | { kind: 'held'; sopInstanceUid: string; reason: string }
  | { kind: 'refused'; sopInstanceUid: string; code: number; reason: string };

/** Status codes of a C-STORE / STOW-RS instance, in words (PS3.4 Annex B.2.3, PS3.18 Table 10.5.3-1). */
export function reasonInWords(code: number): string {
  switch (code) {
    case 0xa700:
      return 'Refused: out of resources (the file is too large)';
    case 0xa900:
      return 'Error: data set does not match (required attributes, or no matching patient and order)';
    case 0xc000:
      return 'Error: cannot understand (not a readable DICOM file)';
    case 0x0124:
      return 'Refused: not authorized for this patient';
    case 0x0122:
      return 'Refused: SOP class not supported';
    case 0x0110:
      return 'Processing failure (the archive could not store it; try again)';
    case 0xb000:
      return 'Warning: coercion of data elements';
    case 0xb006:
      return 'Warning: elements discarded';
    case 0xb007:
      return 'Warning: data set does not match SOP class';
    case 0xb100:
      // The facade's own warning (its DICOM conformance statement): stored in the archive, not linked yet.
      return 'Held for reconciliation: stored, not linked to a patient and order yet';
    default:
      return `Status 0x${code.toString(16).toUpperCase().padStart(4, '0')}`;
  }
}

type Item = Record<string, { Value?: unknown[] }>;
const first = (i: Item, tag: string) => i[tag]?.Value?.[0];

/** The per-instance outcomes of a STOW-RS answer (application/dicom+json). */
export function outcomesOf(body: unknown): Outcome[] {
  const r = (Array.isArray(body) ? body[0] : body) as Item | undefined;
  if (!r) return [];
  const out: Outcome[] = [];
  for (const i of (r['00081199']?.Value ?? []) as Item[]) {
    const uid = String(first(i, '00081155') ?? '');
    const warning = first(i, '00081196');
    if (typeof warning === 'number' && warning !== 0) {
      const comment = first(i, '00000902');
      const words = reasonInWords(warning);
      out.push({ kind: 'held', sopInstanceUid: uid, reason: comment ? `${words} (${String(comment)})` : words });
    } else out.push({ kind: 'stored', sopInstanceUid: uid });
  }
  for (const i of (r['00081198']?.Value ?? []) as Item[]) {
    const code = Number(first(i, '00081197') ?? 0x0110);
    const comment = first(i, '00000902');
    const words = reasonInWords(code);
    out.push({
      kind: 'refused',
      sopInstanceUid: String(first(i, '00081155') ?? ''),
      code,
      reason: comment ? `${words}: ${String(comment)}` : words,
    });
  }
  return out;
}

export interface SendResult {
  status: number;
  outcomes: Outcome[];
  /** Set when the whole request failed (network, 4xx/5xx without per-instance answers). */
  error?: string;
}

/**
 * Sends one batch. `onProgress(bytesSent)` reports the upload; the returned `abort` cancels it.
 */
export function sendBatch(
  parts: Blob[],
  token: string,
  onProgress: (sent: number, total: number) => void,
): { done: Promise<SendResult>; abort: () => void; offsets: number[] } {
  const boundary = `ehr-web-${crypto.randomUUID()}`;
  const chunks: BlobPart[] = [];
  const offsets: number[] = [];
  let at = 0;
  for (const p of parts) {
    const head = `--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`;
    chunks.push(head, p, '\r\n');
    at += head.length;
    offsets.push(at);
    at += p.size + 2;
  }
  chunks.push(`--${boundary}--\r\n`);
  const body = new Blob(chunks);
  const xhr = new XMLHttpRequest();
  const done = new Promise<SendResult>((resolve) => {
    xhr.open('POST', '/dicom-web/studies');
    xhr.setRequestHeader('authorization', `Bearer ${token}`);
    xhr.setRequestHeader('accept', 'application/dicom+json');
    xhr.setRequestHeader('content-type', `multipart/related; type="application/dicom"; boundary=${boundary}`);
    xhr.upload.onprogress = (e) => onProgress(e.loaded, e.total || body.size);
    xhr.onload = () => {
      let parsed: unknown;
      try {
        parsed = xhr.responseText ? JSON.parse(xhr.responseText) : undefined;
      } catch {
        parsed = undefined;
      }
      const outcomes = outcomesOf(parsed);
      const error =
        outcomes.length > 0 ? undefined : `HTTP ${xhr.status}: ${xhr.getResponseHeader('warning') ?? xhr.statusText}`;
      resolve({ status: xhr.status, outcomes, ...(error ? { error } : {}) });
    };
    xhr.onerror = () => resolve({ status: 0, outcomes: [], error: 'network error' });
    xhr.onabort = () => resolve({ status: 0, outcomes: [], error: 'cancelled' });
    xhr.send(body);
  });
  return { done, abort: () => xhr.abort(), offsets };
}

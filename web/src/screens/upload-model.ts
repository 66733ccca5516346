import { correct, DICOMDIR_SOP_CLASS, type Editable, type Header, isPart10, readHeader } from '../dicom/header.ts';
import type { Picked } from '../dicom/files.ts';

export type FileStatus = 'ready' | 'skipped' | 'sending' | 'stored' | 'held' | 'refused' | 'failed';

export interface UFile {
  id: number;
  path: string;
  blob: Blob;
  header?: Header;
  status: FileStatus;
  reason?: string;
  /** 0..1 of this file's bytes sent. */
  progress: number;
  corrections: string[];
}

/** What the chosen order and patient say the images must carry. */
export interface Expected {
  patientId: string;
  accessionNumber: string;
  patientName: string;
  birthDate: string;
}

export interface StudySummary {
  studyInstanceUid: string;
  files: UFile[];
  values: Record<Editable, string>;
  studyDate: string;
  modalities: string[];
  series: number;
  mismatches: Editable[];
}

let nextId = 1;

/** Reads each picked file's header; non-DICOM files and DICOMDIRs are listed as skipped, with why. */
export async function inspect(picked: Picked[]): Promise<UFile[]> {
  const out: UFile[] = [];
  for (const p of picked) {
    const f: UFile = { id: nextId++, path: p.path, blob: p.blob, status: 'ready', progress: 0, corrections: [] };
    try {
      const head = new Uint8Array(await p.blob.slice(0, 132).arrayBuffer());
      if (!isPart10(head)) {
        Object.assign(f, { status: 'skipped', reason: 'not a DICOM Part 10 file' });
      } else {
        f.header = readHeader(await p.blob.arrayBuffer());
        if (f.header.sopClassUid === DICOMDIR_SOP_CLASS) {
          Object.assign(f, { status: 'skipped', reason: 'DICOMDIR index (the files it lists are uploaded)' });
        }
      }
    } catch (e) {
      Object.assign(f, { status: 'skipped', reason: `unreadable: ${e instanceof Error ? e.message : String(e)}` });
    }
    out.push(f);
  }
  return out;
}

const norm = (s: string) => s.trim().toUpperCase().replace(/\^+$/, '');

/** Per study: the values the files carry, and which of them differ from the order and patient. */
export function summarize(files: UFile[], expected: Expected | undefined): StudySummary[] {
  const by = new Map<string, UFile[]>();
  for (const f of files) {
    if (f.status === 'skipped' || !f.header) continue;
    const list = by.get(f.header.studyInstanceUid) ?? [];
    list.push(f);
    by.set(f.header.studyInstanceUid, list);
  }
  return [...by].map(([uid, list]) => {
    const h = list[0]?.header as Header;
    // Every distinct value the study's files carry, so a study whose files disagree shows it.
    const distinct = (k: Editable) => [...new Set(list.map((f) => f.header?.[k] ?? ''))].join(' / ');
    const values = {
      patientId: distinct('patientId'),
      accessionNumber: distinct('accessionNumber'),
      patientName: distinct('patientName'),
      birthDate: distinct('birthDate'),
    };
    const mismatches: Editable[] = [];
    if (expected) {
      for (const k of Object.keys(values) as Editable[]) {
        const differs = list.some((f) => norm(f.header?.[k] ?? '') !== norm(expected[k]));
        if (differs && expected[k] !== '') mismatches.push(k);
      }
    }
    return {
      studyInstanceUid: uid,
      files: list,
      values,
      studyDate: h.studyDate,
      modalities: [...new Set(list.map((f) => f.header?.modality ?? '').filter(Boolean))],
      series: new Set(list.map((f) => f.header?.seriesInstanceUid)).size,
      mismatches,
    };
  });
}

/** Applies the tag editor's corrections to a study's files; each file records what changed. */
export async function applyCorrections(study: StudySummary, expected: Expected, which: Editable[]): Promise<void> {
  for (const f of study.files) {
    const values: Partial<Record<Editable, string>> = {};
    const notes: string[] = [];
    for (const k of which) {
      const old = f.header?.[k] ?? '';
      if (norm(old) === norm(expected[k])) continue;
      values[k] = expected[k];
      notes.push(`${k}: "${old}" → "${expected[k]}"`);
    }
    if (notes.length === 0) continue;
    const bytes = correct(await f.blob.arrayBuffer(), values);
    f.blob = new Blob([bytes]);
    f.header = readHeader(bytes);
    f.corrections.push(...notes);
  }
}

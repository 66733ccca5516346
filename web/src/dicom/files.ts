/**
 * Gathers what the user dropped or picked: files, whole folders (File System Access entries of a drop, or an
 * `<input webkitdirectory>`), zip archives (unpacked in the browser with fflate) and DICOMDIR media (PS3.10: the
 * DICOMDIR itself is an index and is not uploaded; the files it references are in the same folder and are).
 */
import { unzipSync } from 'fflate';

export interface Picked {
  /** Path within what was dropped (folder/…/name), for display. */
  readonly path: string;
  readonly blob: Blob;
}

async function readEntry(entry: FileSystemEntry, out: Picked[]): Promise<void> {
  if (entry.isFile) {
    const file = await new Promise<File>((resolve, reject) => (entry as FileSystemFileEntry).file(resolve, reject));
    out.push({ path: entry.fullPath.replace(/^\//, ''), blob: file });
    return;
  }
  if (entry.isDirectory) {
    const reader = (entry as FileSystemDirectoryEntry).createReader();
    // readEntries answers in chunks (about 100 entries each) until it answers an empty list.
    for (;;) {
      const chunk = await new Promise<FileSystemEntry[]>((resolve, reject) => reader.readEntries(resolve, reject));
      if (chunk.length === 0) break;
      for (const e of chunk) await readEntry(e, out);
    }
  }
}

/** Everything in a drop, folders walked recursively. */
export async function fromDrop(dt: DataTransfer): Promise<Picked[]> {
  const out: Picked[] = [];
  const entries = [...dt.items].map((i) => i.webkitGetAsEntry?.()).filter((e): e is FileSystemEntry => !!e);
  if (entries.length > 0) {
    for (const e of entries) await readEntry(e, out);
  } else {
    for (const f of [...dt.files]) out.push({ path: f.name, blob: f });
  }
  return expandZips(out);
}

/** The files of an `<input type=file multiple>` or `<input webkitdirectory>`. */
export async function fromInput(list: FileList): Promise<Picked[]> {
  return expandZips([...list].map((f) => ({ path: f.webkitRelativePath || f.name, blob: f })));
}

const ZIP_MAGIC = [0x50, 0x4b, 0x03, 0x04];

async function isZip(p: Picked): Promise<boolean> {
  if (/\.zip$/i.test(p.path)) return true;
  const head = new Uint8Array(await p.blob.slice(0, 4).arrayBuffer());
  return ZIP_MAGIC.every((b, i) => head[i] === b);
}

/** Replaces each zip archive by its files (directories and empty entries left out). */
export async function expandZips(files: Picked[]): Promise<Picked[]> {
  const out: Picked[] = [];
  for (const p of files) {
    if (!(await isZip(p))) {
      out.push(p);
      continue;
    }
    const entries = unzipSync(new Uint8Array(await p.blob.arrayBuffer()));
    for (const [name, bytes] of Object.entries(entries)) {
      if (name.endsWith('/') || bytes.length === 0) continue;
      out.push({ path: `${p.path}/${name}`, blob: new Blob([bytes as Uint8Array<ArrayBuffer>]) });
    }
  }
  return out;
}

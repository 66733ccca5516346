import { randomBytes } from 'node:crypto';
import { open, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import cliProgress from 'cli-progress';
import { DicomAttributeError, readDicomInstance } from '../imaging/dicom-instance.ts';
import {
  BackendAuthError,
  BackendTokenSource,
  DEFAULT_UPLOAD_SCOPE,
  discoverTokenEndpoint,
  loadSigningKey,
} from './backend-token.ts';
import { EhrError, type ErrorCode } from '../errors/base.ts';

/**
 * `bin/ehr upload <files or folders...> --url URL --token TOKEN|--client ID --key FILE`: a STOW-RS client (DICOM
 * PS3.18 §10.5) for people with a folder of images. With `--client` it authenticates as a SMART Backend Services
 * client (see backend-token.ts) and renews its token during long runs. Walks folders, skips non-DICOM files with a
 * note, groups instances by study, sends batches (one study per request) with bounded concurrency, shows progress,
 * and prints a per-study summary and every rejected file with its reason. Exit status 1 when anything was rejected or a request failed.
 */

const USAGE = `usage: bin/ehr upload <files or folders...> --url URL [--token TOKEN | --client ID --key FILE] [options]

  --url URL          the facade's base URL (e.g. http://localhost:8000); STOW-RS goes to URL/dicom-web/studies
  --token TOKEN      bearer access token (or EHR_TOKEN); mint one in development with bin/ehr token
  --client ID        authenticate as a SMART Backend Services client (client_credentials + private_key_jwt)
  --key FILE         its private key: a JWK or JWKS (JSON) or a PKCS#8 PEM key (needs --alg)
  --alg ALG          signing algorithm (ES384, RS384, ES256, RS256, PS256, PS384; default from the JWK)
  --kid KID          key id for the assertion header (default the JWK's kid; picks the key in a JWKS)
  --scope SCOPES     scopes to ask for (default "${DEFAULT_UPLOAD_SCOPE}")
  --token-url URL    token endpoint (default token_endpoint of URL/fhir/.well-known/smart-configuration)
  --concurrency N    requests in flight at once (default 2)
  --batch N          instances per request, at most (default 20; a request also stays under 64 MB)
  --no-progress      plain lines even on a terminal
`;

export class UploadUsageError extends EhrError {
  override readonly code: ErrorCode = 'EHR_UPLOAD_USAGE';
  override name = 'UploadUsageError';
}

interface Options {
  paths: string[];
  url: string;
  token: string | undefined;
  /** SMART Backend Services (`--client`): then `token` is unused. */
  client: { id: string; key: string; alg?: string; kid?: string; scope: string; tokenUrl?: string } | undefined;
  concurrency: number;
  batch: number;
  progress: boolean;
}

export function parseUploadArgs(argv: string[], env: NodeJS.ProcessEnv): Options {
  const o: Options = {
    paths: [],
    url: '',
    token: env['EHR_TOKEN'],
    client: undefined,
    concurrency: 2,
    batch: 20,
    progress: true,
  };
  let tokenFlag = false;
  const c: Partial<NonNullable<Options['client']>> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new UploadUsageError(`${a} needs a value`);
      return v;
    };
    if (a === '--url') o.url = value().replace(/\/+$/, '');
    else if (a === '--token') {
      o.token = value();
      tokenFlag = true;
    } else if (a === '--client') c.id = value();
    else if (a === '--key') c.key = value();
    else if (a === '--alg') c.alg = value();
    else if (a === '--kid') c.kid = value();
    else if (a === '--scope') c.scope = value();
    else if (a === '--token-url') c.tokenUrl = value().replace(/\/+$/, '');
    else if (a === '--concurrency') o.concurrency = Number(value());
    else if (a === '--batch') o.batch = Number(value());
    else if (a === '--no-progress') o.progress = false;
    else if (a.startsWith('--')) throw new UploadUsageError(`unknown option ${a}`);
    else o.paths.push(a);
  }
  if (o.paths.length === 0) throw new UploadUsageError('no files or folders given');
  if (!/^https?:\/\//.test(o.url)) throw new UploadUsageError('--url must be an http(s) URL');
  if (c.id !== undefined) {
    if (tokenFlag) throw new UploadUsageError('give either --token or --client, not both');
    if (c.key === undefined) throw new UploadUsageError('--client needs --key FILE (its private key)');
    if (c.tokenUrl !== undefined && !/^https?:\/\//.test(c.tokenUrl))
      throw new UploadUsageError('--token-url must be an http(s) URL');
    if (c.scope !== undefined && c.scope.trim() === '') throw new UploadUsageError('--scope must not be empty');
    o.client = { ...c, id: c.id, key: c.key, scope: c.scope ?? DEFAULT_UPLOAD_SCOPE };
  } else {
    const stray = (
      [
        ['--key', c.key],
        ['--alg', c.alg],
        ['--kid', c.kid],
        ['--scope', c.scope],
        ['--token-url', c.tokenUrl],
      ] as const
    ).find(([, v]) => v !== undefined);
    if (stray) throw new UploadUsageError(`${stray[0]} is only used with --client`);
  }
  for (const [k, v] of [
    ['--concurrency', o.concurrency],
    ['--batch', o.batch],
  ] as const) {
    if (!Number.isInteger(v) || v < 1 || v > 1000) throw new UploadUsageError(`${k} must be an integer from 1 to 1000`);
  }
  return o;
}

export interface FileEntry {
  path: string;
  size: number;
  studyUid: string;
  sopUid: string;
}

/** Every file under the given paths (folders recursively, in name order). */
async function* walk(path: string): AsyncGenerator<string> {
  const s = await stat(path);
  if (!s.isDirectory()) {
    yield path;
    return;
  }
  for (const e of (await readdir(path, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    yield* walk(join(path, e.name));
  }
}

async function isPart10(path: string): Promise<boolean> {
  const fh = await open(path, 'r');
  try {
    const b = Buffer.alloc(132);
    const { bytesRead } = await fh.read(b, 0, 132, 0);
    return bytesRead === 132 && b.toString('latin1', 128, 132) === 'DICM';
  } finally {
    await fh.close();
  }
}

/** DICOM files with their study; notes for the files skipped. */
export async function scan(paths: string[], note: (line: string) => void): Promise<FileEntry[]> {
  const out: FileEntry[] = [];
  for (const p of paths) {
    for await (const f of walk(p)) {
      if (!(await isPart10(f))) {
        note(`skipping ${f}: not a DICOM Part 10 file`);
        continue;
      }
      try {
        const inst = readDicomInstance(await readFile(f));
        out.push({ path: f, size: (await stat(f)).size, studyUid: inst.studyInstanceUid, sopUid: inst.sopInstanceUid });
      } catch (err) {
        const why = err instanceof DicomAttributeError ? err.message : 'unreadable DICOM';
        note(`skipping ${f}: ${why}`);
      }
    }
  }
  return out;
}

/** Batches of one study each, at most `max` files and ~64 MB. */
export function batches(files: FileEntry[], max: number, maxBytes = 64 * 1024 * 1024): FileEntry[][] {
  const byStudy = new Map<string, FileEntry[]>();
  for (const f of files) byStudy.set(f.studyUid, [...(byStudy.get(f.studyUid) ?? []), f]);
  const out: FileEntry[][] = [];
  for (const list of byStudy.values()) {
    let cur: FileEntry[] = [];
    let bytes = 0;
    for (const f of list) {
      if (cur.length > 0 && (cur.length >= max || bytes + f.size > maxBytes)) {
        out.push(cur);
        cur = [];
        bytes = 0;
      }
      cur.push(f);
      bytes += f.size;
    }
    if (cur.length) out.push(cur);
  }
  return out;
}

type Item = Record<string, { Value?: unknown[] }>;
const v = (i: Item | undefined, tag: string) => i?.[tag]?.Value?.[0];

interface StudyTally {
  stored: number;
  rejected: number;
}

/** Where the bearer token comes from: fixed (`--token`) or a backend client's, renewed when due or refused. */
interface Auth {
  token(): Promise<string | undefined>;
  /** The server refused `token` with 401: true when a new one can be tried. */
  refused(token: string): boolean;
}

async function authFor(o: Options): Promise<Auth> {
  const c = o.client;
  if (!c) return { token: async () => o.token || undefined, refused: () => false };
  let text: string;
  try {
    text = await readFile(c.key, 'utf8');
  } catch (err) {
    throw new BackendAuthError(`cannot read --key ${c.key}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  const key = await loadSigningKey(text, { ...(c.alg ? { alg: c.alg } : {}), ...(c.kid ? { kid: c.kid } : {}) });
  const tokenUrl = c.tokenUrl ?? (await discoverTokenEndpoint(`${o.url}/fhir`));
  const source = new BackendTokenSource({ clientId: c.id, key, scope: c.scope, tokenUrl });
  const first = await source.current();
  console.error(`authenticated as backend client ${c.id} at ${tokenUrl} (scope: ${first.scope})`);
  return {
    token: async () => {
      try {
        return await source.token();
      } catch (err) {
        throw new BackendAuthError(`could not renew the access token: ${(err as Error).message}`);
      }
    },
    refused: (token) => {
      source.invalidate(token);
      return true;
    },
  };
}

async function send(
  o: Options,
  auth: Auth,
  batch: FileEntry[],
): Promise<{ stored: string[]; rejected: Map<string, string> }> {
  const boundary = `ehr-upload-${randomBytes(12).toString('hex')}`;
  const chunks: Buffer[] = [];
  for (const f of batch) {
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`), await readFile(f.path));
    chunks.push(Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  const payload = Buffer.concat(chunks);
  let res: Response;
  for (let attempt = 1; ; attempt++) {
    const token = await auth.token();
    res = await fetch(`${o.url}/dicom-web/studies`, {
      method: 'POST',
      headers: {
        'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}`,
        accept: 'application/dicom+json',
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      body: payload,
    });
    // A 401 stored nothing (authentication is checked before the body is read): retry once with a new token.
    if (res.status !== 401 || attempt > 1 || !token || !auth.refused(token)) break;
    await res.body?.cancel();
  }
  const rejected = new Map<string, string>();
  const stored: string[] = [];
  const text = await res.text();
  let body: Item = {};
  try {
    body = JSON.parse(text) as Item;
  } catch {
    // not JSON: reported below
  }
  if (![200, 202, 409].includes(res.status)) {
    const reason = `HTTP ${res.status}: ${res.headers.get('warning') ?? text.slice(0, 200)}`;
    for (const f of batch) rejected.set(f.sopUid, reason);
    return { stored, rejected };
  }
  const details = new Map<string, string>();
  for (const w of (res.headers.get('warning') ?? '').split(/,\s*(?=299 )/)) {
    const m = /^299 \S+ "([^:]+): (.*)"$/.exec(w.trim());
    if (m) details.set(m[1]!, m[2]!.replace(/\\(.)/g, '$1'));
  }
  for (const i of (body['00081199']?.Value ?? []) as Item[]) stored.push(String(v(i, '00081155')));
  for (const i of (body['00081198']?.Value ?? []) as Item[]) {
    const sop = String(v(i, '00081155') ?? '');
    const code = Number(v(i, '00081197')).toString(16).toUpperCase().padStart(4, '0');
    rejected.set(sop, details.get(sop) ?? `failed (0x${code}): ${String(v(i, '00000902') ?? '')}`);
  }
  return { stored, rejected };
}

export async function uploadCommand(argv: string[]): Promise<number> {
  if (argv[0] === '--help' || argv[0] === '-h') {
    process.stdout.write(USAGE);
    return 0;
  }
  const o = parseUploadArgs(argv, process.env);
  let auth: Auth;
  try {
    auth = await authFor(o);
  } catch (err) {
    if (!(err instanceof BackendAuthError)) throw err;
    console.error(`ehr upload: ${err.message}`);
    return 1;
  }
  const tty = o.progress && process.stderr.isTTY === true;
  const files = await scan(o.paths, (line) => console.error(line));
  const plan = batches(files, o.batch);
  const total = files.reduce((n, f) => n + f.size, 0);
  const mb = (b: number) => (b / 1048576).toFixed(1);
  const started = Date.now();
  const bar = tty
    ? new cliProgress.SingleBar(
        { format: '{bar} {value}/{total} files | {done}/{all} MB | {rate} MB/s | ETA {eta}s', stream: process.stderr },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  bar?.start(files.length, 0, { done: '0.0', all: mb(total), rate: '0.0' });
  console.log(`uploading ${files.length} files (${mb(total)} MB) in ${plan.length} requests to ${o.url}`);
  const perStudy = new Map<string, StudyTally>();
  const rejectedFiles: { path: string; reason: string }[] = [];
  let sentFiles = 0;
  let sentBytes = 0;
  const queue = [...plan];
  const worker = async () => {
    for (let b = queue.shift(); b; b = queue.shift()) {
      let result: Awaited<ReturnType<typeof send>>;
      try {
        result = await send(o, auth, b);
      } catch (err) {
        result = {
          stored: [],
          rejected: new Map(b.map((f) => [f.sopUid, `request failed: ${(err as Error).message}`])),
        };
      }
      const tally = perStudy.get(b[0]!.studyUid) ?? { stored: 0, rejected: 0 };
      for (const f of b) {
        const reason = result.rejected.get(f.sopUid);
        if (reason !== undefined) rejectedFiles.push({ path: f.path, reason });
        if (reason !== undefined || !result.stored.includes(f.sopUid)) tally.rejected++;
        else tally.stored++;
        if (reason === undefined && !result.stored.includes(f.sopUid))
          rejectedFiles.push({ path: f.path, reason: 'not in the response' });
      }
      perStudy.set(b[0]!.studyUid, tally);
      sentFiles += b.length;
      sentBytes += b.reduce((n, f) => n + f.size, 0);
      const secs = (Date.now() - started) / 1000;
      if (bar)
        bar.update(sentFiles, { done: mb(sentBytes), all: mb(total), rate: (sentBytes / 1048576 / secs).toFixed(1) });
      else console.log(`sent ${sentFiles}/${files.length} files, ${mb(sentBytes)}/${mb(total)} MB`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(o.concurrency, plan.length) }, worker));
  bar?.stop();
  console.log('\nper study:');
  for (const [uid, t] of perStudy) console.log(`  ${uid}: ${t.stored} stored, ${t.rejected} rejected`);
  if (rejectedFiles.length) {
    console.log(`\nrejected (${rejectedFiles.length}):`);
    for (const r of rejectedFiles) console.log(`  ${r.path}: ${r.reason}`);
  }
  return rejectedFiles.length > 0 ? 1 : 0;
}

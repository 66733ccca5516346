/**
 * Batch and transaction Bundles (https://hl7.org/fhir/R4/http.html#transaction), the pure part: checking the
 * request Bundle, parsing each entry's `request.url`, assigning ids to the entries that create resources, resolving
 * `urn:uuid:` (and other fullUrl) references between entries, and the order in which a transaction runs its
 * entries (DELETE, then POST, then PUT/PATCH, then GET; writes that reference each other ordered so that a target is
 * written before the resource pointing at it).
 */
import { randomUUID } from 'node:crypto';
import type { Bundle, BundleEntry, Resource } from '@medplum/fhirtypes';
import { BadRequestError } from './errors.ts';
import { ID } from './http.ts';
import type { EntryMethod } from './entry-audit.ts';
import { parseFhirPath, pathSegments } from './rest/rest-path.ts';
import { type FhirType, isFhirType } from './registry.ts';

export type BundleKind = 'batch' | 'transaction';

/** What an entry's `request.url` addresses (relative to the FHIR base). */
export type EntryTarget =
  | { kind: 'search'; type: FhirType; query: Record<string, string[]> }
  | { kind: 'type'; type: FhirType; query: Record<string, string[]> }
  | { kind: 'instance'; type: FhirType; id: string }
  | { kind: 'history'; type: FhirType; id?: string }
  | { kind: 'vread'; type: FhirType; id: string; vid: string }
  | { kind: 'everything'; type: 'Patient'; id: string; query: Record<string, string[]> };

export interface PlannedEntry {
  /** Index in the request Bundle (the response keeps the request's order). */
  index: number;
  method: EntryMethod;
  url: string;
  target: EntryTarget;
  resource?: Resource;
  /** JSON Patch operations (a Binary entry's data, or the `resource` array some clients send). */
  patch?: unknown[];
  /** The id a create will use (assigned here so that references to its fullUrl can be rewritten first). */
  newId?: string;
  ifNoneExist?: string;
  ifMatch?: string;
  /** The entry's fullUrl, when other entries may reference it. */
  fullUrl?: string;
}

/** An error of one entry: the entry index is part of the message, as clients show it. */
export function entryError(index: number, message: string): BadRequestError {
  return new BadRequestError(`Bundle.entry[${index}]: ${message}`, [`Bundle.entry[${index}]`]);
}

function queryOf(search: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [k, v] of new URLSearchParams(search)) out[k] = [...(out[k] ?? []), v];
  return out;
}

/** Parses `request.url` (relative, or absolute under our base) into what it addresses. */
export function parseEntryUrl(raw: string, fhirBase: string, index: number): EntryTarget {
  let url = raw.startsWith(`${fhirBase}/`) ? raw.slice(fhirBase.length + 1) : raw;
  if (/^[a-z]+:/i.test(url)) throw entryError(index, `request.url ${JSON.stringify(raw)} is not on this server`);
  url = url.replace(/^\/+/, '');
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const query = queryOf(q < 0 ? '' : url.slice(q + 1));
  const segments = pathSegments(path).map((s) => decodeURIComponent(s));
  const p = parseFhirPath(segments);
  const type = p.type;
  if (!type || !isFhirType(type)) throw entryError(index, `request.url names no resource type served here`);
  if (p.kind === 'type') return { kind: 'type', type, query };
  if (p.kind === 'type-search' && p.depth === 2) return { kind: 'search', type, query };
  if (p.kind === 'type-history' && p.depth === 2) return { kind: 'history', type };
  const id = p.id;
  if (!id || !ID.test(id)) throw entryError(index, `invalid id in request.url ${JSON.stringify(raw)}`);
  if (p.kind === 'instance') return { kind: 'instance', type, id };
  if (p.kind === 'operation' && type === 'Patient' && p.depth === 3 && segments[2] === '$everything') {
    return { kind: 'everything', type, id, query };
  }
  if (p.kind === 'instance-history' && p.depth === 3) return { kind: 'history', type, id };
  if (p.kind === 'vread' && p.depth === 4 && p.versionId) return { kind: 'vread', type, id, vid: p.versionId };
  throw entryError(index, `request.url ${JSON.stringify(raw)} is not supported in a Bundle`);
}

const METHODS = new Set<EntryMethod>(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']);

/** Which (method, target) pairs an entry may have. */
function checkCombination(method: EntryMethod, target: EntryTarget, index: number): void {
  const ok =
    method === 'GET' || method === 'HEAD'
      ? target.kind !== 'search'
      : method === 'POST'
        ? target.kind === 'type' || target.kind === 'search'
        : target.kind === 'instance';
  if (!ok)
    throw entryError(index, `${method} ${target.kind === 'type' ? 'on a type' : 'on this url'} is not supported`);
}

/**
 * Checks the request Bundle and plans its entries. Anything malformed is a 400 naming the entry; nothing has been
 * read or written yet.
 */
export function planBundle(body: unknown, fhirBase: string): { kind: BundleKind; entries: PlannedEntry[] } {
  const bundle = body as Bundle | undefined;
  if (!bundle || typeof bundle !== 'object' || bundle.resourceType !== 'Bundle') {
    throw new BadRequestError('POST to the base expects a Bundle of type batch or transaction', ['Bundle']);
  }
  if (bundle.type !== 'batch' && bundle.type !== 'transaction') {
    throw new BadRequestError(`Bundle.type must be batch or transaction, not ${JSON.stringify(bundle.type)}`, [
      'Bundle.type',
    ]);
  }
  if (bundle.entry !== undefined && !Array.isArray(bundle.entry)) {
    throw new BadRequestError('Bundle.entry must be an array', ['Bundle.entry']);
  }
  const entries = (bundle.entry ?? []).map((e: BundleEntry, index) => planEntry(e, index, fhirBase));
  const seen = new Set<string>();
  for (const e of entries) {
    if (!e.fullUrl) continue;
    if (seen.has(e.fullUrl)) throw entryError(e.index, `fullUrl ${e.fullUrl} appears twice`);
    seen.add(e.fullUrl);
  }
  if (bundle.type === 'transaction') {
    const touched = new Set<string>();
    for (const e of entries) {
      if (e.target.kind !== 'instance' || e.method === 'GET' || e.method === 'HEAD') continue;
      const key = `${e.target.type}/${e.target.id}`;
      if (touched.has(key)) throw entryError(e.index, `${key} is written by two entries of the transaction`);
      touched.add(key);
    }
  }
  return { kind: bundle.type, entries };
}

function planEntry(e: BundleEntry, index: number, fhirBase: string): PlannedEntry {
  if (!e || typeof e !== 'object') throw entryError(index, 'an entry must be an object');
  const req = e.request;
  if (!req || typeof req.method !== 'string' || typeof req.url !== 'string' || req.url === '') {
    throw entryError(index, 'request.method and request.url are required');
  }
  const method = req.method.toUpperCase() as EntryMethod;
  if (!METHODS.has(method)) throw entryError(index, `unsupported request.method ${JSON.stringify(req.method)}`);
  const target = parseEntryUrl(req.url, fhirBase, index);
  checkCombination(method, target, index);
  const out: PlannedEntry = { index, method, url: req.url, target };
  if (typeof e.fullUrl === 'string' && e.fullUrl !== '') out.fullUrl = e.fullUrl;
  if (req.ifNoneExist) out.ifNoneExist = req.ifNoneExist;
  if (req.ifMatch) out.ifMatch = req.ifMatch;
  if (method === 'PATCH') {
    const r = e.resource as (Resource & { data?: string; contentType?: string }) | unknown[] | undefined;
    if (Array.isArray(r)) out.patch = r;
    else if (r?.resourceType === 'Binary' && typeof r.data === 'string') {
      try {
        out.patch = JSON.parse(Buffer.from(r.data, 'base64').toString('utf8')) as unknown[];
      } catch {
        throw entryError(index, 'the Binary of a PATCH entry must hold a JSON Patch');
      }
    }
    if (!Array.isArray(out.patch)) throw entryError(index, 'a PATCH entry needs a JSON Patch (Binary resource)');
    return out;
  }
  if (method === 'POST' || method === 'PUT') {
    const resource = e.resource;
    if (!resource || typeof resource !== 'object' || Array.isArray(resource)) {
      throw entryError(index, `a ${method} entry needs a resource`);
    }
    if (resource.resourceType !== target.type) {
      throw entryError(index, `resource type ${resource.resourceType} does not match request.url ${req.url}`);
    }
    if (method === 'PUT' && target.kind === 'instance' && resource.id !== target.id) {
      throw entryError(index, `the resource's id must equal the id in request.url`);
    }
    out.resource = structuredClone(resource);
    if (method === 'POST') out.newId = randomUUID();
  } else if (e.resource !== undefined) {
    throw entryError(index, `a ${method} entry carries no resource`);
  }
  return out;
}

/**
 * The local reference each fullUrl stands for: `Type/newId` for creates, `Type/id` for updates. Conditional creates
 * that matched an existing resource are resolved by the caller (`matched`).
 */
export function referenceMap(entries: readonly PlannedEntry[], matched: ReadonlyMap<number, string>) {
  const map = new Map<string, string>();
  for (const e of entries) {
    if (!e.fullUrl) continue;
    if (e.method === 'POST' && e.newId) map.set(e.fullUrl, `${e.target.type}/${matched.get(e.index) ?? e.newId}`);
    else if (e.method === 'PUT' && e.target.kind === 'instance') map.set(e.fullUrl, `${e.target.type}/${e.target.id}`);
  }
  return map;
}

/** Rewrites every `reference` (and the `url` of a `Attachment`-free Reference) naming a fullUrl of the Bundle. */
export function rewriteReferences(value: unknown, map: ReadonlyMap<string, string>): void {
  if (Array.isArray(value)) {
    for (const v of value) rewriteReferences(v, map);
    return;
  }
  if (!value || typeof value !== 'object') return;
  const rec = value as Record<string, unknown>;
  for (const [k, v] of Object.entries(rec)) {
    if (k === 'reference' && typeof v === 'string') {
      const hash = v.indexOf('#');
      const base = hash > 0 ? v.slice(0, hash) : v;
      const to = map.get(base);
      if (to) rec[k] = hash > 0 ? `${to}${v.slice(hash)}` : to;
    } else if (typeof v === 'object') rewriteReferences(v, map);
  }
}

/** `urn:uuid:` / `urn:oid:` references that name no entry of the Bundle: a transaction cannot resolve them. */
export function unresolvedUrns(resource: Resource): string[] {
  const out: string[] = [];
  const walk = (value: unknown) => {
    if (Array.isArray(value)) return value.forEach(walk);
    if (!value || typeof value !== 'object') return;
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      if (k === 'reference' && typeof v === 'string' && /^urn:(uuid|oid):/.test(v)) out.push(v);
      else if (typeof v === 'object') walk(v);
    }
  };
  walk(resource);
  return out;
}

function referencedKeys(resource: Resource | undefined): Set<string> {
  const out = new Set<string>();
  const walk = (value: unknown) => {
    if (Array.isArray(value)) return value.forEach(walk);
    if (!value || typeof value !== 'object') return;
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      if (k === 'reference' && typeof v === 'string') out.add(v.split('#')[0] ?? v);
      else if (typeof v === 'object') walk(v);
    }
  };
  walk(resource);
  return out;
}

const PHASE: Record<EntryMethod, number> = { DELETE: 0, POST: 1, PUT: 1, PATCH: 2, GET: 3, HEAD: 3 };

/**
 * The order a transaction runs its entries in (http.html#trules: DELETE, POST, PUT/PATCH, GET). Creates and
 * updates are one phase, ordered so that an entry referencing another written entry comes after it (references
 * already rewritten to `Type/id`); a reference cycle keeps the Bundle's order for the entries in it.
 */
export function transactionOrder(entries: readonly PlannedEntry[]): PlannedEntry[] {
  const written = new Map<string, PlannedEntry>();
  for (const e of entries) {
    if (e.method === 'POST' && e.newId) written.set(`${e.target.type}/${e.newId}`, e);
    if (e.method === 'PUT' && e.target.kind === 'instance') written.set(`${e.target.type}/${e.target.id}`, e);
  }
  const out: PlannedEntry[] = [];
  for (const phase of [0, 1, 2, 3]) {
    const list = entries.filter((e) => PHASE[e.method] === phase);
    if (phase !== 1) {
      out.push(...list);
      continue;
    }
    const done = new Set<PlannedEntry>();
    const visiting = new Set<PlannedEntry>();
    const visit = (e: PlannedEntry) => {
      if (done.has(e) || visiting.has(e)) return;
      visiting.add(e);
      for (const key of referencedKeys(e.resource)) {
        const dep = written.get(key);
        if (dep && dep !== e) visit(dep);
      }
      visiting.delete(e);
      done.add(e);
      out.push(e);
    };
    for (const e of list) visit(e);
  }
  return out;
}

/**
 * SMART on FHIR scopes, v1 and v2, parsed into data the access policy consumes. Pure.
 *
 * Grammar (SMART App Launch 2.x, https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html):
 *   ( patient | user | system ) "/" ( ResourceType | "*" ) "." ( v2: [c][r][u][d][s] in this order | v1: read | write | * )
 *   optionally followed by "?" param=value ("&" param=value)*   (v2 granular scopes, e.g. ImagingStudy.rs?modality=CT)
 * v1 `read` = read + search (v2 `rs`), v1 `write` = create + update + delete (v2 `cud`), v1 `*` = `cruds`.
 * Context scopes: openid, fhirUser, profile, launch, launch/patient, offline_access, online_access.
 */
import type { Interaction, SearchRestriction } from './access.ts';

export type ScopeContext = 'patient' | 'user' | 'system';

export interface ResourceScope {
  readonly raw: string;
  readonly context: ScopeContext;
  /** A resource type or `*`. */
  readonly resourceType: string;
  readonly interactions: ReadonlySet<Interaction>;
  /** Granular restrictions, ANDed (`?a=1&b=2`). Empty for a plain scope. */
  readonly restrictions: readonly SearchRestriction[];
}

export interface ParsedScopes {
  readonly resource: readonly ResourceScope[];
  readonly openid: boolean;
  readonly fhirUser: boolean;
  readonly launchPatient: boolean;
  readonly offlineAccess: boolean;
  readonly onlineAccess: boolean;
  /** Recognised non-resource scopes, as given (openid, fhirUser, launch/patient...). */
  readonly context: readonly string[];
  /** Anything not understood; never grants anything. */
  readonly unknown: readonly string[];
}

/** The v2 permission letters in their required order. */
const LETTERS: readonly (readonly [string, Interaction])[] = [
  ['c', 'create'],
  ['r', 'read'],
  ['u', 'update'],
  ['d', 'delete'],
  ['s', 'search'],
];

const V1: Record<string, readonly Interaction[]> = {
  read: ['read', 'search'],
  write: ['create', 'update', 'delete'],
  '*': ['create', 'read', 'update', 'delete', 'search'],
};

export const CONTEXT_SCOPES: readonly string[] = [
  'openid',
  'fhirUser',
  'profile',
  'launch',
  'launch/patient',
  'offline_access',
  'online_access',
];

const RESOURCE_SCOPE = /^(patient|user|system)\/(\*|[A-Z][A-Za-z]{1,63})\.([a-z*]{1,5})(?:\?(.+))?$/;
const PARAM = /^[a-z_][a-z0-9_.:-]{0,63}$/i;

function parseInteractions(perm: string): Set<Interaction> | undefined {
  const v1 = V1[perm];
  if (v1) return new Set(v1);
  // v2: a non-empty subsequence of "cruds", in order, no repeats.
  let at = 0;
  const out = new Set<Interaction>();
  for (const ch of perm) {
    while (at < LETTERS.length && LETTERS[at]?.[0] !== ch) at++;
    const letter = LETTERS[at];
    if (!letter) return undefined;
    out.add(letter[1]);
    at++;
  }
  return out.size > 0 ? out : undefined;
}

function parseRestrictions(query: string | undefined): SearchRestriction[] | undefined {
  if (query === undefined) return [];
  const out: SearchRestriction[] = [];
  for (const part of query.split('&')) {
    const eq = part.indexOf('=');
    if (eq <= 0) return undefined;
    let code: string;
    let value: string;
    try {
      code = decodeURIComponent(part.slice(0, eq));
      value = decodeURIComponent(part.slice(eq + 1));
    } catch {
      return undefined;
    }
    if (!PARAM.test(code) || value === '' || value.length > 256) return undefined;
    out.push({ code, value });
  }
  return out;
}

/** Parses one resource scope, or `undefined` if it is not one (malformed scopes grant nothing). */
export function parseResourceScope(raw: string): ResourceScope | undefined {
  const m = RESOURCE_SCOPE.exec(raw);
  if (!m) return undefined;
  const interactions = parseInteractions(m[3]!);
  const restrictions = parseRestrictions(m[4]);
  if (!interactions || !restrictions) return undefined;
  return { raw, context: m[1] as ScopeContext, resourceType: m[2]!, interactions, restrictions };
}

/** Parses a space-separated scope string (RFC 6749 §3.3). */
export function parseScopes(scope: string | readonly string[] | undefined): ParsedScopes {
  const list = Array.isArray(scope) ? scope : typeof scope === 'string' ? scope.split(' ') : [];
  const resource: ResourceScope[] = [];
  const context: string[] = [];
  const unknown: string[] = [];
  for (const s of new Set(list.filter((x) => x !== ''))) {
    if (CONTEXT_SCOPES.includes(s)) {
      context.push(s);
      continue;
    }
    const r = parseResourceScope(s);
    if (r) resource.push(r);
    else unknown.push(s);
  }
  return {
    resource,
    context,
    unknown,
    openid: context.includes('openid'),
    fhirUser: context.includes('fhirUser'),
    launchPatient: context.includes('launch/patient'),
    offlineAccess: context.includes('offline_access'),
    onlineAccess: context.includes('online_access'),
  };
}

/** Does `scope` cover `interaction` on `resourceType` (ignoring restrictions)? */
export function scopeCovers(scope: ResourceScope, interaction: Interaction, resourceType: string): boolean {
  return (scope.resourceType === '*' || scope.resourceType === resourceType) && scope.interactions.has(interaction);
}

/** Formats a resource scope in v2 syntax. */
export function formatScope(
  context: ScopeContext,
  resourceType: string,
  interactions: ReadonlySet<Interaction>,
  restrictions: readonly SearchRestriction[],
): string {
  const letters = LETTERS.filter(([, i]) => interactions.has(i))
    .map(([l]) => l)
    .join('');
  const query = restrictions.map((r) => `${encodeURIComponent(r.code)}=${encodeURIComponent(r.value)}`).join('&');
  return `${context}/${resourceType}.${letters}${query ? `?${query}` : ''}`;
}

function sameRestriction(a: SearchRestriction, b: SearchRestriction): boolean {
  return a.code === b.code && a.value === b.value;
}

/**
 * The scopes a client may be granted: the requested scopes narrowed by the client's scope ceiling
 * (RFC 6749 §3.3: the server may grant fewer scopes than requested). Each requested resource scope is intersected with
 * every ceiling scope of the same context (types: `*` narrows to the other side; interactions: intersection;
 * restrictions: union, i.e. more restrictive). Context scopes are kept only when the ceiling lists them.
 */
export function narrowScopes(requested: string, ceiling: string): string[] {
  const req = parseScopes(requested);
  const cap = parseScopes(ceiling);
  const out = new Set<string>();
  for (const c of req.context) if (cap.context.includes(c)) out.add(c);
  for (const r of req.resource) {
    for (const c of cap.resource) {
      if (r.context !== c.context) continue;
      if (r.resourceType !== '*' && c.resourceType !== '*' && r.resourceType !== c.resourceType) continue;
      const type = r.resourceType === '*' ? c.resourceType : r.resourceType;
      const interactions = new Set([...r.interactions].filter((i) => c.interactions.has(i)));
      if (interactions.size === 0) continue;
      const restrictions = [...r.restrictions];
      for (const x of c.restrictions) if (!restrictions.some((y) => sameRestriction(x, y))) restrictions.push(x);
      const covered =
        (c.resourceType === '*' || c.resourceType === r.resourceType) &&
        interactions.size === r.interactions.size &&
        restrictions.length === r.restrictions.length;
      out.add(covered ? r.raw : formatScope(r.context, type, interactions, restrictions));
    }
  }
  return [...out];
}

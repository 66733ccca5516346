/**
 * The patient's "Access history" (pure): AuditEvents about the signed-in patient, as the server returns them to a
 * patient-context token (redacted to the patient's own compartment, src/audit/redact.ts on the server), turned into
 * rows a person reads: when, who (role and name as far as the event tells), what, outcome.
 */

export interface AuditEvent {
  id?: string;
  recorded?: string;
  type?: { code?: string; display?: string };
  subtype?: { code?: string; display?: string }[];
  action?: string;
  outcome?: string;
  agent?: {
    who?: { reference?: string; display?: string; identifier?: { value?: string } };
    name?: string;
    role?: { text?: string }[];
    requestor?: boolean;
  }[];
  entity?: {
    what?: { reference?: string; identifier?: { value?: string; type?: { coding?: { code?: string }[] } } };
    role?: { code?: string };
    description?: string;
    detail?: { type?: string; valueString?: string }[];
  }[];
}

export interface AccessRow {
  id: string;
  when: string;
  /** "You", or the role and name (or reference) of the user; "Unknown" when the event names nobody. */
  who: string;
  what: string;
  outcome: 'allowed' | 'refused' | 'failed';
}

/** DICOM event types (DCM, PS3.15 A.5.3) in words. */
const DICOM_TYPES: Record<string, string> = {
  '110104': 'images retrieved',
  '110106': 'images downloaded (export)',
  '110112': 'image search',
  '110114': 'sign-in or token',
};

const RESOURCE_TYPE = /^[A-Z][A-Za-z]{1,63}$/;

/** FHIR restful interactions in words. */
const INTERACTIONS: Record<string, string> = {
  read: 'read',
  vread: 'read (version)',
  'search-type': 'search',
  search: 'search',
  create: 'created',
  update: 'changed',
  patch: 'changed',
  delete: 'deleted',
  'history-instance': 'history',
};

function what(e: AuditEvent, self: string): string {
  const dicom = e.type?.code ? DICOM_TYPES[e.type.code] : undefined;
  const types = new Set<string>();
  for (const x of e.entity ?? []) {
    const ref = x.what?.reference;
    if (ref && !ref.startsWith('Patient/')) types.add(ref.split('/')[0] ?? ref);
    if (x.what?.identifier?.type?.coding?.some((c) => c.code === '110180')) types.add('imaging study');
    // A search names the resource type it searched (the BALP query entity's description).
    if (x.description && RESOURCE_TYPE.test(x.description)) types.add(x.description);
  }
  if (types.size === 0 && e.entity?.some((x) => x.what?.reference === self)) types.add('your details');
  const interaction = e.subtype?.map((s) => INTERACTIONS[s.code ?? ''] ?? s.display ?? s.code).find(Boolean);
  const head = dicom ?? interaction ?? e.type?.display ?? 'access';
  const text = types.size ? `${head}: ${[...types].join(', ')}` : head;
  // The record closing a viewing session (the server's transfer window) counts the requests it stands for.
  const requests = Number(e.entity?.flatMap((x) => x.detail ?? []).find((d) => d.type === 'retrievals')?.valueString);
  return requests > 1 ? `${text} (${requests} requests in one session)` : text;
}

/** The Practitioner references of the events' users, whose names the screen looks up (a shared type). */
export function practitionerRefs(events: readonly AuditEvent[]): string[] {
  const refs = new Set<string>();
  for (const e of events) {
    const ref = e.agent?.find((x) => x.requestor)?.who?.reference;
    if (ref?.startsWith('Practitioner/')) refs.add(ref);
  }
  return [...refs];
}

/** "You" for the patient's own accesses; else role and name (looked up in `names`) as the event carries them. */
function who(e: AuditEvent, self: string, names: ReadonlyMap<string, string>): string {
  const a = e.agent?.find((x) => x.requestor);
  if (!a) return 'Unknown';
  if (a.who?.reference === self) return 'You';
  const role = (a.role ?? [])
    .map((r) => r.text)
    .filter(Boolean)
    .join(', ');
  const ref = a.who?.reference;
  const name = (ref && names.get(ref)) ?? a.who?.display ?? a.name ?? ref ?? 'a user';
  return role ? `${role} (${name})` : name;
}

function outcome(code: string | undefined): AccessRow['outcome'] {
  if (code === '0' || code === undefined) return 'allowed';
  return code === '4' ? 'refused' : 'failed';
}

/** The rows, newest first. `self` is the patient's own reference (`Patient/{id}`); `names` by reference. */
export function accessRows(
  events: readonly AuditEvent[],
  self: string,
  names: ReadonlyMap<string, string> = new Map(),
): AccessRow[] {
  return events
    .map((e, i) => ({
      id: e.id ?? String(i),
      when: e.recorded ?? '',
      who: who(e, self, names),
      what: what(e, self),
      outcome: outcome(e.outcome),
    }))
    .sort((a, b) => b.when.localeCompare(a.when));
}

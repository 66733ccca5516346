/**
 * Query parameters of the WADO-RS and WADO-URI routes: each route declares an allow-list ({@link QueryRules}) and
 * {@link checkQuery} reads it. Every parameter is validated before anything is sent to Orthanc; an unknown parameter,
 * a repeated one or a malformed value is a {@link BadDicomWebRequestError} (400 with an ErrorComment). Only the values
 * a rule sends to `orthanc` reach Orthanc's query string, already checked against PS3.18 and Orthanc's own limits
 * (a rendered viewport of 100000×100000 makes Orthanc 1.10.1 allocate the whole image and crash).
 * QIDO-RS keys are open-ended (any attribute) and are validated by qido-query.ts instead. Pure: no I/O.
 *
 * - `accept` and `charset` query parameters: PS3.18 §8.3.3.1 and §8.3.3.2
 *   (https://dicom.nema.org/medical/dicom/current/output/html/part18.html#sect_8.3.3).
 * - Rendered parameters `annotation`, `quality`, `viewport`, `window`: PS3.18 §8.3.5.1.
 * - WADO-URI parameters: PS3.18 §9 (URI Service).
 */
import { BadDicomWebRequestError } from '../errors.ts';
import { hasControlOrBackslash, isUid } from '../qido-query.ts';

/**
 * Where an accepted value goes: `orthanc` (Orthanc's query string), `accept` (replaces the client's Accept header
 * upstream, PS3.18 §8.3.3.1) or `none` (validated, then not passed on: Orthanc does not implement it).
 */
export type ParamTarget = 'orthanc' | 'accept' | 'none';

export interface ParamRule {
  readonly to: ParamTarget;
  readonly required?: boolean;
  /** Validates a value and returns the value to pass on; throws {@link BadDicomWebRequestError} with the reason. */
  readonly check: (value: string, name: string) => string;
}

/** One route's allow-list: parameter name → rule. Anything not listed is refused. */
export type QueryRules = Readonly<Record<string, ParamRule>>;

export interface CheckedQuery {
  /** Name/value pairs for Orthanc's query string, in the client's order. */
  readonly orthanc: ReadonlyArray<readonly [string, string]>;
  /** The `accept` query parameter, when given: sent to Orthanc as the Accept header. */
  readonly accept?: string;
  /** Every accepted parameter's value (after its check), by name. */
  readonly values: ReadonlyMap<string, string>;
}

const bad = (message: string) => new BadDicomWebRequestError(message);
const show = (v: string) => `"${v.slice(0, 80)}"`;

/** Validates a query string (without `?`) against a route's rules. `route` names the route in error messages. */
export function checkQuery(rules: QueryRules, queryString: string, route: string): CheckedQuery {
  const orthanc: Array<readonly [string, string]> = [];
  const values = new Map<string, string>();
  for (const [name, raw] of new URLSearchParams(queryString)) {
    const rule = Object.hasOwn(rules, name) ? rules[name] : undefined;
    if (!rule) {
      const allowed = Object.keys(rules).join(', ') || 'none';
      throw bad(`Unsupported query parameter ${show(name)} for ${route} (allowed: ${allowed})`);
    }
    if (values.has(name)) throw bad(`${name.slice(0, 40)} is given more than once`);
    if (raw.length > 1024 || hasControlOrBackslash(raw)) throw bad(`${name}: value is not valid`);
    const value = rule.check(raw, name);
    values.set(name, value);
    if (rule.to === 'orthanc') orthanc.push([name, value]);
  }
  for (const [name, rule] of Object.entries(rules)) {
    if (rule.required && !values.has(name)) throw bad(`${name} is required`);
  }
  let accept: string | undefined;
  for (const [name, rule] of Object.entries(rules))
    if (rule.to === 'accept' && values.has(name)) accept = values.get(name);
  return { orthanc, values, ...(accept === undefined ? {} : { accept }) };
}

/** The names a route's rules pass on to Orthanc's query string (for tests and the documentation). */
export function forwardedNames(rules: QueryRules): string[] {
  return Object.keys(rules)
    .filter((k) => rules[k]?.to === 'orthanc')
    .sort();
}

// ---------------------------------------------------------------- value checks

/** A decimal integer within `[min, max]`. */
export function integerIn(value: string, name: string, min: number, max: number): number {
  if (!/^[+-]?\d{1,9}$/.test(value) || Number(value) < min || Number(value) > max) {
    throw bad(`${name} must be an integer from ${min} to ${max} (got ${show(value)})`);
  }
  return Number(value);
}

/** A decimal number as DICOM DS writes it (at most 16 characters, so always finite and small). */
const DECIMAL = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d{1,2})?$/;
export function decimal(value: string, name: string): number {
  if (value.length > 16 || !DECIMAL.test(value)) throw bad(`${name}: ${show(value)} is not a decimal number`);
  return Number(value);
}

/** A list of values from a fixed set, each at most once (`annotation=patient,technique`). */
function oneOfList(allowed: readonly string[]) {
  return (value: string, name: string): string => {
    const items = value.split(',');
    if (new Set(items).size !== items.length || items.some((i) => !allowed.includes(i))) {
      throw bad(`${name} must be a list of ${allowed.join(', ')} (got ${show(value)})`);
    }
    return value;
  };
}

/** Largest source region side or offset in a viewport (Rows and Columns are US: 65535 at most). */
const MAX_SOURCE = 65535;

/**
 * `viewport=vw,vh` or `viewport=vw,vh,sx,sy,sw,sh` (PS3.18 §8.3.5.1.3): vw and vh from 1 to `max` (the rendered
 * image is allocated at that size); sx, sy ≥ 0; sw, sh non-zero (negative flips), each may be empty (the default).
 */
export function viewport(max: number) {
  return (value: string, name: string): string => {
    const parts = value.split(',');
    if (parts.length !== 2 && parts.length !== 6) {
      throw bad(`${name} must be vw,vh or vw,vh,sx,sy,sw,sh (got ${show(value)})`);
    }
    const [vw = '', vh = '', sx = '', sy = '', sw = '', sh = ''] = parts;
    integerIn(vw, `${name} width`, 1, max);
    integerIn(vh, `${name} height`, 1, max);
    if (sx !== '') integerIn(sx, `${name} sx`, 0, MAX_SOURCE);
    if (sy !== '') integerIn(sy, `${name} sy`, 0, MAX_SOURCE);
    for (const [v, what] of [
      [sw, 'sw'],
      [sh, 'sh'],
    ] as const) {
      if (v !== '' && integerIn(v, `${name} ${what}`, -MAX_SOURCE, MAX_SOURCE) === 0) {
        throw bad(`${name} ${what} must not be 0`);
      }
    }
    return parts.map((p) => (p === '' ? '' : String(Number(p)))).join(',');
  };
}

/** `quality=1..100` (PS3.18 §8.3.5.1.2). */
export function quality(value: string, name: string): string {
  return String(integerIn(value, name, 1, 100));
}

/** VOI LUT functions of `window` (PS3.18 §8.3.5.1.4, PS3.3 C.11.2.1.2), as Orthanc spells them. */
export const WINDOW_FUNCTIONS = ['linear', 'linear-exact', 'sigmoid'] as const;

/** `window=center,width,function`: numbers, width ≥ 1 for `linear` and > 0 otherwise (PS3.3 C.11.2.1.2). */
export function windowing(value: string, name: string): string {
  const parts = value.split(',');
  if (parts.length !== 3) throw bad(`${name} must be center,width,function (got ${show(value)})`);
  const [c = '', w = '', fn = ''] = parts;
  const center = decimal(c, `${name} center`);
  const width = decimal(w, `${name} width`);
  if (!(WINDOW_FUNCTIONS as readonly string[]).includes(fn)) {
    throw bad(`${name} function must be one of ${WINDOW_FUNCTIONS.join(', ')} (got ${show(fn)})`);
  }
  if (fn === 'linear' ? width < 1 : width <= 0) {
    throw bad(`${name} width must be ${fn === 'linear' ? '>= 1' : '> 0'} for ${fn}`);
  }
  return `${center},${width},${fn}`;
}

/** `annotation=patient,technique` (PS3.18 §8.3.5.1.1). */
export const annotation = oneOfList(['patient', 'technique']);

const TOKEN = /^[A-Za-z0-9!#$&^_.+-]{1,64}$/;
const QVALUE = /^q=(0(\.\d{0,3})?|1(\.0{0,3})?)$/;
const PARAM_VALUE = /^("[^"\\]{0,128}"|[A-Za-z0-9!#$&^_.+*/-]{1,128})$/;

/**
 * `charset=utf-8,iso-8859-1;q=0.5` (PS3.18 §8.3.3.2): charset names with optional q-values. The facade answers in
 * Orthanc's configured encoding (UTF-8); the value is validated and not passed on.
 */
export function charset(value: string, name: string): string {
  for (const item of value.split(',')) {
    const [cs = '', ...params] = item.trim().split(';');
    if (!TOKEN.test(cs.trim()) || params.some((p) => !QVALUE.test(p.trim()))) {
      throw bad(`${name}: ${show(value)} is not a list of character sets`);
    }
  }
  return value;
}

/**
 * `accept=` (PS3.18 §8.3.3.1): a list of media ranges with parameters (`transfer-syntax`, `type`, `q`), validated and
 * sent to Orthanc as the Accept header in place of the client's. A `+` decoded as a space (form encoding of
 * `application/dicom+json`) is put back.
 */
export function accept(value: string, name: string): string {
  const ranges = value.split(',').map((range) => {
    const [type = '', ...params] = range.split(';').map((p) => p.trim());
    const media = type.replace(/ /g, '+');
    const ok =
      /^([A-Za-z0-9!#$&^_.+-]{1,64}|\*)\/([A-Za-z0-9!#$&^_.+-]{1,64}|\*)$/.test(media) &&
      params.every((p) => {
        const eq = p.indexOf('=');
        return eq > 0 && TOKEN.test(p.slice(0, eq)) && PARAM_VALUE.test(p.slice(eq + 1));
      });
    if (!ok) throw bad(`${name}: ${show(value)} is not a list of media types`);
    return [media, ...params].join(';');
  });
  return ranges.join(',');
}

/** A DICOM UID (PS3.5 §9.1). */
export function uid(value: string, name: string): string {
  if (!isUid(value)) throw bad(`${name}: ${show(value)} is not a valid UID`);
  return value;
}

/** Exactly one of the given values. */
export function oneOf(allowed: readonly string[]) {
  return (value: string, name: string): string => {
    if (!allowed.includes(value)) throw bad(`${name} must be one of ${allowed.join(', ')} (got ${show(value)})`);
    return value;
  };
}

/** A parameter that is never accepted, with the reason (clearer than "unsupported" for a known parameter). */
export function refused(reason: string) {
  return (_value: string, name: string): string => {
    throw bad(`${name} is not supported: ${reason}`);
  };
}

// ---------------------------------------------------------------- rule shorthands

export const toOrthanc = (check: ParamRule['check'], required = false): ParamRule => ({
  to: 'orthanc',
  check,
  ...(required ? { required } : {}),
});
export const notPassedOn = (check: ParamRule['check']): ParamRule => ({ to: 'none', check });
export const ACCEPT: ParamRule = { to: 'accept', check: accept };
export const CHARSET: ParamRule = notPassedOn(charset);

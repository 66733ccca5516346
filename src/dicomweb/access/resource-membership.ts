/**
 * WADO-RS / WADO-URI for a restricted caller: does the addressed study, series or instance belong to an Orthanc study
 * the EHR links under the path's StudyInstanceUID ({@link LinkedStudy}, access/linked-orthanc-studies.ts)?
 *
 * Orthanc's DICOMweb plugin (1.7) resolves a WADO-RS path level by level from the UIDs alone
 * (`OrthancPluginLookupStudy/Series/Instance`): an ambiguous UID is a 404, and a series or instance found by its own
 * UID is checked only against the UIDs of the path. So `/studies/X/series/S'` serves series S' of ANY Orthanc study
 * with UID X (seen on 1.10.1: the series, its metadata, its instances and frames of a C-STORE under another PatientID),
 * and WADO-URI likewise. Nothing in a DICOMweb retrieve URL (PS3.18 §10.4.1) can name the PatientID, so the facade checks
 * membership itself: Orthanc ids are hashes of PatientID and UIDs (src/orthanc/orthanc-ids.ts), so the linked study's
 * own resource at the path has a known id; if Orthanc has it, the plugin resolves the path to it (or refuses an
 * ambiguous UID), never to another patient's resource.
 *
 * Cost: `GET /studies/{id}` for a study-level retrieve, `GET /series/{id}` for a series or any instance of it (its
 * `Instances` list answers every instance check of the series: the frames of a whole series cost one request). A
 * linked study known only by its recorded Orthanc id (moved to another patient through FHIR) costs one more
 * `GET /studies/{id}` once, for its PatientID.
 * Only positive answers are kept, per study UID, for `ttlMs`; an instance missing from a kept list asks again once (it
 * may be new). Dropped with the other DICOMweb caches on every change signal of the study (this process's, other
 * replicas' through study-change-listener.ts), and not kept at all while that signal is down ({@link suspend}).
 */
import type { OrthancProxy } from '../../orthanc/proxy.ts';
import { orthancId } from '../../orthanc/orthanc-ids.ts';
import { DicomWebError } from '../errors.ts';
import type { LinkedStudy } from './linked-orthanc-studies.ts';
import { type CacheTicket, InvalidatableCache } from '../cache/invalidatable-cache.ts';

/** The UIDs of a retrieve's path. */
export interface RetrieveTarget {
  readonly study: string;
  readonly series?: string | undefined;
  readonly instance?: string | undefined;
}

interface Entry {
  /** For a series: Orthanc's ids of its instances. */
  readonly instances?: ReadonlySet<string>;
  /** For a study: its PatientID as Orthanc holds it. */
  readonly patientId?: string;
}

/** Orthanc's answers about a study or series, as far as the check needs them. */
interface OrthancResource {
  Instances?: unknown;
  PatientMainDicomTags?: { PatientID?: unknown };
}

export class ResourceMembership {
  readonly #proxy: OrthancProxy;
  /**
   * Known-present resources, by study UID of their path and Orthanc id (grouped by that study UID); lookups in
   * flight by Orthanc path: concurrent checks of one series (a viewer's frame requests) share one, unless it started
   * before an invalidation.
   */
  readonly #cache: InvalidatableCache<Entry>;
  /** Orthanc requests made (diagnostics and tests). */
  readonly stats = { lookups: 0 };
  static readonly MAX_ENTRIES = 20_000;

  constructor(proxy: OrthancProxy, ttlMs: number) {
    this.#proxy = proxy;
    this.#cache = new InvalidatableCache<Entry>({
      ttlMs,
      maxWeight: ResourceMembership.MAX_ENTRIES,
      whenFull: 'clear',
    });
  }

  /** Drops the expired entries. */
  sweep(): number {
    return this.#cache.sweep();
  }

  /** Does Orthanc hold the target (study, series or instance, whichever is deepest) in one of the linked studies? */
  async exists(linked: LinkedStudy, target: RetrieveTarget): Promise<boolean> {
    const patientIds = linked.patientIds.length ? linked.patientIds : await this.#patientIdsOf(target.study, linked);
    for (const patientId of patientIds) if (await this.#exists({ patientId, ...target })) return true;
    return false;
  }

  /** The PatientIDs of linked studies known by Orthanc id only, from Orthanc (checked against the id). */
  async #patientIdsOf(study: string, linked: LinkedStudy): Promise<string[]> {
    const out: string[] = [];
    for (const id of linked.orthancIds) {
      const e = this.#known(study, id) ?? (await this.#lookup(study, `/studies/${id}`, id));
      if (e?.patientId !== undefined && orthancId({ patientId: e.patientId, study }) === id) out.push(e.patientId);
    }
    return out;
  }

  async #exists(t: RetrieveTarget & { patientId: string }): Promise<boolean> {
    if (t.series === undefined) {
      const id = orthancId({ patientId: t.patientId, study: t.study });
      return (
        this.#known(t.study, id) !== undefined || (await this.#lookup(t.study, `/studies/${id}`, id)) !== undefined
      );
    }
    const seriesId = orthancId({ patientId: t.patientId, study: t.study, series: t.series });
    const cached = this.#known(t.study, seriesId);
    if (t.instance === undefined && cached) return true;
    const instanceId = t.instance === undefined ? undefined : orthancId(t);
    if (cached && instanceId && cached.instances?.has(instanceId)) return true;
    const fresh = await this.#lookup(t.study, `/series/${seriesId}`, seriesId);
    if (!fresh) return false;
    return instanceId === undefined || (fresh.instances?.has(instanceId) ?? false);
  }

  /** Drops what is known of a study's resources (every study's when undefined). */
  invalidate(studyUid?: string): void {
    this.#cache.invalidate(studyUid);
  }

  /** Stops keeping answers and drops them (the change signal is down), until {@link resume}. */
  suspend(): void {
    this.#cache.suspend();
  }

  resume(): void {
    this.#cache.resume();
  }

  #known(study: string, id: string): Entry | undefined {
    return this.#cache.get(entryKey(study, id));
  }

  /** Asks Orthanc for a resource by id: its entry when present (kept unless invalidated meanwhile), else undefined. */
  #lookup(study: string, path: string, id: string): Promise<Entry | undefined> {
    const running = this.#cache.flight<Entry | undefined>(path);
    if (running) return running.result;
    // No group: any invalidation while the lookup runs keeps its answer out of the cache.
    const ticket = this.#cache.ticket();
    return this.#cache.fly(path, ticket, () => this.#fetch(study, path, id, ticket));
  }

  async #fetch(study: string, path: string, id: string, ticket: CacheTicket): Promise<Entry | undefined> {
    this.stats.lookups++;
    const res = await this.#proxy.getJson(path, { accept: 'application/json' });
    if (res.status === 404) return undefined;
    if (res.status !== 200 || res.json === null || typeof res.json !== 'object') {
      throw new DicomWebError(502, 'The image archive failed to answer');
    }
    const list = (res.json as OrthancResource).Instances;
    const patientId = (res.json as OrthancResource).PatientMainDicomTags?.PatientID;
    const entry: Entry = {
      ...(Array.isArray(list) ? { instances: new Set(list.map(String)) } : {}),
      ...(typeof patientId === 'string' ? { patientId } : {}),
    };
    this.#cache.put(entryKey(study, id), ticket, entry, study);
    return entry;
  }
}

/** The cache key of an Orthanc resource under the study UID of its path (NUL-separated: UIDs and ids have none). */
function entryKey(study: string, id: string): string {
  return `${study}\u0000${id}`;
}

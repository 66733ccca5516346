/**
 * The transfer syntaxes an instance is stored in, as Orthanc recorded them (`/tools/lookup` of the SOP Instance UID,
 * then each instance's `TransferSyntax` metadata), remembered per SOP Instance UID: a stored instance's encoding never
 * changes. Used by the transcoding fence (transcode-fence.ts) for frames requests that would make Orthanc decompress.
 */
import type { OrthancClient } from '../../orthanc/client.ts';

/** SOP Instance UIDs remembered; the oldest are forgotten first. */
const MAX_ENTRIES = 20_000;

export class StoredSyntaxes {
  readonly #orthanc: OrthancClient;
  readonly #known = new Map<string, string[]>();

  constructor(orthanc: OrthancClient) {
    this.#orthanc = orthanc;
  }

  /** The stored transfer syntax UIDs of every Orthanc instance with this SOP Instance UID (usually one). */
  async of(sopInstanceUid: string): Promise<string[]> {
    const known = this.#known.get(sopInstanceUid);
    if (known) return known;
    const res = await this.#orthanc.request('/tools/lookup', { method: 'POST', body: sopInstanceUid });
    const found = res.ok ? ((await res.json()) as { ID: string; Type: string }[]) : [];
    if (!res.ok) await res.body?.cancel();
    const syntaxes: string[] = [];
    for (const r of found.filter((f) => f.Type === 'Instance')) {
      const ts = await this.#orthanc.request(`/instances/${encodeURIComponent(r.ID)}/metadata/TransferSyntax`);
      if (ts.ok) syntaxes.push((await ts.text()).trim());
      else await ts.body?.cancel();
    }
    if (syntaxes.length) {
      if (this.#known.size >= MAX_ENTRIES) this.#known.delete(this.#known.keys().next().value!);
      this.#known.set(sopInstanceUid, syntaxes);
    }
    return syntaxes;
  }
}

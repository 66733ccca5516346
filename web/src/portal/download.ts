/**
 * Downloads a study through the facade (`GET /api/v1/studies/{uid}/archive`, a zip, or DICOM media with a DICOMDIR)
 * with the user's own token in the Authorization header (never in a URL), then hands the file to the browser.
 */
import { ApiError, accessToken } from '../api.ts';

export type ArchiveFormat = 'zip' | 'dicomdir';

export async function downloadStudy(studyUid: string, format: ArchiveFormat): Promise<void> {
  const token = await accessToken();
  const q = format === 'dicomdir' ? '?format=dicomdir' : '';
  const res = await fetch(`/api/v1/studies/${encodeURIComponent(studyUid)}/archive${q}`, {
    headers: { authorization: `Bearer ${token}`, accept: 'application/zip' },
  });
  if (!res.ok) {
    const body = (await res.json().catch(() => ({}))) as { error?: string };
    throw new ApiError(res.status, body.error ?? `HTTP ${res.status}`);
  }
  const name = /filename="([^"]+)"/.exec(res.headers.get('content-disposition') ?? '')?.[1] ?? `study-${studyUid}.zip`;
  const a = document.createElement('a');
  a.href = URL.createObjectURL(await res.blob());
  a.download = name;
  a.click();
  URL.revokeObjectURL(a.href);
}

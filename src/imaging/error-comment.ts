/**
 * The DICOM JSON error body (DICOM PS3.18 §8.6.3, PS3.7 Annex C): ErrorComment (0000,0902) carrying the human-readable
 * reason. A leaf, so that every scope that answers DICOMweb clients (the DICOMweb routes, the audit hook's 503) can
 * render it without depending on the DICOMweb routes.
 */
export function errorBody(message: string): string {
  return JSON.stringify({ '00000902': { vr: 'LO', Value: [message] } });
}

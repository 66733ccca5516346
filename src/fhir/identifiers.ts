/** v2-0203 identifier type codes (https://terminology.hl7.org/CodeSystem-v2-0203.html). */
export const V2_0203 = 'http://terminology.hl7.org/CodeSystem/v2-0203';
/** DICOM UIDs as FHIR identifiers (https://hl7.org/fhir/R4/imagingstudy.html#notes). */
export const DICOM_UID_SYSTEM = 'urn:dicom:uid';

/**
 * Formats an allocated MRN or accession number: `{year}` becomes the (UTC) year, `{seq:N}` the sequence number
 * zero-padded to N digits (`{seq}` unpadded). E.g. `CLI-{year}-{seq:5}` with 1 in 2026 gives `CLI-2026-00001`.
 */
export function formatIdentifier(format: string, seq: number | bigint, now: Date): string {
  return format
    .replace(/\{year\}/g, String(now.getUTCFullYear()))
    .replace(/\{seq(?::(\d{1,2}))?\}/g, (_m, width: string | undefined) =>
      String(seq).padStart(Number(width ?? 0), '0'),
    );
}

/** The StudyInstanceUID of a `urn:dicom:uid` identifier value (`urn:oid:1.2.3` → `1.2.3`). */
export function studyUidFromIdentifier(value: string): string {
  return value.startsWith('urn:oid:') ? value.slice('urn:oid:'.length) : value;
}

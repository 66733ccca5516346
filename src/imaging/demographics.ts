/**
 * Comparing an instance's patient demographics (PatientName, PatientBirthDate, PatientSex; PS3.3 C.7.1.1) with the
 * EHR Patient its PatientID names (FHIR R4 Patient.name, birthDate, gender). A matching MRN and accession with a
 * contradicting name, birth date or sex is a wrong-patient risk. Only contradictions count: a value missing on
 * either side is not one. Pure.
 */

/** The EHR side: what FHIR Patient holds (https://hl7.org/fhir/R4/patient.html). */
export interface PatientDemographics {
  readonly names?: readonly { readonly family?: string; readonly given?: readonly string[] }[];
  /** FHIR date: YYYY, YYYY-MM or YYYY-MM-DD. */
  readonly birthDate?: string;
  readonly gender?: string;
}

/** The DICOM side, as read from the instance. */
export interface DicomDemographics {
  /** PN (PS3.5 §6.2.1): family^given^middle^prefix^suffix, alphabetic group first. */
  readonly patientName?: string | undefined;
  /** DA: YYYYMMDD. */
  readonly patientBirthDate?: string | undefined;
  /** CS: M, F or O. */
  readonly patientSex?: string | undefined;
}

const norm = (s: string | undefined): string => (s ?? '').normalize('NFC').replace(/\s+/g, ' ').trim().toLowerCase();

/** Family and given name of a DICOM PN's alphabetic group (trailing empty components ignored). */
export function dicomName(pn: string): { family: string; given: string } {
  const [family = '', given = ''] = (pn.split('=')[0] ?? '').split('^');
  return { family: norm(family), given: norm(given) };
}

function nameContradiction(pn: string | undefined, names: PatientDemographics['names']): string | undefined {
  const dicom = dicomName(pn ?? '');
  const ehr = (names ?? [])
    .map((n) => ({ family: norm(n.family), given: (n.given ?? []).map(norm).filter(Boolean) }))
    .filter((n) => n.family !== '' || n.given.length > 0);
  if ((dicom.family === '' && dicom.given === '') || ehr.length === 0) return undefined;
  const fits = ehr.some((n) => {
    const family = dicom.family === '' || n.family === '' || dicom.family === n.family;
    const given =
      dicom.given === '' ||
      n.given.length === 0 ||
      dicom.given === n.given.join(' ') ||
      dicom.given.split(' ')[0] === n.given[0];
    return family && given;
  });
  if (fits) return undefined;
  const shown = (names ?? []).map((n) => [n.family, ...(n.given ?? [])].filter(Boolean).join(' ')).join(' / ');
  return `PatientName "${pn}" differs from the EHR name "${shown}"`;
}

function birthDateContradiction(da: string | undefined, birthDate: string | undefined): string | undefined {
  const dicom = (da ?? '').replace(/\D/g, '');
  const ehr = (birthDate ?? '').replace(/\D/g, '');
  if (dicom === '' || ehr === '') return undefined;
  const n = Math.min(dicom.length, ehr.length);
  if (dicom.slice(0, n) === ehr.slice(0, n)) return undefined;
  return `PatientBirthDate ${da} differs from the EHR birth date ${birthDate}`;
}

const SEX: Readonly<Record<string, string>> = { M: 'male', F: 'female', O: 'other' };

function sexContradiction(cs: string | undefined, gender: string | undefined): string | undefined {
  const dicom = SEX[(cs ?? '').trim().toUpperCase()];
  if (!dicom || !gender || gender === 'unknown') return undefined;
  if (dicom === gender) return undefined;
  return `PatientSex ${cs} differs from the EHR gender ${gender}`;
}

/**
 * The contradictions between the instance's demographics and the EHR patient's, in words (empty when none): names
 * compared case-insensitively on family and given name, birth dates on their common precision, sex M/F/O against
 * gender male/female/other.
 */
export function demographicContradictions(dicom: DicomDemographics, ehr: PatientDemographics): string[] {
  return [
    nameContradiction(dicom.patientName, ehr.names),
    birthDateContradiction(dicom.patientBirthDate, ehr.birthDate),
    sexContradiction(dicom.patientSex, ehr.gender),
  ].filter((c): c is string => c !== undefined);
}

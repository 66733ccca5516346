/**
 * Loads the benchmark's data set into the throwaway stack, the way production data arrives: for each patient a
 * FHIR Patient and one active order per study, then every study through the facade's STOW-RS (validated, matched to
 * its order and linked in the EHR), so that Orthanc and the facade serve exactly the same instances. Then the bulk
 * FHIR resources, the doctor's grants and the patient token's patient.
 */
import { type Admin, bookPatient, USERS } from './admin.ts';
import type { BenchConfig } from './config.ts';
import type { DataSet, ImagingPatient } from './context.ts';
import { failedParts, instancesOf, layoutOf, STOW_CONTENT_TYPE, type StudySpec, stowBody, studyFiles } from './data.ts';
import { bulkFamily, bulkPatientId, loadFhirBulk } from './fhir-bulk.ts';
import type { Target } from './wrk.ts';

export interface SeedOptions {
  cfg: BenchConfig;
  admin: Admin;
  /** The facade as the admin caller. */
  facade: () => Promise<Target>;
  fhirBase: string;
  mrnSystem: string;
  accessionSystem: string;
  log: (s: string) => void;
}

async function stow(t: Target, spec: StudySpec): Promise<void> {
  const body = stowBody(studyFiles(spec));
  const res = await fetch(`${t.base}/dicom-web/studies`, {
    method: 'POST',
    headers: { ...t.headers, 'content-type': STOW_CONTENT_TYPE, accept: 'application/dicom+json' },
    body,
  });
  const text = await res.text();
  if (res.status !== 200 || failedParts(text)) {
    throw new Error(`loading ${spec.seed} through STOW-RS: ${res.status} ${text.slice(0, 400)}`);
  }
}

export async function seed(o: SeedOptions): Promise<DataSet> {
  const { cfg, admin, log } = o;
  const t0 = Date.now();
  const patients: ImagingPatient[] = [];
  const specs: StudySpec[] = [];
  for (let p = 0; p < cfg.patients; p++) {
    const booking = await bookPatient(admin, `Imaging${p}`, cfg.studiesPerPatient);
    const mine: StudySpec[] = booking.orders.map((order, s) => ({
      seed: `dataset/p${p}/s${s}`,
      patientId: booking.mrn,
      patientName: `Imaging${p}^Bench`,
      accession: order.accession,
      studyDate: `20${15 + s}0${1 + (p % 9)}15`,
      series: cfg.seriesPerStudy,
      instancesPerSeries: cfg.instancesPerSeries,
    }));
    specs.push(...mine);
    patients.push({ patientId: booking.patientId, mrn: booking.mrn, studies: mine.map(layoutOf) });
  }
  log(
    `seed: ${patients.length} patients and ${specs.length} orders booked (${Math.round((Date.now() - t0) / 1000)} s)`,
  );

  // The first upload alone: two concurrent first uploads race on creating the DICOMweb Endpoint resource (one gets
  // 409 and is undone; see the benchmark report). Then two in flight, so that dcmjs generation overlaps uploads.
  if (specs[0]) await stow(await o.facade(), specs[0]);
  let next = 1;
  let done = 1;
  const worker = async () => {
    while (next < specs.length) {
      const spec = specs[next++] as StudySpec;
      await stow(await o.facade(), spec);
      done++;
      if (done % 10 === 0 || done === specs.length) {
        log(`seed: ${done}/${specs.length} studies stored through STOW-RS (${Math.round((Date.now() - t0) / 1000)} s)`);
      }
    }
  };
  await Promise.all([worker(), worker()]);

  const plan = await loadFhirBulk(admin.app.db, cfg.fhirResources, {
    fhirBase: o.fhirBase,
    mrnSystem: o.mrnSystem,
    accessionSystem: o.accessionSystem,
    log,
  });
  const extra = Math.max(0, cfg.doctorGrants - patients.length);
  const granted = [...patients.map((p) => p.patientId), ...Array.from({ length: extra }, (_, i) => bulkPatientId(i))];
  await admin.grant(USERS.doctor.username, granted);
  const patient0 = patients[0];
  if (patient0) admin.setPatientOfToken(patient0.patientId);

  const sample = Math.min(plan.patients, 5000);
  const layouts = patients.flatMap((p) => p.studies);
  const data: DataSet = {
    patients,
    instances: layouts.flatMap(instancesOf),
    series: layouts.flatMap((l) => l.series.map((s) => ({ study: l.studyUid, series: s.uid }))),
    fhir: {
      patientIds: Array.from({ length: sample }, (_, i) => bulkPatientId(i)),
      families: [...new Set(Array.from({ length: sample }, (_, i) => bulkFamily(i)))],
      mrns: Array.from({ length: sample }, (_, i) => `${o.mrnSystem}|BENCH-${String(i).padStart(7, '0')}`),
      total: plan.patients + plan.practitioners + plan.encounters + plan.orders,
    },
  };
  log(
    `seed: done in ${Math.round((Date.now() - t0) / 1000)} s: ${data.instances.length} instances, ` +
      `${data.fhir.total} bulk FHIR resources, doctor granted ${granted.length} patients`,
  );
  return data;
}

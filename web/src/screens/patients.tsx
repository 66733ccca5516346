import { type FormEvent, useState } from 'react';
import { Link, useLocation } from 'wouter';
import { type Bundle, fhir, resources } from '../api.ts';
import { mrnOf, nameOf, type Patient } from '../model.ts';
import { may } from '../roles.ts';
import { ErrorText, Field, Status } from '../ui.tsx';
import { useLoad } from '../use-load.ts';

/** Patients: search by name, MRN and birth date; create a patient. */
export function PatientsScreen({ roles }: { roles: readonly string[] }) {
  const [query, setQuery] = useState({ name: '', mrn: '', birthdate: '' });
  const [applied, setApplied] = useState(query);
  const load = useLoad(async () => {
    const p = new URLSearchParams({ _count: '50', _sort: 'family' });
    if (applied.name) p.set('name', applied.name);
    if (applied.mrn) p.set('identifier', applied.mrn);
    if (applied.birthdate) p.set('birthdate', applied.birthdate);
    return resources(await fhir<Bundle<Patient>>(`Patient?${p}`));
  }, [applied]);
  const search = (e: FormEvent) => {
    e.preventDefault();
    setApplied(query);
  };
  return (
    <>
      <h1>Patients</h1>
      <search>
        <form className="inline" onSubmit={search} aria-label="Search patients">
          <Field label="Name">
            <input value={query.name} onChange={(e) => setQuery({ ...query, name: e.target.value })} />
          </Field>
          <Field label="MRN">
            <input value={query.mrn} onChange={(e) => setQuery({ ...query, mrn: e.target.value })} />
          </Field>
          <Field label="Birth date">
            <input
              type="date"
              value={query.birthdate}
              onChange={(e) => setQuery({ ...query, birthdate: e.target.value })}
            />
          </Field>
          <button type="submit" className="primary">
            Search
          </button>
        </form>
      </search>
      <Status load={load}>
        {(patients) =>
          patients.length === 0 ? (
            <p>No patients found.</p>
          ) : (
            <table aria-label="Patients">
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">MRN</th>
                  <th scope="col">Birth date</th>
                  <th scope="col">Gender</th>
                </tr>
              </thead>
              <tbody>
                {patients.map((p) => (
                  <tr key={p.id}>
                    <td>
                      <Link href={`/patients/${p.id}`}>{nameOf(p)}</Link>
                    </td>
                    <td className="mono">{mrnOf(p)}</td>
                    <td>{p.birthDate}</td>
                    <td>{p.gender}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )
        }
      </Status>
      {may(roles, 'create-patient') && <NewPatient />}
    </>
  );
}

export function PatientForm({
  initial,
  submitLabel,
  onSubmit,
}: {
  initial: Patient;
  submitLabel: string;
  onSubmit: (p: Patient) => Promise<void>;
}) {
  const n = initial.name?.[0];
  const [family, setFamily] = useState(n?.family ?? '');
  const [given, setGiven] = useState((n?.given ?? []).join(' '));
  const [birthDate, setBirthDate] = useState(initial.birthDate ?? '');
  const [gender, setGender] = useState(initial.gender ?? 'unknown');
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await onSubmit({
        ...initial,
        name: [{ family, given: given.split(/\s+/).filter(Boolean) }],
        gender,
        ...(birthDate ? { birthDate } : {}),
      });
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="inline" onSubmit={submit}>
      <Field label="Family name">
        <input required value={family} onChange={(e) => setFamily(e.target.value)} />
      </Field>
      <Field label="Given names">
        <input value={given} onChange={(e) => setGiven(e.target.value)} />
      </Field>
      <Field label="Birth date">
        <input type="date" value={birthDate} onChange={(e) => setBirthDate(e.target.value)} />
      </Field>
      <Field label="Gender">
        <select value={gender} onChange={(e) => setGender(e.target.value)}>
          {['female', 'male', 'other', 'unknown'].map((g) => (
            <option key={g}>{g}</option>
          ))}
        </select>
      </Field>
      <button type="submit" className="primary" disabled={busy}>
        {submitLabel}
      </button>
      <ErrorText error={error} />
    </form>
  );
}

function NewPatient() {
  const [, navigate] = useLocation();
  return (
    <section className="card" aria-labelledby="new-patient">
      <h2 id="new-patient">New patient</h2>
      <PatientForm
        initial={{ resourceType: 'Patient' }}
        submitLabel="Create patient"
        onSubmit={async (p) => {
          const created = await fhir<Patient>('Patient', { method: 'POST', body: p });
          navigate(`/patients/${created.id}`);
        }}
      />
    </section>
  );
}

import { type FormEvent, useState } from 'react';
import { api } from '../api.ts';
import { ErrorText, Field, Status } from '../ui.tsx';
import { useLoad } from '../use-load.ts';

interface OAuthClient {
  clientId: string;
  kind: string;
  name: string;
  scopeCeiling: string;
  allowedPatients: string[] | null;
  active: boolean;
  redirectUris: string[];
}

const KINDS = ['public', 'confidential', 'backend'] as const;

interface Form {
  clientId: string;
  name: string;
  kind: string;
  redirectUris: string;
  scopeCeiling: string;
  jwksUri: string;
  jwks: string;
  allowedPatients: string;
  active: boolean;
}

const EMPTY: Form = {
  clientId: '',
  name: '',
  kind: 'public',
  redirectUris: '',
  scopeCeiling: 'openid fhirUser user/*.rs',
  jwksUri: '',
  jwks: '',
  allowedPatients: '',
  active: true,
};

const lines = (s: string) =>
  s
    .split(/[\s,]+/)
    .map((x) => x.trim())
    .filter(Boolean);

/** The request body of the form: keys only where given (the server checks every rule). */
function bodyOf(f: Form, isNew: boolean): Record<string, unknown> {
  const patients = lines(f.allowedPatients);
  const body: Record<string, unknown> = {
    name: f.name || f.clientId,
    kind: f.kind,
    redirectUris: f.kind === 'backend' ? [] : lines(f.redirectUris),
    scopeCeiling: f.scopeCeiling.trim(),
    active: f.active,
  };
  if (isNew) body['clientId'] = f.clientId;
  if (f.kind !== 'public') {
    if (f.jwks.trim()) body['jwks'] = JSON.parse(f.jwks) as unknown;
    else if (f.jwksUri.trim()) body['jwksUri'] = f.jwksUri.trim();
  }
  if (f.kind === 'backend' && patients.length > 0) body['allowedPatients'] = patients;
  else if (!isNew) body['allowedPatients'] = null;
  if (!isNew && f.kind === 'public') {
    body['jwks'] = null;
    body['jwksUri'] = null;
  }
  return body;
}

/** OAuth clients of the built-in authorization server: list, register, change (/api/v1/admin/clients). */
export function AdminClients() {
  const clients = useLoad(() => api<{ items: OAuthClient[] }>('/api/v1/admin/clients').then((r) => r.items), []);
  const [editing, setEditing] = useState<OAuthClient>();
  return (
    <section className="card" aria-labelledby="clients">
      <h2 id="clients">OAuth clients</h2>
      <Status load={clients}>
        {(cs) => (
          <table aria-label="OAuth clients">
            <thead>
              <tr>
                <th scope="col">Client</th>
                <th scope="col">Kind</th>
                <th scope="col">Redirect URIs</th>
                <th scope="col">Scope ceiling</th>
                <th scope="col">Patients</th>
                <th scope="col">Active</th>
                <th scope="col">Action</th>
              </tr>
            </thead>
            <tbody>
              {cs.map((c) => (
                <tr key={c.clientId}>
                  <td>
                    <span className="mono">{c.clientId}</span> {c.name}
                  </td>
                  <td>{c.kind}</td>
                  <td className="mono">{c.redirectUris.join(' ')}</td>
                  <td className="mono">{c.scopeCeiling}</td>
                  <td>{c.allowedPatients?.join(', ') ?? 'all'}</td>
                  <td>{c.active ? 'yes' : 'no'}</td>
                  <td>
                    <button type="button" aria-label={`Edit client ${c.clientId}`} onClick={() => setEditing(c)}>
                      Edit
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Status>
      {editing ? (
        <ClientForm
          key={editing.clientId}
          client={editing}
          done={() => {
            setEditing(undefined);
            clients.reload();
          }}
        />
      ) : (
        <ClientForm key="new" done={clients.reload} />
      )}
    </section>
  );
}

/** Registers a client, or changes one (everything but its id; keys are kept unless new ones are given). */
function ClientForm({ client, done }: { client?: OAuthClient; done: () => void }) {
  const [f, setF] = useState<Form>(
    client
      ? {
          ...EMPTY,
          clientId: client.clientId,
          name: client.name,
          kind: client.kind,
          redirectUris: client.redirectUris.join('\n'),
          scopeCeiling: client.scopeCeiling,
          allowedPatients: client.allowedPatients?.join(', ') ?? '',
          active: client.active,
        }
      : EMPTY,
  );
  const [error, setError] = useState<string>();
  const [saved, setSaved] = useState<string>();
  const set = (k: keyof Form) => (e: { target: { value: string } }) => setF({ ...f, [k]: e.target.value });
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(undefined);
    setSaved(undefined);
    try {
      const body = bodyOf(f, !client);
      if (client) {
        await api(`/api/v1/admin/clients/${encodeURIComponent(client.clientId)}`, { method: 'PATCH', body });
      } else {
        await api('/api/v1/admin/clients', { method: 'POST', body });
        setF(EMPTY);
      }
      setSaved(`client ${f.clientId} saved`);
      done();
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  };
  return (
    <form className="inline" onSubmit={submit} aria-label={client ? `Edit client ${client.clientId}` : 'New client'}>
      <h3>{client ? `Edit client ${client.clientId}` : 'Register a client'}</h3>
      {!client && (
        <Field label="Client id">
          <input required value={f.clientId} onChange={set('clientId')} />
        </Field>
      )}
      <Field label="Client name">
        <input value={f.name} onChange={set('name')} />
      </Field>
      <Field label="Kind">
        <select value={f.kind} onChange={set('kind')}>
          {KINDS.map((k) => (
            <option key={k}>{k}</option>
          ))}
        </select>
      </Field>
      {f.kind !== 'backend' && (
        <Field label="Redirect URIs (one a line)">
          <textarea rows={2} value={f.redirectUris} onChange={set('redirectUris')} />
        </Field>
      )}
      <Field label="Scope ceiling">
        <input required size={40} value={f.scopeCeiling} onChange={set('scopeCeiling')} />
      </Field>
      {f.kind !== 'public' && (
        <>
          <Field label="JWKS URL (https)">
            <input value={f.jwksUri} onChange={set('jwksUri')} />
          </Field>
          <Field label="or JWKS (public keys, JSON)">
            <textarea rows={2} value={f.jwks} onChange={set('jwks')} />
          </Field>
        </>
      )}
      {f.kind === 'backend' && (
        <Field label="Allowed patients (empty: all)">
          <input value={f.allowedPatients} onChange={set('allowedPatients')} />
        </Field>
      )}
      <label>
        <input type="checkbox" checked={f.active} onChange={(e) => setF({ ...f, active: e.target.checked })} /> Active
      </label>
      <button type="submit" className="primary">
        {client ? 'Save client' : 'Register client'}
      </button>
      {client && (
        <button type="button" onClick={done}>
          Cancel
        </button>
      )}
      {saved && <p role="status">{saved}</p>}
      <ErrorText error={error} />
    </form>
  );
}

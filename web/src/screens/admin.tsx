import { type FormEvent, useState } from 'react';
import { api } from '../api.ts';
import { ErrorText, Field, Status } from '../ui.tsx';
import { useLoad } from '../use-load.ts';
import { AdminClients } from './admin-clients.tsx';
import { EditRoles, RoleChecks } from './admin-roles.tsx';

interface User {
  username: string;
  displayName: string;
  roles: string[];
  active: boolean;
  practitionerId: string | null;
  department: string | null;
  grants: number;
}
interface Grant {
  patient: string;
  reason: string;
  grantedAt: string;
  expiresAt: string | null;
}

/** Administration: users (add, change roles, deactivate, activate), patient grants, and OAuth clients (/api/v1/admin). */
export function AdminScreen() {
  const users = useLoad(() => api<{ items: User[] }>('/api/v1/admin/users').then((r) => r.items), []);
  const [grantsOf, setGrantsOf] = useState<string>();
  const [rolesOf, setRolesOf] = useState<User>();
  const [error, setError] = useState<string>();
  const setActive = async (username: string, active: boolean) => {
    setError(undefined);
    try {
      await api(`/api/v1/admin/users/${encodeURIComponent(username)}/${active ? 'activate' : 'deactivate'}`, {
        method: 'POST',
      });
      users.reload();
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  };
  return (
    <>
      <h1>Administration</h1>
      <section className="card" aria-labelledby="users">
        <h2 id="users">Users</h2>
        <Status load={users}>
          {(us) => (
            <table aria-label="Users">
              <thead>
                <tr>
                  <th scope="col">User</th>
                  <th scope="col">Name</th>
                  <th scope="col">Roles</th>
                  <th scope="col">Practitioner / department</th>
                  <th scope="col">Active</th>
                  <th scope="col">Grants</th>
                  <th scope="col">Action</th>
                </tr>
              </thead>
              <tbody>
                {us.map((u) => (
                  <tr key={u.username}>
                    <td className="mono">{u.username}</td>
                    <td>{u.displayName}</td>
                    <td>
                      {u.roles.join(', ')}{' '}
                      <button type="button" aria-label={`Edit roles of ${u.username}`} onClick={() => setRolesOf(u)}>
                        Edit
                      </button>
                    </td>
                    <td>{[u.practitionerId, u.department].filter(Boolean).join(' · ')}</td>
                    <td>{u.active ? 'yes' : 'no'}</td>
                    <td>
                      <button type="button" onClick={() => setGrantsOf(u.username)}>
                        {u.grants} grants
                      </button>
                    </td>
                    <td>
                      <button
                        type="button"
                        aria-label={`${u.active ? 'Deactivate' : 'Activate'} ${u.username}`}
                        onClick={() => void setActive(u.username, !u.active)}
                      >
                        {u.active ? 'Deactivate' : 'Activate'}
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </Status>
        <ErrorText error={error} />
        {rolesOf && (
          <EditRoles
            key={rolesOf.username}
            username={rolesOf.username}
            current={rolesOf.roles}
            done={(changed) => {
              setRolesOf(undefined);
              if (changed) users.reload();
            }}
          />
        )}
        <NewUser done={users.reload} />
      </section>
      {grantsOf && <Grants username={grantsOf} changed={users.reload} />}
      <AdminClients />
    </>
  );
}

function NewUser({ done }: { done: () => void }) {
  const [f, setF] = useState({ username: '', displayName: '', practitionerId: '', department: '' });
  const [roles, setRoles] = useState<string[]>(['doctor']);
  const [error, setError] = useState<string>();
  const [created, setCreated] = useState<string>();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(undefined);
    setCreated(undefined);
    try {
      const r = await api<{ initialPassword: string }>('/api/v1/admin/users', {
        method: 'POST',
        body: {
          username: f.username,
          displayName: f.displayName || f.username,
          roles,
          ...(f.practitionerId ? { practitionerId: f.practitionerId } : {}),
          ...(f.department ? { department: f.department } : {}),
        },
      });
      setCreated(`${f.username}: initial password (shown once) ${r.initialPassword}`);
      done();
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  };
  const set = (k: keyof typeof f) => (e: { target: { value: string } }) => setF({ ...f, [k]: e.target.value });
  return (
    <form className="inline" onSubmit={submit} aria-label="New user">
      <Field label="User name">
        <input required value={f.username} onChange={set('username')} />
      </Field>
      <Field label="Display name">
        <input value={f.displayName} onChange={set('displayName')} />
      </Field>
      <RoleChecks roles={roles} onChange={setRoles} />
      <Field label="Practitioner id">
        <input value={f.practitionerId} onChange={set('practitionerId')} />
      </Field>
      <Field label="Department">
        <input value={f.department} onChange={set('department')} placeholder="Organization/radiology" />
      </Field>
      <button type="submit" className="primary">
        Add user
      </button>
      {created && (
        <p role="status" className="mono">
          {created}
        </p>
      )}
      <ErrorText error={error} />
    </form>
  );
}

function Grants({ username, changed }: { username: string; changed: () => void }) {
  const load = useLoad(
    () => api<{ items: Grant[] }>(`/api/v1/admin/users/${encodeURIComponent(username)}/grants`).then((r) => r.items),
    [username],
  );
  const [patient, setPatient] = useState('');
  const [reason, setReason] = useState('');
  const [expires, setExpires] = useState('');
  const [error, setError] = useState<string>();
  const call = async (path: string, method: string, body?: unknown) => {
    setError(undefined);
    try {
      await api(`/api/v1/admin/users/${encodeURIComponent(username)}/grants${path}`, { method, body });
      load.reload();
      changed();
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  };
  return (
    <section className="card" aria-labelledby="grants">
      <h2 id="grants">Patient grants of {username}</h2>
      <Status load={load}>
        {(gs) =>
          gs.length === 0 ? (
            <p>No live grants.</p>
          ) : (
            <table aria-label="Grants">
              <thead>
                <tr>
                  <th scope="col">Patient</th>
                  <th scope="col">Reason</th>
                  <th scope="col">Granted</th>
                  <th scope="col">Expires</th>
                  <th scope="col">Action</th>
                </tr>
              </thead>
              <tbody>
                {gs.map((g) => (
                  <tr key={g.patient}>
                    <td className="mono">{g.patient}</td>
                    <td>{g.reason}</td>
                    <td>{String(g.grantedAt).slice(0, 10)}</td>
                    <td>{g.expiresAt ? String(g.expiresAt).slice(0, 10) : '—'}</td>
                    <td>
                      <button type="button" onClick={() => void call(`/${encodeURIComponent(g.patient)}`, 'DELETE')}>
                        Revoke
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )
        }
      </Status>
      <form
        className="inline"
        aria-label="New grant"
        onSubmit={(e: FormEvent) => {
          e.preventDefault();
          void call('', 'POST', { patient, reason, ...(expires ? { expires } : {}) });
        }}
      >
        <Field label="Patient id">
          <input required value={patient} onChange={(e) => setPatient(e.target.value)} />
        </Field>
        <Field label="Reason">
          <input required value={reason} onChange={(e) => setReason(e.target.value)} />
        </Field>
        <Field label="Expires">
          <input type="date" value={expires} onChange={(e) => setExpires(e.target.value)} />
        </Field>
        <button type="submit">Grant</button>
      </form>
      <ErrorText error={error} />
    </section>
  );
}

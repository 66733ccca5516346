import { type FormEvent, useState } from 'react';
import { api } from '../api.ts';
import { ErrorText } from '../ui.tsx';

/** The roles an administrator may give (the facade's policy roles). */
export const ROLES = ['doctor', 'nurse', 'radiologist', 'auditor', 'admin'];

/** One checkbox per role, in a named group. */
export function RoleChecks({
  roles,
  onChange,
  legend = 'Roles',
}: {
  roles: readonly string[];
  onChange: (roles: string[]) => void;
  legend?: string;
}) {
  return (
    <fieldset>
      <legend>{legend}</legend>
      {ROLES.map((r) => (
        <label key={r}>
          <input
            type="checkbox"
            checked={roles.includes(r)}
            onChange={(e) => onChange(e.target.checked ? [...roles, r] : roles.filter((x) => x !== r))}
          />{' '}
          {r}{' '}
        </label>
      ))}
    </fieldset>
  );
}

/**
 * Changes a user's roles (`PUT /api/v1/admin/users/{username}/roles`); the user's next request already has the new
 * rights. The server refuses an empty list and an admin dropping their own admin role, with its reason shown here.
 */
export function EditRoles({
  username,
  current,
  done,
}: {
  username: string;
  current: readonly string[];
  done: (changed: boolean) => void;
}) {
  const [roles, setRoles] = useState<string[]>([...current]);
  const [error, setError] = useState<string>();
  const [saving, setSaving] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(undefined);
    setSaving(true);
    try {
      await api(`/api/v1/admin/users/${encodeURIComponent(username)}/roles`, { method: 'PUT', body: { roles } });
      done(true);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setSaving(false);
    }
  };
  return (
    <form className="card inline" onSubmit={submit} aria-label={`Roles of ${username}`}>
      <RoleChecks roles={roles} onChange={setRoles} legend={`Roles of ${username}`} />
      <button type="submit" className="primary" disabled={saving || roles.length === 0}>
        {saving ? 'Saving…' : 'Save roles'}
      </button>
      <button type="button" onClick={() => done(false)}>
        Cancel
      </button>
      <ErrorText error={error} />
    </form>
  );
}

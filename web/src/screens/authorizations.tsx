import { useState } from 'react';
import { api } from '../api.ts';
import { ErrorText, Status } from '../ui.tsx';
import { useLoad } from '../use-load.ts';

/** One active grant of the built-in authorization server (GET /api/v1/me/authorizations). */
interface Grant {
  grantId: string;
  clientId: string;
  clientName: string;
  scope: string;
  patient: string | null;
  createdAt: string;
  lastUsedAt: string;
  expiresAt: string;
  current: boolean;
}

const when = (iso: string) => iso.slice(0, 16).replace('T', ' ');

/**
 * Connected apps: the apps that can currently reach data on the signed-in user's behalf, each revocable (its refresh
 * and access tokens end at once). The SMART configuration's `management_endpoint` points here.
 */
export function AuthorizationsScreen() {
  const load = useLoad(() => api<{ items: Grant[] }>('/api/v1/me/authorizations').then((r) => r.items), []);
  return (
    <>
      <h1>Connected apps</h1>
      <p>Apps you have signed in to with this account, and what they may access. Revoking one signs that app out.</p>
      <Status load={load}>
        {(items) =>
          items.length === 0 ? (
            <p>No app has access on your behalf.</p>
          ) : (
            <table aria-label="Connected apps">
              <thead>
                <tr>
                  <th scope="col">App</th>
                  <th scope="col">Access</th>
                  <th scope="col">Patient</th>
                  <th scope="col">Authorized (UTC)</th>
                  <th scope="col">Last used (UTC)</th>
                  <th scope="col">Expires (UTC)</th>
                  <th scope="col">Action</th>
                </tr>
              </thead>
              <tbody>
                {items.map((g) => (
                  <Row key={g.grantId} grant={g} done={load.reload} />
                ))}
              </tbody>
            </table>
          )
        }
      </Status>
    </>
  );
}

function Row({ grant: g, done }: { grant: Grant; done: () => void }) {
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const revoke = async () => {
    setBusy(true);
    setError(undefined);
    try {
      await api(`/api/v1/me/authorizations/${encodeURIComponent(g.grantId)}`, { method: 'DELETE' });
      if (g.current) {
        // This tab's own session was revoked: its token no longer works.
        window.location.assign('/app/');
        return;
      }
      done();
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
      setBusy(false);
    }
  };
  return (
    <tr>
      <td>
        {g.clientName} <span className="mono">{g.clientId}</span>
        {g.current && <span> (this session)</span>}
      </td>
      <td className="mono">{g.scope}</td>
      <td className="mono">{g.patient ?? '—'}</td>
      <td>{when(g.createdAt)}</td>
      <td>{when(g.lastUsedAt)}</td>
      <td>{when(g.expiresAt)}</td>
      <td>
        {confirming ? (
          <fieldset className="confirm">
            <legend>
              {g.current ? 'This signs you out here. ' : ''}Revoke access of {g.clientName}?
            </legend>
            <button type="button" className="primary" disabled={busy} onClick={() => void revoke()}>
              Yes, revoke
            </button>{' '}
            <button type="button" disabled={busy} onClick={() => setConfirming(false)}>
              Cancel
            </button>
          </fieldset>
        ) : (
          <button type="button" aria-label={`Revoke ${g.clientName}`} onClick={() => setConfirming(true)}>
            Revoke
          </button>
        )}
        {busy && <p role="status">Revoking…</p>}
        <ErrorText error={error} />
      </td>
    </tr>
  );
}

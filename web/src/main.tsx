import { StrictMode, useEffect, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { Link, Route, Router, Switch, useLocation } from 'wouter';
import { api, setClient } from './api.ts';
import './app.css';
import { isPatientLogin, PortalShell } from './portal/portal.tsx';
import { may } from './roles.ts';
import { AdminScreen } from './screens/admin.tsx';
import { AuditScreen } from './screens/audit.tsx';
import { AuthorizationsScreen } from './screens/authorizations.tsx';
import { OrderDetail } from './screens/order-detail.tsx';
import { PatientChart } from './screens/patient-chart.tsx';
import { PatientsScreen } from './screens/patients.tsx';
import { UnmatchedScreen } from './screens/unmatched.tsx';
import { UploadScreen } from './screens/upload.tsx';
import { restore, signIn, signOut } from './smart.ts';

interface Me {
  kind: string;
  fhirUser: string | null;
  roles: string[];
  /** The patient context of the token (a patient login's own Patient). */
  patient?: string | null;
}

function Home({ me }: { me: Me }) {
  const [, navigate] = useLocation();
  useEffect(() => {
    if (may(me.roles, 'patients')) navigate('/patients', { replace: true });
    else if (may(me.roles, 'audit')) navigate('/audit', { replace: true });
  }, [me, navigate]);
  return <p>Nothing to show for your roles.</p>;
}

function Shell({ me }: { me: Me }) {
  const [location] = useLocation();
  const nav = [
    { to: '/patients', label: 'Patients', show: may(me.roles, 'patients') },
    { to: '/upload', label: 'Upload', show: may(me.roles, 'upload') },
    { to: '/unmatched', label: 'Reconciliation', show: may(me.roles, 'reconcile') },
    { to: '/audit', label: 'Audit', show: may(me.roles, 'audit') },
    { to: '/admin', label: 'Administration', show: may(me.roles, 'admin') },
    { to: '/authorizations', label: 'Connected apps', show: true },
  ].filter((n) => n.show);
  return (
    <>
      <header className="top">
        <span className="brand">Imaging EHR</span>
        <nav aria-label="Main">
          <ul>
            {nav.map((n) => (
              <li key={n.to}>
                <Link href={n.to} aria-current={location.startsWith(n.to) ? 'page' : undefined}>
                  {n.label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <span className="who">
          {me.fhirUser ?? 'signed in'} · {me.roles.join(', ')}{' '}
          <button
            type="button"
            onClick={() => {
              signOut();
              window.location.assign('/app/');
            }}
          >
            Sign out
          </button>
        </span>
      </header>
      <main>
        <Switch>
          <Route path="/patients">{() => <PatientsScreen roles={me.roles} />}</Route>
          <Route path="/patients/:id">{(p) => <PatientChart id={p.id} roles={me.roles} />}</Route>
          <Route path="/orders/:id">{(p) => <OrderDetail id={p.id} roles={me.roles} fhirUser={me.fhirUser} />}</Route>
          <Route path="/upload">{() => <UploadScreen />}</Route>
          <Route path="/unmatched">{() => <UnmatchedScreen />}</Route>
          <Route path="/audit">{() => <AuditScreen />}</Route>
          <Route path="/admin">{() => <AdminScreen />}</Route>
          <Route path="/authorizations">{() => <AuthorizationsScreen />}</Route>
          <Route>{() => <Home me={me} />}</Route>
        </Switch>
      </main>
    </>
  );
}

function App() {
  const [state, setState] = useState<{ me?: Me; error?: string; signedOut?: boolean }>({});
  useEffect(() => {
    restore()
      .then(async (r) => {
        if (!r) return setState({ signedOut: true });
        setClient(r.client);
        if (r.returnTo !== undefined) window.history.replaceState(null, '', `/app${r.returnTo}`);
        const me = await api<Me>('/api/v1/me');
        setState({ me });
      })
      .catch((e: unknown) => setState({ error: e instanceof Error ? e.message : String(e), signedOut: true }));
  }, []);
  if (state.me) {
    return (
      <Router base="/app">{isPatientLogin(state.me) ? <PortalShell me={state.me} /> : <Shell me={state.me} />}</Router>
    );
  }
  if (state.signedOut) {
    const back = window.location.pathname.replace(/^\/app/, '') || '/';
    return (
      <main className="signin">
        <h1>Imaging EHR</h1>
        {state.error && (
          <p role="alert" className="error">
            Sign-in failed: {state.error}
          </p>
        )}
        <button type="button" className="primary" onClick={() => void signIn(back === '/callback' ? '/' : back)}>
          Sign in
        </button>
      </main>
    );
  }
  return (
    <p role="status" className="loading">
      Signing in…
    </p>
  );
}

const root = document.getElementById('root');
if (root) {
  createRoot(root).render(
    <StrictMode>
      <App />
    </StrictMode>,
  );
}

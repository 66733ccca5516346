/**
 * The patient portal: what a patient login (role `patient`) sees instead of the staff screens. The patient's token
 * carries their own Patient as context and read-only patient/ scopes, so every call below reaches their record only;
 * the portal just offers nothing else.
 */
import { Link, Route, Switch, useLocation } from 'wouter';
import { AuthorizationsScreen } from '../screens/authorizations.tsx';
import { signOut } from '../smart.ts';
import { AccessHistory } from './access-history.tsx';
import { MyRecord } from './my-record.tsx';

export interface PortalMe {
  roles: string[];
  patient?: string | null;
}

/** Whether the signed-in user is a patient (the portal), not staff. */
export function isPatientLogin(me: PortalMe): boolean {
  return me.roles.includes('patient');
}

export function PortalShell({ me }: { me: PortalMe }) {
  const [location] = useLocation();
  const patientId = me.patient ?? '';
  const nav = [
    { to: '/', label: 'My record', current: location === '/' || location === '' },
    { to: '/access', label: 'Access history', current: location.startsWith('/access') },
    { to: '/authorizations', label: 'Connected apps', current: location.startsWith('/authorizations') },
  ];
  return (
    <>
      <header className="top">
        <span className="brand">My health record</span>
        <nav aria-label="Main">
          <ul>
            {nav.map((n) => (
              <li key={n.to}>
                <Link href={n.to} aria-current={n.current ? 'page' : undefined}>
                  {n.label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <span className="who">
          Patient{' '}
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
        {patientId === '' ? (
          <p role="alert" className="error">
            Your login is not linked to a patient record. Please contact the hospital.
          </p>
        ) : (
          <Switch>
            <Route path="/access">{() => <AccessHistory patientId={patientId} />}</Route>
            <Route path="/authorizations">{() => <AuthorizationsScreen />}</Route>
            <Route>{() => <MyRecord patientId={patientId} />}</Route>
          </Switch>
        )}
      </main>
    </>
  );
}

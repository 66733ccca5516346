/**
 * Real {@link Access} objects built from a verified token and the caller's resolved patient sets. Pure: every answer
 * comes from the policy ({@link decide}); decisions are memoised per request.
 */
import type { Access, Agent, Interaction, PatientFilter, SearchRestriction } from './access.ts';
import { type Caller, type Decision, decide } from './policy.ts';

export type CallerKind = 'user' | 'patient' | 'system' | 'viewer';

/** The kind of caller: a viewer token, a backend client (system), a token with patient context, or a user. */
export function callerKind(caller: Caller): CallerKind {
  if (caller.viewer || caller.studies !== undefined) return 'viewer';
  if (caller.clientPatients !== undefined) return 'system';
  if (caller.patient !== undefined && caller.scopes.resource.some((s) => s.context === 'patient')) return 'patient';
  return 'user';
}

export function accessFor(caller: Caller, agent: Agent): Access {
  const memo = new Map<string, Decision>();
  const get = (interaction: Interaction, type: string): Decision => {
    const key = `${interaction} ${type}`;
    let d = memo.get(key);
    if (!d) {
      d = decide(caller, interaction, type);
      memo.set(key, d);
    }
    return d;
  };
  return {
    kind: callerKind(caller),
    agent,
    patientContext: caller.patient,
    ...(caller.studies !== undefined ? { studies: caller.studies } : {}),
    scopes: caller.scopes.resource.map((s) => s.raw).concat(caller.scopes.context),
    allows: (interaction: Interaction, type: string): boolean => get(interaction, type).allowed,
    patientFilter: (interaction: Interaction, type: string): PatientFilter => get(interaction, type).filter,
    restrictions: (type: string): readonly SearchRestriction[] => {
      const search = get('search', type);
      return search.allowed ? search.restrictions : get('read', type).restrictions;
    },
  };
}

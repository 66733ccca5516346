import type { AuditEvent, AuditEventAgent, AuditEventEntity } from '@medplum/fhirtypes';
import { type AuditBase, dataEntity, frame, patientEntity, serverAgent } from '../audit/balp.ts';
import { orderEntity, studyEntity } from '../audit/balp-dicom.ts';
import { AGENT_TYPE, type AuditAction, TYPE } from '../audit/codes.ts';
import { appendAuditEvent } from '../audit/store.ts';
import type { ChangeFeedAudit, ChangeFeedAuditEvent } from './ports.ts';

/**
 * AuditEvents of the change feed and the reconciliation queue, built with the audit module's BALP builders and
 * appended to its hash-chained store inside the caller's transaction (so an event exists exactly when the change it
 * records was committed). Indexing a C-STORE study is "DICOM Instances Transferred" (PS3.15 A.5.3.4, action C) whose
 * requesting agent is the facade itself (the system); queue actions name the user.
 */

const ACTIONS: Record<ChangeFeedAuditEvent['action'], { action: AuditAction; text: string }> = {
  'study-linked': { action: 'C', text: 'C-STORE study linked to its order' },
  'study-queued': { action: 'C', text: 'C-STORE study matched no order: queued for reconciliation' },
  'study-relinked': { action: 'U', text: 'unmatched study corrected in Orthanc and linked' },
  'study-rejected': { action: 'U', text: 'unmatched study rejected' },
  'study-deleted': { action: 'D', text: 'study deleted in Orthanc' },
  'relink-failed': { action: 'U', text: 'linking an unmatched study failed' },
  'relink-rolled-back': { action: 'U', text: 'unmatched study restored in Orthanc as queued (re-link rolled back)' },
};

function systemAgent(): AuditEventAgent {
  return {
    type: { coding: [AGENT_TYPE.application] },
    who: { identifier: { value: 'system:change-feed' }, display: 'change-feed consumer (system)' },
    name: 'change-feed consumer',
    requestor: true,
  };
}

function userAgent(who: string, roles: readonly string[]): AuditEventAgent {
  const out: AuditEventAgent = {
    type: { coding: [AGENT_TYPE.author] },
    who: { display: who },
    name: who,
    requestor: true,
  };
  if (roles.length) out.role = roles.map((r) => ({ text: r }));
  return out;
}

/** Builds the AuditEvent (pure apart from the clock). */
export function changeFeedAuditEvent(e: ChangeFeedAuditEvent, serverBaseUrl: string, now = new Date()): AuditEvent {
  const { action, text } = ACTIONS[e.action];
  const base: AuditBase = {
    recorded: now.toISOString(),
    requestId: e.queueItemId ? `unmatched:${e.queueItemId}` : `change-feed:${e.orthancStudyId}`,
    network: undefined,
    serverBaseUrl,
    agent: undefined,
    outcome: e.outcome === 'success' ? '0' : '4',
    outcomeDesc: e.outcome === 'success' ? undefined : (e.detail ?? text).slice(0, 200),
  };
  const entities: AuditEventEntity[] = [];
  if (e.patientId) entities.push(patientEntity(e.patientId));
  entities.push(studyEntity({ studyUid: e.studyInstanceUid }));
  const order = orderEntity({ serviceRequestId: e.orderId });
  if (order) entities.push(order);
  if (e.imagingStudyId) entities.push(dataEntity({ reference: `ImagingStudy/${e.imagingStudyId}` }));
  const direction = action === 'D' ? 'delete' : 'write';
  const event = frame(base, TYPE.instancesTransferred, [], action, direction, entities);
  event.agent = [
    e.agent.kind === 'system' ? systemAgent() : userAgent(e.agent.who, e.agent.roles),
    serverAgent(base, direction),
  ];
  const description = [text, e.detail].filter(Boolean).join(': ');
  event.entity = [
    ...(event.entity ?? []),
    { ...dataEntity({ display: `Orthanc study ${e.orthancStudyId}` }), description },
  ];
  return event;
}

export function changeFeedAudit(serverBaseUrl: string): ChangeFeedAudit {
  return {
    async record(tx, e) {
      await appendAuditEvent(tx, changeFeedAuditEvent(e, serverBaseUrl));
    },
  };
}

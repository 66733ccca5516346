import type { ServiceRequest } from '@medplum/fhirtypes';

/**
 * What happens to an imaging order (FHIR R4 ServiceRequest, https://hl7.org/fhir/R4/valueset-request-status.html)
 * when images for it arrive. Images mean the requested acquisition was performed, so an actionable order becomes
 * `completed` ("the activity described by the request has been fully performed"); the report, if any, is a separate
 * DiagnosticReport and does not keep the order open. Orders that are not (or no longer) actionable refuse images.
 *
 * | status before      | images accepted | status after |
 * |--------------------|-----------------|--------------|
 * | `active`           | yes             | `completed`  |
 * | `on-hold`          | yes             | `completed`  |
 * | `completed`        | yes (more images, or the same again) | `completed` |
 * | `unknown`          | yes             | `completed`  |
 * | `draft`            | no: not yet actionable | — |
 * | `revoked`          | no: cancelled   | — |
 * | `entered-in-error` | no              | — |
 */
export type RequestStatus = ServiceRequest['status'];

export type OrderTransition =
  | { readonly accept: true; readonly status: 'completed'; readonly changed: boolean }
  | { readonly accept: false; readonly reason: string };

export const ORDER_STATUS_ON_IMAGES: Readonly<Record<RequestStatus, OrderTransition>> = {
  active: { accept: true, status: 'completed', changed: true },
  'on-hold': { accept: true, status: 'completed', changed: true },
  completed: { accept: true, status: 'completed', changed: false },
  unknown: { accept: true, status: 'completed', changed: true },
  draft: { accept: false, reason: 'the order is a draft (not yet actionable)' },
  revoked: { accept: false, reason: 'the order was revoked' },
  'entered-in-error': { accept: false, reason: 'the order was entered in error' },
};

export function orderTransition(status: RequestStatus): OrderTransition {
  return ORDER_STATUS_ON_IMAGES[status] ?? { accept: false, reason: `unknown order status ${String(status)}` };
}

/** The extension that carries the founding design's order workflow status where R4's request status has no code. */
export const ORDER_STATUS_EXTENSION = 'http://imaging-ehr.local/fhir/StructureDefinition/order-status';

/** DiagnosticReport statuses that mean the report is out (https://hl7.org/fhir/R4/valueset-diagnostic-report-status.html). */
export const REPORTED_STATUSES: ReadonlySet<string> = new Set(['final', 'amended', 'corrected', 'appended']);

/** Request statuses an order may be in when its report arrives (actionable, or already performed). */
const REPORTABLE: ReadonlySet<string> = new Set(['active', 'on-hold', 'unknown', 'completed']);

/**
 * The order once a released report (a final/amended/corrected/appended DiagnosticReport `basedOn` it) exists: the
 * founding design's status "reported". R4's request status has no such code, so the order becomes `completed`
 * ("fully performed": images and report) and carries {@link ORDER_STATUS_EXTENSION} = `reported`. Undefined when
 * nothing changes (already reported, or the order is a draft, revoked or entered in error).
 */
export function orderOnReport(order: ServiceRequest): ServiceRequest | undefined {
  if (!REPORTABLE.has(order.status)) return undefined;
  const others = (order.extension ?? []).filter((e) => e.url !== ORDER_STATUS_EXTENSION);
  const current = order.extension?.find((e) => e.url === ORDER_STATUS_EXTENSION)?.valueCode;
  if (order.status === 'completed' && current === 'reported') return undefined;
  return {
    ...order,
    status: 'completed',
    extension: [...others, { url: ORDER_STATUS_EXTENSION, valueCode: 'reported' }],
  };
}

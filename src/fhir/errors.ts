import type { OperationOutcome, OperationOutcomeIssue } from '@medplum/fhirtypes';
import { EhrError, type ErrorCode } from '../errors/base.ts';

/** An issue type code from http://hl7.org/fhir/R4/valueset-issue-type.html */
export type IssueCode = OperationOutcomeIssue['code'];

/**
 * A FHIR error: an HTTP status plus OperationOutcome issues. Thrown anywhere below the routes and turned into an
 * OperationOutcome response by the /fhir error handler (https://hl7.org/fhir/R4/http.html#summary).
 */
export class FhirError extends EhrError {
  override readonly code: ErrorCode = 'EHR_FHIR_ERROR';
  override name = 'FhirError';
  readonly issues: OperationOutcomeIssue[];
  constructor(
    status: number,
    code: IssueCode,
    message: string,
    expression?: string[],
    more: OperationOutcomeIssue[] = [],
  ) {
    super(message);
    this.httpStatus = status;
    this.issues = [
      { severity: 'error', code, diagnostics: message, ...(expression?.length ? { expression } : {}) },
      ...more,
    ];
  }
  outcome(): OperationOutcome {
    return { resourceType: 'OperationOutcome', issue: this.issues };
  }
}

/** 400: malformed request, invalid JSON, invalid search value. */
export class BadRequestError extends FhirError {
  override readonly code: ErrorCode = 'EHR_FHIR_BAD_REQUEST';
  override name = 'BadRequestError';
  constructor(message: string, expression?: string[], code: IssueCode = 'invalid') {
    super(400, code, message, expression);
  }
}

/** 400 with the validator's issues (structure errors). */
export class StructureError extends FhirError {
  override readonly code: ErrorCode = 'EHR_FHIR_STRUCTURE';
  override name = 'StructureError';
  constructor(issues: OperationOutcomeIssue[], status = 400) {
    const first = issues[0];
    super(status, first?.code ?? 'structure', first?.details?.text ?? first?.diagnostics ?? 'invalid resource');
    this.issues.splice(0, this.issues.length, ...issues.map((i) => ({ ...i, severity: 'error' as const })));
  }
}

/** 422: the resource breaks one of our profiles or a business rule (dangling reference). */
export class UnprocessableError extends FhirError {
  override readonly code: ErrorCode = 'EHR_FHIR_UNPROCESSABLE';
  override name = 'UnprocessableError';
  constructor(message: string, expression?: string[], code: IssueCode = 'processing') {
    super(422, code, message, expression);
  }
}

/** 403: the caller's access context does not allow this. */
export class ForbiddenError extends FhirError {
  override readonly code: ErrorCode = 'EHR_FHIR_FORBIDDEN';
  override name = 'ForbiddenError';
  constructor(message = 'forbidden') {
    super(403, 'forbidden', message);
  }
}

/** 401: no access context (authentication missing). */
export class UnauthenticatedError extends FhirError {
  override readonly code: ErrorCode = 'EHR_FHIR_UNAUTHENTICATED';
  override name = 'UnauthenticatedError';
  constructor() {
    super(401, 'login', 'authentication required');
  }
}

/** 404: unknown resource, or one the caller may not see (indistinguishable on purpose). */
export class NotFoundError extends FhirError {
  override readonly code: ErrorCode = 'EHR_FHIR_NOT_FOUND';
  override name = 'NotFoundError';
  constructor(message = 'not found') {
    super(404, 'not-found', message);
  }
}

/** 405: the interaction is not supported on this path. */
export class MethodNotAllowedError extends FhirError {
  override readonly code: ErrorCode = 'EHR_FHIR_METHOD_NOT_ALLOWED';
  override name = 'MethodNotAllowedError';
  constructor(message: string) {
    super(405, 'not-supported', message);
  }
}

/** 406: the requested response format is not available (only JSON is served). */
export class NotAcceptableError extends FhirError {
  override readonly code: ErrorCode = 'EHR_FHIR_NOT_ACCEPTABLE';
  override name = 'NotAcceptableError';
  constructor(format: string) {
    super(406, 'not-supported', `format not supported: ${format}`);
  }
}

/** 409: a unique business key (MRN, accession, study UID) already belongs to another resource. */
export class ConflictError extends FhirError {
  override readonly code: ErrorCode = 'EHR_FHIR_CONFLICT';
  override name = 'ConflictError';
  constructor(message: string, expression?: string[]) {
    super(409, 'duplicate', message, expression);
  }
}

/** 410: the resource was deleted. */
export class GoneError extends FhirError {
  override readonly code: ErrorCode = 'EHR_FHIR_GONE';
  override name = 'GoneError';
  constructor(message = 'resource deleted') {
    super(410, 'deleted', message);
  }
}

/** 412: If-Match version conflict, or several matches for a conditional create. */
export class PreconditionFailedError extends FhirError {
  override readonly code: ErrorCode = 'EHR_FHIR_PRECONDITION_FAILED';
  override name = 'PreconditionFailedError';
  constructor(message: string, code: IssueCode = 'conflict') {
    super(412, code, message);
  }
}

/** 415: the request body has a media type we do not read. */
export class UnsupportedMediaTypeError extends FhirError {
  override readonly code: ErrorCode = 'EHR_FHIR_UNSUPPORTED_MEDIA_TYPE';
  override name = 'UnsupportedMediaTypeError';
  constructor(contentType: string) {
    super(415, 'not-supported', `unsupported content type: ${contentType || '(none)'}`);
  }
}

export { internalErrorOutcome } from '../errors/render.ts';

import { EhrError, type ErrorCode } from '../../errors/base.ts';

/** An OAuth 2.0 error response (RFC 6749 §5.2, RFC 7009 §2.2.1, RFC 7662 §2.3). */
export class OAuthError extends EhrError {
  override readonly code: ErrorCode = 'EHR_OAUTH';
  override name = 'OAuthError';
  readonly error: string;
  constructor(error: string, description: string, status?: number) {
    super(description);
    this.error = error;
    this.httpStatus = status ?? (error === 'invalid_client' ? 401 : error === 'temporarily_unavailable' ? 503 : 400);
  }
}

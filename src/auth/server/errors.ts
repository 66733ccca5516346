/** An OAuth 2.0 error response (RFC 6749 §5.2, RFC 7009 §2.2.1, RFC 7662 §2.3). */
export class OAuthError extends Error {
  override name = 'OAuthError';
  readonly error: string;
  readonly status: number;
  constructor(error: string, description: string, status?: number) {
    super(description);
    this.error = error;
    this.status = status ?? (error === 'invalid_client' ? 401 : error === 'temporarily_unavailable' ? 503 : 400);
  }
}

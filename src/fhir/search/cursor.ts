import { BadRequestError } from '../errors.ts';

/**
 * A keyset paging cursor: the sort value and id of the last entry of the previous page. Pages continue strictly
 * after it, so inserts and deletes elsewhere never shift or repeat entries (unlike offsets).
 */
export interface Cursor {
  /** The sort column's value as PostgreSQL text, or null when sorting by id only. */
  v: string | null;
  id: string;
  /** A `previous` link's cursor: the page ends strictly before (v, id) instead of starting after it. */
  back?: boolean;
}

export function encodeCursor(c: Cursor): string {
  return Buffer.from(JSON.stringify(c.back ? [c.v, c.id, 'prev'] : [c.v, c.id]), 'utf8').toString('base64url');
}

/** Decodes a cursor from a `next` link; anything tampered or foreign is a 400. */
export function decodeCursor(raw: string): Cursor {
  try {
    if (!/^[A-Za-z0-9_-]{1,2048}$/.test(raw)) throw new Error('not base64url');
    const parsed = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as unknown;
    if (
      Array.isArray(parsed) &&
      (parsed.length === 2 || (parsed.length === 3 && parsed[2] === 'prev')) &&
      (parsed[0] === null || typeof parsed[0] === 'string') &&
      typeof parsed[1] === 'string'
    ) {
      return parsed.length === 3 ? { v: parsed[0], id: parsed[1], back: true } : { v: parsed[0], id: parsed[1] };
    }
  } catch {
    // fall through
  }
  throw new BadRequestError('invalid paging cursor', ['_cursor']);
}

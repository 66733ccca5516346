import { afterAll, describe, expect, inject, test } from 'vitest';
import { OrthancClient } from '../src/orthanc/client.ts';
import { OrthancHttpError, OrthancUnavailableError } from '../src/orthanc/errors.ts';
import { makeSeries } from './helpers/dicom.ts';
import { orthanc } from './helpers/stow.ts';

/** The typed Orthanc client's instance upload (node:http, kept-alive connections, chunk lists) against the real Orthanc. */

const stack = inject('stack');
const client = new OrthancClient({
  url: stack.orthancUrl,
  username: stack.orthancUsername,
  password: stack.orthancPassword,
  timeoutMs: 10_000,
});
let connections = 0;
const createConnection = client.storeAgent.createConnection.bind(client.storeAgent);
client.storeAgent.createConnection = ((...args: Parameters<typeof createConnection>) => {
  connections++;
  return createConnection(...args);
}) as typeof createConnection;

afterAll(() => client.close());

/** The bytes split into chunks of `size` (as a multipart part arrives). */
const split = (b: Buffer, size: number) =>
  Array.from({ length: Math.ceil(b.length / size) }, (_, i) => b.subarray(i * size, (i + 1) * size));

describe('OrthancClient.storeInstance', () => {
  test('stores a buffer and a chunk list byte for byte; a repeat is AlreadyStored', async () => {
    const s = makeSeries({ patientId: 'CLIENT-1', count: 2 });
    const [a, b] = s.files as [Buffer, Buffer];
    const first = await client.storeInstance(a);
    const second = await client.storeInstance(split(b, 1000));
    expect([first.Status, second.Status]).toEqual(['Success', 'Success']);
    expect(first.ParentStudy).toBe(second.ParentStudy);
    for (const [stored, bytes] of [
      [first, a],
      [second, b],
    ] as const) {
      const file = Buffer.from(await (await orthanc(`/instances/${stored.ID}/file`)).arrayBuffer());
      expect(file.equals(bytes)).toBe(true);
    }
    expect((await client.storeInstance(split(a, 333))).Status).toBe('AlreadyStored');
  });

  test('one after the other, uploads share a kept-alive connection', async () => {
    const s = makeSeries({ patientId: 'CLIENT-2', count: 5 });
    await client.storeInstance(s.files[0]!);
    const before = connections;
    for (const f of s.files.slice(1)) await client.storeInstance(f);
    expect(connections).toBe(before);
  });

  test("Orthanc's refusal carries its reason; an unreachable Orthanc is unavailable", async () => {
    const refused = await client.storeInstance(Buffer.from('not DICOM')).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(OrthancHttpError);
    expect((refused as OrthancHttpError).orthancStatus).toBe(400);
    expect((refused as OrthancHttpError).detail).toBeTruthy();

    const wrong = new OrthancClient({ url: stack.orthancUrl, username: 'nobody', password: 'x', timeoutMs: 5000 });
    const denied = await wrong.storeInstance(makeSeries({ patientId: 'CLIENT-3', count: 1 }).files[0]!).catch((e) => e);
    expect((denied as OrthancHttpError).orthancStatus).toBe(401);
    wrong.close();

    const gone = new OrthancClient({ url: 'http://127.0.0.1:9', username: 'u', password: 'p', timeoutMs: 5000 });
    const down = await gone.storeInstance(Buffer.from('x')).catch((e: unknown) => e);
    expect(down).toBeInstanceOf(OrthancUnavailableError);
    expect((down as OrthancUnavailableError).timedOut).toBe(false);
    gone.close();
  });
});

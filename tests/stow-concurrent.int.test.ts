/**
 * Concurrent first uploads: STOW-RS requests that all find no DICOMweb Endpoint yet must all succeed (one creates
 * it, the others tolerate the concurrent creation) instead of answering 409 and undoing their upload.
 */
import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { expect, test } from 'vitest';
import { testApp } from './helpers/app.ts';
import { adminToken, bearer } from './helpers/auth.ts';
import { makeSeries } from './helpers/dicom.ts';
import { bookPatientAndOrder, multipartBody, STOW_TYPE } from './helpers/stow.ts';

test.each([1, 2, 3])('four concurrent first uploads all store and link their study (round %i)', async (round) => {
  // A fresh Endpoint id per round, so that these uploads are the first ones to need it.
  const app = await testApp({ dicomwebEndpointId: `dw-${randomUUID().slice(0, 8)}` });
  try {
    const auth = bearer(await adminToken(app));
    const orders = await Promise.all([1, 2, 3, 4].map(() => bookPatientAndOrder(app, auth)));
    const boundary = 'concurrent-first';
    const results = await Promise.all(
      orders.map((b) => {
        const s = makeSeries({ patientId: b.mrn, accession: b.accession, count: 1 });
        return request(app.server)
          .post('/dicom-web/studies')
          .set(auth)
          .set('content-type', STOW_TYPE(boundary))
          .send(multipartBody(s.files, boundary));
      }),
    );
    expect(
      results.map((r) => r.status),
      `round ${round}: ${results.map((r) => r.text).join(' ')}`,
    ).toEqual([200, 200, 200, 200]);
  } finally {
    await app.close();
  }
});

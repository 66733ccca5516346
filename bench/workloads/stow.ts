/**
 * STOW-RS ingest (one client sending 40-instance studies, and four concurrent clients), directly into Orthanc and
 * through the facade (validation and matching against booked orders included), and the facade's peak RSS while a big
 * study streams in (STOW) and out (WADO-RS).
 */
import { bookPatient } from '../admin.ts';
import { absolute, type Ctx, paired, type Result } from '../context.ts';
import { failedParts, layoutOf, STOW_CONTENT_TYPE, type StudySpec, stowBody, stowStream, studyFiles } from '../data.ts';
import { heapOf } from '../profile.ts';
import { memoryOf, resetPeakRss, sampleRss } from '../stack.ts';
import { percentile, type Sample } from '../stats.ts';
import type { Target } from '../wrk.ts';
import { INSTANCE_ACCEPT, maybeProfile } from './dicomweb.ts';

let seq = 0;

interface Posted {
  ms: number;
  ok: boolean;
  bytes: number;
}

async function postStudy(t: Target, body: Buffer): Promise<Posted> {
  const t0 = performance.now();
  const res = await fetch(`${t.base}/dicom-web/studies`, {
    method: 'POST',
    headers: { ...t.headers, 'content-type': STOW_CONTENT_TYPE, accept: 'application/dicom+json' },
    body,
  });
  const text = await res.text();
  const ms = performance.now() - t0;
  let ok = res.status === 200;
  if (ok) {
    try {
      ok = !failedParts(text);
    } catch {
      ok = false;
    }
  }
  if (!ok && reported++ < 3)
    process.stderr.write(`STOW-RS to ${t.base} answered ${res.status}: ${text.slice(0, 300)}\n`);
  return { ms, ok, bytes: body.length };
}

let reported = 0;

/** Generates the bodies first (untimed), then `clients` clients each send their studies one after the other. */
async function ingest(t: Target, specs: StudySpec[][]): Promise<Sample> {
  const bodies = specs.map((list) => list.map((s) => stowBody(studyFiles(s))));
  const instances = specs.flat().reduce((n, s) => n + s.series * s.instancesPerSeries, 0);
  const t0 = performance.now();
  const posted = await Promise.all(
    bodies.map(async (list) => {
      const out: Posted[] = [];
      for (const body of list) out.push(await postStudy(t, body));
      return out;
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const all = posted.flat();
  const lat = all.map((p) => p.ms);
  return {
    rate: instances / seconds,
    mbPerS: all.reduce((n, p) => n + p.bytes, 0) / seconds / 1e6,
    p50: percentile(lat, 50),
    p99: percentile(lat, 99),
    errors: all.filter((p) => !p.ok).length,
    count: all.length,
  };
}

export async function stowWorkloads(ctx: Ctx): Promise<Result[]> {
  const out: Result[] = [];
  const per = ctx.cfg.stowStudiesPerClient;
  const facade = await ctx.facadeAs('admin');
  // The DICOM name agrees with the booked patient's (family, given 'Bench'): a contradiction would be held for review.
  const spec = (seed: string, patientId: string, accession: string, family = 'Stow'): StudySpec => ({
    seed,
    patientId,
    patientName: `${family}^Bench`,
    accession,
    studyDate: '20260301',
    series: 2,
    instancesPerSeries: 20,
  });
  for (const clients of [1, 4]) {
    const directSpecs = () =>
      Array.from({ length: clients }, () =>
        Array.from({ length: per }, () => {
          const n = seq++;
          return spec(`stow-direct-${n}`, 'BENCH-STOW-DIRECT', `DSTOW${n}`);
        }),
      );
    const facadeSpecs = async () => {
      const family = `Stow${seq++}`;
      const booking = await bookPatient(ctx.admin, family, clients * per);
      return Array.from({ length: clients }, (_, c) =>
        Array.from({ length: per }, (_, k) => {
          const order = booking.orders[c * per + k];
          if (!order) throw new Error('booking too short');
          return spec(`stow-facade-${seq++}`, booking.mrn, order.accession, family);
        }),
      );
    };
    out.push(
      await paired(ctx, {
        id: `stow-${clients}-client${clients > 1 ? 's' : ''}`,
        group: 'stow',
        label: `STOW-RS, ${clients} client${clients > 1 ? 's' : ''} × ${per} stud${per > 1 ? 'ies' : 'y'} of 40 instances (21 MB each)`,
        unit: 'inst/s',
        showMb: true,
        a: () => ingest(ctx.direct, directSpecs()),
        b: async () => ingest(facade, await facadeSpecs()),
        target: { metric: 'rate', min: 0.85, text: '≥ 0.85×' },
        note: 'facade: parsing, validation, matching to a booked order, ImagingStudy/order update, audit',
      }),
    );
    const id = `stow-${clients}`;
    const specs = ctx.cfg.profile ? await facadeSpecs() : [];
    await maybeProfile(ctx, id, () => ingest(facade, specs));
  }
  return out;
}

/** Peak RSS of the facade while `rssInstances` instances (~0.5 MB each) stream in through STOW-RS, then out. */
export async function rssWorkloads(ctx: Ctx): Promise<Result[]> {
  const pid = ctx.facade.pid;
  const out: Result[] = [];
  const booking = await bookPatient(ctx.admin, 'BigStudy', 1);
  const order = booking.orders[0];
  if (!order) throw new Error('no order for the big study');
  const big: StudySpec = {
    seed: `rss-big-${Date.now()}`,
    patientId: booking.mrn,
    patientName: 'BigStudy^Bench',
    accession: order.accession,
    studyDate: '20260302',
    series: 2,
    instancesPerSeries: Math.ceil(ctx.cfg.rssInstances / 2),
  };
  const facade = await ctx.facadeAs('admin');
  const baseline = memoryOf(pid).rssMb;
  const heap = ctx.facade.inspectPort ? await heapOf(ctx.facade.inspectPort) : '';
  if (heap) ctx.log(`rss: facade before streaming: RSS ${baseline.toFixed(0)} MB; ${heap}`);

  // In: one STOW-RS request carrying the whole study, generated while it is sent (chunked).
  resetPeakRss(pid);
  const inSampler = sampleRss(pid);
  const body = stowStream(big);
  const t0 = performance.now();
  const res = await fetch(`${facade.base}/dicom-web/studies`, {
    method: 'POST',
    headers: { ...facade.headers, 'content-type': STOW_CONTENT_TYPE, accept: 'application/dicom+json' },
    body: body.stream,
    duplex: 'half',
  } as RequestInit);
  const answer = await res.text();
  const inS = (performance.now() - t0) / 1000;
  const inPeak = await inSampler.stop();
  const failed = res.status !== 200 || failedParts(answer);
  const mbIn = (body.count * 0.525).toFixed(0);
  out.push(
    absolute(
      'rss-stow-in',
      'rss',
      `facade peak RSS while ${mbIn} MB stream in (STOW-RS, 1 request of ${body.count} instances)`,
      'MB',
      [Math.max(inPeak.peakMb, inPeak.hwmMb)],
      { max: 250, text: '< 250 MB' },
      `baseline ${baseline.toFixed(0)} MB${heap ? ` (${heap})` : ''}; ${(body.count / inS).toFixed(0)} inst/s; status ${res.status}${failed ? ' WITH FAILURES' : ''}`,
    ),
  );
  ctx.log(
    `rss-stow-in: peak ${Math.max(inPeak.peakMb, inPeak.hwmMb).toFixed(0)} MB, ${inS.toFixed(1)} s, status ${res.status}`,
  );

  // Out: the whole study as multipart/related application/dicom, read and discarded by the client.
  const studyUid = layoutOf(big).studyUid;
  const retrieve = async (t: Target) => {
    const t1 = performance.now();
    const r = await fetch(`${t.base}/dicom-web/studies/${studyUid}`, {
      headers: { ...t.headers, accept: INSTANCE_ACCEPT },
    });
    let bytes = 0;
    for await (const chunk of r.body ?? []) bytes += (chunk as Uint8Array).length;
    return { status: r.status, bytes, s: (performance.now() - t1) / 1000 };
  };
  resetPeakRss(pid);
  const outSampler = sampleRss(pid);
  const got = await retrieve(facade);
  const outPeak = await outSampler.stop();
  const direct = await retrieve(ctx.direct);
  out.push(
    absolute(
      'rss-wado-out',
      'rss',
      `facade peak RSS while ${(got.bytes / 1e6).toFixed(0)} MB stream out (WADO-RS study retrieve)`,
      'MB',
      [Math.max(outPeak.peakMb, outPeak.hwmMb)],
      { max: 250, text: '< 250 MB' },
      `status ${got.status}; facade ${(got.bytes / 1e6 / got.s).toFixed(0)} MB/s, direct ${(direct.bytes / 1e6 / direct.s).toFixed(0)} MB/s (one request each)`,
    ),
  );
  ctx.log(
    `rss-wado-out: peak ${Math.max(outPeak.peakMb, outPeak.hwmMb).toFixed(0)} MB, ${(got.bytes / 1e6).toFixed(0)} MB in ${got.s.toFixed(1)} s`,
  );
  return out;
}

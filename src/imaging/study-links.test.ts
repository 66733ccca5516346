import { describe, expect, test } from 'vitest';
import { onStudyLinksChanged, studyLinksChanged } from './study-links.ts';

describe('study link change signal', () => {
  test.each([[['1.2.3']], [[undefined]], [['1.2', '1.3']]])('listeners receive %o until they unsubscribe', (uids) => {
    const seen: (string | undefined)[] = [];
    const off = onStudyLinksChanged((uid) => seen.push(uid));
    for (const uid of uids) studyLinksChanged(uid);
    off();
    studyLinksChanged('after');
    expect(seen).toEqual(uids);
  });
});

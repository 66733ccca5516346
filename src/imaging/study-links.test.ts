import { describe, expect, test } from 'vitest';
import { onStudyContentChanged, onStudyLinksChanged, studyContentChanged, studyLinksChanged } from './study-links.ts';

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

describe('study content change signal', () => {
  test.each([
    ['a content change', studyContentChanged, { links: [], content: ['1.2'] }],
    ['a link change', studyLinksChanged, { links: ['1.2'], content: ['1.2'] }],
  ])('%s reaches the right listeners', (_w, signal, expected) => {
    const links: (string | undefined)[] = [];
    const content: (string | undefined)[] = [];
    const off1 = onStudyLinksChanged((uid) => links.push(uid));
    const off2 = onStudyContentChanged((uid) => content.push(uid));
    signal('1.2');
    off1();
    off2();
    signal('after');
    expect({ links, content }).toEqual(expected);
  });
});

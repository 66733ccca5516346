import { describe, expect, test } from 'vitest';
import { isOpen, nextStatus, QUEUE_STATUSES, type QueueAction, QueueTransitionError } from './queue-state.ts';

const ACTIONS: QueueAction[] = [
  'start-link',
  'finish-link',
  'reject',
  'study-deleted',
  'linked-by-upload',
  'roll-back',
];

function NONE(): Record<QueueAction, null> {
  return Object.fromEntries(ACTIONS.map((a) => [a, null])) as Record<QueueAction, null>;
}

/** The whole table: every status × action, `null` where the move is refused. */
const TABLE: Record<string, Record<QueueAction, string | null>> = {
  pending: {
    'start-link': 'relinking',
    'finish-link': null,
    reject: 'rejected',
    'study-deleted': 'deleted',
    'linked-by-upload': 'linked',
    'roll-back': null,
  },
  relinking: {
    'start-link': 'relinking',
    'finish-link': 'linked',
    reject: null,
    'study-deleted': null,
    'linked-by-upload': null,
    'roll-back': 'pending',
  },
  rejected: {
    'start-link': 'relinking',
    'finish-link': null,
    reject: null,
    'study-deleted': 'deleted',
    'linked-by-upload': null,
    'roll-back': null,
  },
  linked: NONE(),
  deleted: NONE(),
};

const cases = QUEUE_STATUSES.flatMap((from) => ACTIONS.map((a) => [from, a, TABLE[from]![a]] as const));

describe('queue state transitions', () => {
  test.each(cases)('%s --%s--> %s', (from, action, to) => {
    if (to === null) {
      expect(() => nextStatus(from, action)).toThrow(QueueTransitionError);
    } else {
      expect(nextStatus(from, action)).toBe(to);
    }
  });

  test('the refusal names the status and the action', () => {
    expect(() => nextStatus('linked', 'reject')).toThrow('cannot reject an item that is linked');
    expect(() => nextStatus('linked', 'roll-back')).toThrow('cannot roll back an item that is linked');
  });

  test.each([
    ['pending', true],
    ['relinking', true],
    ['rejected', true],
    ['linked', false],
    ['deleted', false],
  ] as const)('%s open: %s', (status, open) => {
    expect(isOpen(status)).toBe(open);
  });
});

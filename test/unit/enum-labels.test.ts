import { describe, expect, it } from 'vitest';
import { EnumLabels } from '../../replay/enum-labels.js';

// Labels a replay must make an enum with from its creation (replay/enum-labels.ts): placed as
// the captured order says, the type's own labels kept where they are, across a type's renames.

const unsafe = (label: string, type: string) => ({ code: '55P04', message: `unsafe use of new value "${label}" of enum type ${type}` });

describe('EnumLabels', () => {
  it('puts a needed label before the first label it precedes in the captured order', () => {
    const labels = new EnumLabels();
    labels.capturedOrder('public', 'e', ['a', 'b', 'c']);
    expect(labels.learn(unsafe('b', 'e'))).toEqual({ type: 'e', label: 'b' });
    expect(labels.labelsFor('public', 'e', ['a', 'c'])).toEqual(['a', 'b', 'c']);
  });

  it('keeps the type’s own labels in place when the captured order lacks them (renamed since), and adds at the end without an order', () => {
    const labels = new EnumLabels();
    // ok was renamed to fine after the base; calm added at the end later.
    labels.capturedOrder('public', 'mood', ['sad', 'fine', 'ecstatic', 'calm']);
    labels.learn(unsafe('calm', 'mood'));
    expect(labels.labelsFor('public', 'mood', ['sad', 'ok'])).toEqual(['sad', 'ok', 'calm']);
    const unordered = new EnumLabels();
    unordered.learn(unsafe('x', 'other'));
    expect(unordered.labelsFor('public', 'other', ['a'])).toEqual(['a', 'x']);
  });

  it('gives a type the labels found needed under the names it took later (renamed after the base)', () => {
    const labels = new EnumLabels();
    labels.renamed('public', 'mood', 'public', 'feeling');
    labels.renamed('public', 'feeling', 'other', 'feels');
    labels.capturedOrder('other', 'feels', ['sad', 'ok', 'calm']);
    labels.learn(unsafe('calm', 'other.feels'));
    expect(labels.labelsFor('public', 'mood', ['sad', 'ok'])).toEqual(['sad', 'ok', 'calm']);
    // Another type is not given them.
    expect(labels.labelsFor('public', 'unrelated', ['sad'])).toEqual(['sad']);
  });
});

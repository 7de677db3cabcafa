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
    // The first attempt: the base's type, then two captured renames, then an added label used.
    labels.createEnum('public', 'mood', ['sad', 'ok']);
    labels.tick();
    labels.renamed('public', 'mood', 'public', 'feeling');
    labels.tick();
    labels.renamed('public', 'feeling', 'other', 'feels');
    labels.tick();
    labels.capturedOrder('other', 'feels', ['sad', 'ok', 'calm']);
    labels.learn(unsafe('calm', 'other.feels'));
    // The next attempt makes the base's type with it.
    labels.restart();
    expect(labels.labelsFor('public', 'mood', ['sad', 'ok'])).toEqual(['sad', 'ok', 'calm']);
    // Another type is not given them.
    expect(labels.labelsFor('public', 'unrelated', ['sad'])).toEqual(['sad']);
  });

  it('tells a type from another that took its name later, and two types that swapped names', () => {
    const labels = new EnumLabels();
    const attempt = () => {
      labels.restart();
      labels.createEnum('public', 'feel', ['a']);
      labels.createEnum('public', 'sa', ['1']);
      labels.createEnum('public', 'sb', ['2']);
      labels.tick();
      labels.renamed('public', 'feel', 'public', 'feel_old');
      labels.tick();
      const made = labels.createEnum('public', 'feel', ['x']);
      labels.tick();
      labels.capturedOrder('public', 'feel_old', ['a', 'c']);
      for (const [from, to] of [
        ['sa', 'tmp'],
        ['sb', 'sa'],
        ['tmp', 'sb'],
      ]) {
        labels.tick();
        labels.renamed('public', from!, 'public', to!);
      }
      return made;
    };
    attempt();
    labels.learn(unsafe('c', 'feel_old'));
    labels.learn(unsafe('9', 'sa'));
    // The base's feel (renamed feel_old) is made with c; the feel made after it is not.
    expect(attempt()).toBe(`CREATE TYPE "public"."feel" AS ENUM ('x')`);
    labels.restart();
    expect(labels.labelsFor('public', 'feel', ['a'])).toEqual(['a', 'c']);
    // '9' was needed by the type called sa at the end: the base's sb.
    expect(labels.labelsFor('public', 'sb', ['2'])).toEqual(['2', '9']);
    expect(labels.labelsFor('public', 'sa', ['1'])).toEqual(['1']);
  });

  it('does not give a type made again under a dropped one’s name the labels of the dropped one', () => {
    const labels = new EnumLabels();
    labels.createEnum('public', 'e', ['a']);
    labels.tick();
    labels.learn(unsafe('b', 'e'));
    labels.tick();
    labels.dropped('e');
    labels.tick();
    labels.restart();
    labels.tick();
    labels.tick();
    labels.tick();
    expect(labels.labelsFor('public', 'e', ['z'])).toEqual(['z']);
  });
  it('foresees every label the span adds, across renames of the type and of its schema, placed in the captured order', () => {
    const labels = new EnumLabels();
    const enumType = (oid: number, schema: string, name: string, list: string[], was?: { schema: string; name: string }) => ({
      oid,
      schema,
      name,
      kind: 'e',
      create: '',
      labels: list,
      ...(was ? { was } : {}),
    });
    labels.foresee(
      [{ schema: 'public', name: 'mood', labels: ['sad', 'ok'] }],
      [
        // 1: a label added before the first (the order places it); 2: the type moved; 3: its schema renamed, then a label added.
        { at: 1, ddl: { tag: '', types: [enumType(7, 'public', 'mood', ['meh', 'sad', 'ok'])] } },
        { at: 2, ddl: { tag: '', types: [enumType(7, 'pal', 'mood', ['meh', 'sad', 'ok'], { schema: 'public', name: 'mood' })] } },
        { at: 4, ddl: { tag: '', renamedSchemas: [{ from: 'pal', identity: 'paints', rename: '', back: '' }] } },
        { at: 6, ddl: { tag: '', types: [enumType(7, 'paints', 'mood', ['meh', 'sad', 'ok', 'calm'])] } },
        // 7: renamed (RENAME VALUE), not added: not made ahead; 8: a type made since, then given a label, then dropped.
        { at: 7, ddl: { tag: '', types: [enumType(7, 'paints', 'mood', ['meh', 'sad', 'fine', 'calm'])] } },
        { at: 8, ddl: { tag: '', types: [enumType(9, 'public', 'other', ['x'])] } },
        { at: 9, ddl: { tag: '', types: [enumType(9, 'public', 'other', ['x', 'y'])] } },
      ],
    );
    expect(labels.read).toBe(true);
    // The base's type, made at the start of the next attempt, with both labels in place.
    expect(labels.labelsFor('public', 'mood', ['sad', 'ok'])).toEqual(['meh', 'sad', 'ok', 'calm']);
    // A type made later under another's old name is not given them.
    for (let i = 0; i < 8; i++) labels.tick();
    expect(labels.labelsFor('public', 'other', ['x'])).toEqual(['x', 'y']);
    labels.tick();
    expect(labels.labelsFor('public', 'mood', ['a'])).toEqual(['a']);
    // A label foreseen is not learned as found: one that still fails is learned and tried again.
    expect(labels.learn(unsafe('calm', 'paints.mood'))).toEqual({ type: 'paints.mood', label: 'calm' });
  });
});

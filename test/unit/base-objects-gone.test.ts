import { describe, expect, it } from 'vitest';
import type { CapturedDdl } from '../../src/source/ddl-capture.js';
import { BaseObjectsGone } from '../../replay/base-objects-gone.js';

// Captured DDL as the event triggers record it (identities as pg_identify_object writes them).
const drop = (type: string, identity: string): CapturedDdl =>
  ({ tag: 'DROP', droppedObjects: [{ type, identity, names: [] }] }) as CapturedDdl;
const rename = (kind: string, from: string, identity: string): CapturedDdl =>
  ({ tag: 'ALTER', objects: [{ kind, identity, create: '', renamed: { from, rename: '', back: '' } }] }) as CapturedDdl;
const schemaRename = (from: string, identity: string): CapturedDdl =>
  ({ tag: 'ALTER SCHEMA', renamedSchemas: [{ from, identity, rename: '', back: '' }] }) as CapturedDdl;

describe('BaseObjectsGone: the base comments on objects dropped since', () => {
  it('knows a dropped view, its columns, a function and a type by the names the base gives them', () => {
    const gone = new BaseObjectsGone();
    for (const c of [drop('view', 'public.v'), drop('function', 'public.f(integer)'), drop('type', 'public."Mood"')]) gone.follow(c);
    expect(gone.commentGone('view public.v')).toBe(true);
    expect(gone.commentGone('view column public.v.x')).toBe(true);
    expect(gone.commentGone('function public.f(integer)')).toBe(true);
    expect(gone.commentGone('type public."Mood"')).toBe(true);
    // Others of the same names or kinds are not.
    expect(gone.commentGone('view public.w')).toBe(false);
    expect(gone.commentGone('function public.f(bigint)')).toBe(false);
    expect(gone.commentGone('materialized view public.v')).toBe(false);
    expect(gone.commentGone('type public.mood')).toBe(false);
  });

  it('follows renames: a base view renamed keeps its comment, one made under its old name and dropped takes nothing', () => {
    const gone = new BaseObjectsGone();
    gone.follow(rename('view', 'public.v', 'public.v2'));
    gone.follow(drop('view', 'public.v'));
    expect(gone.commentGone('view public.v')).toBe(false);
    gone.follow(drop('view', 'public.v2'));
    expect(gone.commentGone('view public.v')).toBe(true);
    expect(gone.commentGone('view public.v2')).toBe(false);
  });

  it('follows schema renames, before and after an object renamed', () => {
    const gone = new BaseObjectsGone();
    gone.follow(rename('function', 's.f()', 's.g()'));
    gone.follow(schemaRename('s', 't'));
    gone.follow(drop('function', 't.h()'));
    expect(gone.commentGone('function s.h()')).toBe(true);
    gone.follow(drop('function', 't.g()'));
    expect(gone.commentGone('function s.f()')).toBe(true);
    expect(gone.commentGone('function s.g()')).toBe(false);
    // A schema made since under the base schema's name holds nothing of the base's.
    gone.follow(drop('view', 's.v'));
    expect(gone.commentGone('view s.v')).toBe(false);
    gone.follow(drop('view', 't.v'));
    expect(gone.commentGone('view s.v')).toBe(true);
  });

  it('knows what hangs on a base relation by its base name', () => {
    const gone = new BaseObjectsGone();
    gone.droppedFrom('public.Order', 'mark it');
    expect(gone.commentGone('trigger "mark it" on public."Order"')).toBe(true);
    expect(gone.commentGone('table constraint "mark it" on public."Order"')).toBe(true);
    expect(gone.commentGone('trigger "mark it" on public."order"')).toBe(false);
    expect(gone.commentGone('trigger other on public."Order"')).toBe(false);
  });
});

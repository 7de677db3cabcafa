import { describe, expect, it } from 'vitest';
import { parseCapturedDdl } from '../../src/source/ddl-capture.js';

// What a captured DDL message holds of a session's temporary objects: nothing. Found by
// PostgreSQL's rowtypes.sql, which makes functions in public over a temporary table's row type.
describe('parseCapturedDdl', () => {
  const read = (payload: object) => parseCapturedDdl(Buffer.from(JSON.stringify(payload)));

  it('leaves out objects, comments and drops that name a temporary schema, and keeps the rest', () => {
    const captured = read({
      tag: 'CREATE FUNCTION',
      objects: [
        { kind: 'function', identity: 'public.fcompos1(pg_temp_5.compos)', create: 'create function …' },
        { kind: 'function', identity: 'public.keep(public.compos)', create: 'create function …' },
        // A schema of the user's whose name merely contains the pattern is not temporary, nor a quoted name that holds it.
        { kind: 'function', identity: 'xpg_temp_1.f(integer)', create: 'create function …' },
        { kind: 'function', identity: 'public."x pg_temp_1.y"(integer)', create: 'create function …' },
      ],
      comments: [{ kind: 'function', identity: 'public.longname(pg_toast_temp_3.fullname)', comment: 'gone' }],
      droppedObjects: [{ type: 'function', identity: 'public.f(pg_temp_12.t, integer)', names: [] }],
      unfollowed: [{ kind: 'operator', identity: 'public.=(pg_temp_2.a,pg_temp_2.a)' }],
    });
    expect(captured.objects?.map((o) => o.identity)).toEqual([
      'public.keep(public.compos)',
      'xpg_temp_1.f(integer)',
      'public."x pg_temp_1.y"(integer)',
    ]);
    expect(captured.comments).toEqual([]);
    expect(captured.droppedObjects).toEqual([]);
    expect(captured.unfollowed).toEqual([]);
  });

  it('leaves out the shapes of temporary tables', () => {
    const captured = read({
      tag: 'CREATE TABLE',
      tables: [
        { schema: 'pg_temp_3', name: 't' },
        { schema: 'public', name: 'u' },
      ],
    });
    expect(captured.tables?.map((t) => t.name)).toEqual(['u']);
  });
});

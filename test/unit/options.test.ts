import { describe, expect, it } from 'vitest';
import { ExitCode, UserError } from '../../src/core/errors.js';
import { Command } from 'commander';
import { parseTableName, selectedTables, splitTableList, tableOption, tablesOption } from '../../src/commands/options.js';

const HINT = 'use schema.table, or "Odd Schema"."Odd Table" with quotes for names holding dots';

function refusal(text: string): UserError {
  try {
    parseTableName(text);
  } catch (err) {
    expect(err).toBeInstanceOf(UserError);
    return err as UserError;
  }
  throw new Error(`parseTableName(${JSON.stringify(text)}) did not throw`);
}

describe('parseTableName', () => {
  it.each([
    ['t', 'public.t'],
    ['orders', 'public.orders'],
    ['shop.orders', 'shop.orders'],
    ['MyTable', 'public.MyTable'],
    ['"Order Lines"', 'public.Order Lines'],
    ['shop."Order Lines"', 'shop.Order Lines'],
    ['"Odd Schema"."Odd Table"', 'Odd Schema.Odd Table'],
    ['"a.b"."c""d"', 'a.b.c"d'],
    ['"x.y.z"', 'public.x.y.z'],
    ['""""', 'public."'],
    ['"a,b".t', 'a,b.t'],
    ['s.ünïcode', 's.ünïcode'],
  ])('reads %j as %j', (text, name) => {
    expect(parseTableName(text)).toBe(name);
  });

  it.each([
    ['  t', 'public.t'],
    ['  shop.orders', 'shop.orders'],
    [' "s" . "t" ', 's.t'],
    ['"s".  "t"', 's.t'],
    ['\t"a b"\n', 'public.a b'],
  ])('skips whitespace around parts: %j is %j', (text, name) => {
    expect(parseTableName(text)).toBe(name);
  });

  it('keeps whitespace inside a quoted part', () => {
    expect(parseTableName('"  padded  "')).toBe('public.  padded  ');
  });

  // Whitespace after an unquoted part is not part of the name, as before it.
  it('drops whitespace after an unquoted part ("s . t" is s.t)', () => {
    expect(parseTableName('s . t')).toBe('s.t');
    expect(parseTableName(' t ')).toBe('public.t');
  });

  it.each([
    ['a.b.c', 'three parts'],
    ['"a"."b"."c"', 'three quoted parts'],
    ['', 'nothing'],
    ['.t', 'an empty schema'],
    ['a..b', 'an empty middle part'],
    ['"a', 'an unclosed quote'],
    ['a"', 'a stray closing quote'],
    ['a"b', 'a quote inside an unquoted part'],
    ['"a"b', 'text after a closing quote'],
    ['"a""', 'an odd run of quotes'],
    ['"s"."t', 'an unclosed second part'],
  ])('refuses %j (%s)', (text) => {
    const err = refusal(text);
    expect(err.message).toBe(`${JSON.stringify(text)} is not a table name`);
    expect(err.hint).toBe(HINT);
    expect(err.exitCode).toBe(ExitCode.BAD_INPUT);
  });

  // A trailing dot leaves the table out; an empty quoted part names nothing.
  it('refuses a trailing dot ("shop." is not public.shop)', () => {
    expect(() => parseTableName('shop.')).toThrow(UserError);
  });

  it('refuses an empty quoted name and a blank one', () => {
    expect(() => parseTableName('""')).toThrow(UserError);
    expect(() => parseTableName('s.""')).toThrow(UserError);
    expect(() => parseTableName(' . ')).toThrow(UserError);
  });
});

describe('splitTableList', () => {
  it.each<[string, string[]]>([
    ['a', ['a']],
    ['a,b', ['a', 'b']],
    ['shop.orders, shop.lines ,public.t', ['shop.orders', 'shop.lines', 'public.t']],
    ['"x,y".t, s.u', ['"x,y".t', 's.u']],
    ['"a""b,c".d,e', ['"a""b,c".d', 'e']],
    ['s."t,1","u,2".v', ['s."t,1"', '"u,2".v']],
  ])('splits %j into %j', (text, items) => {
    expect(splitTableList(text)).toEqual(items);
  });

  it.each<[string, string[]]>([
    ['a,,b', ['a', 'b']],
    [',a,', ['a']],
    [' , ,', []],
    ['', []],
  ])('drops empty items: %j gives %j', (text, items) => {
    expect(splitTableList(text)).toEqual(items);
  });

  it('splits at a comma after an unbalanced quote (the name is then refused by parseTableName)', () => {
    expect(splitTableList('"a,b')).toEqual(['"a', 'b']);
    expect(() => parseTableName('"a')).toThrow(UserError);
  });

  it('gives items parseTableName reads', () => {
    expect(splitTableList('t, "Odd, Schema"."x.y", s.u').map(parseTableName)).toEqual(['public.t', 'Odd, Schema.x.y', 's.u']);
  });
});

describe('--table and --tables', () => {
  const parse = (...args: string[]) => {
    const command = new Command('t')
      .exitOverride()
      .addOption(tableOption('a table'))
      .addOption(tablesOption())
      .action(() => {});
    command.parse(args, { from: 'user' });
    return selectedTables(command.opts());
  };

  it('--table takes one name, a comma in it included; --tables a list; both join', () => {
    expect(parse('--table', 'a, b')).toEqual(new Set(['public.a, b']));
    expect(parse('--tables', 'a, b')).toEqual(new Set(['public.a', 'public.b']));
    expect(parse('--table', 's.t', '--table', 'u', '--tables', 'v,s.t')).toEqual(new Set(['s.t', 'public.u', 'public.v']));
    expect(parse()).toBeUndefined();
  });
});

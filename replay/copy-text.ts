import { UNCHANGED, type Value } from './planner.js';

const NEEDS_ESCAPE = /[\\\t\n\r]/;

/**
 * One field of COPY's text format: values are the text Postgres sent, so only backslash, tab,
 * newline and carriage return need escaping; NULL is \N.
 */
export function copyField(v: Value): string {
  if (v === null) return '\\N';
  if (v === UNCHANGED) throw new Error('an unchanged TOAST value cannot be copied');
  const s = v.toString('utf8');
  if (!NEEDS_ESCAPE.test(s)) return s;
  return s.replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'));
}


import { UNCHANGED, type Value } from './values.js';

const NULL = Buffer.from('\\N');
const SPECIAL = /[\\\t\n\r]/g;

/**
 * One field of COPY's text format, as bytes: values are the text Postgres sent, so only
 * backslash, tab, newline and carriage return need escaping; NULL (and an unchanged value, which
 * the statement using it ignores) is \N.
 */
export function copyField(v: Value): Buffer {
  if (v === null || v === UNCHANGED) return NULL;
  if (v.indexOf(0x5c) < 0 && v.indexOf(0x09) < 0 && v.indexOf(0x0a) < 0 && v.indexOf(0x0d) < 0) return v;
  return Buffer.from(v.toString('utf8').replace(SPECIAL, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r')));
}

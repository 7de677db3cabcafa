// LSNs are 64-bit; JavaScript numbers lose precision past 2^53, so they are bigints everywhere.
export type Lsn = bigint;

const TEXT_FORM = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;
const KEY_FORM = /^[0-9A-F]{16}$/;

/** Parses the `X/Y` form Postgres prints. Returns undefined when the text is not an LSN. */
export function tryParseLsn(text: string): Lsn | undefined {
  const m = TEXT_FORM.exec(text.trim());
  if (!m) return undefined;
  return (BigInt('0x' + m[1]) << 32n) | BigInt('0x' + m[2]);
}

export function parseLsn(text: string): Lsn {
  const lsn = tryParseLsn(text);
  if (lsn === undefined) throw new Error(`not an LSN: ${JSON.stringify(text)} (expected the form 0/16B3748)`);
  return lsn;
}

/** The `X/Y` form, as Postgres prints it. */
export function formatLsn(lsn: Lsn): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** 16 upper-case hex digits: sorts as text in LSN order and has no `/` (docs/ARCHITECTURE.md, Store layout). */
export function lsnKey(lsn: Lsn): string {
  return lsn.toString(16).toUpperCase().padStart(16, '0');
}

export function parseLsnKey(key: string): Lsn | undefined {
  return KEY_FORM.test(key) ? BigInt('0x' + key) : undefined;
}

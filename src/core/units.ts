import { UserError } from './errors.js';

const BYTE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  kib: 1024,
  m: 1e6,
  mb: 1e6,
  mib: 1024 ** 2,
  g: 1e9,
  gb: 1e9,
  gib: 1024 ** 3,
  t: 1e12,
  tb: 1e12,
  tib: 1024 ** 4,
};

/** A size for people: `812 B`, `3.4 KiB`, `64.0 MiB`, `1.25 GiB`. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1 << 20) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1 << 30) return `${(bytes / (1 << 20)).toFixed(1)} MiB`;
  return `${(bytes / (1 << 30)).toFixed(2)} GiB`;
}

/** `64MiB`, `500kB`, `1048576`. */
/** A size with an optional unit; `min` (bytes) refuses sizes that would make no sense. */
export function parseBytes(text: string, option: string, min = 0): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m ? BYTE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined)
    throw new UserError(`${option}: ${JSON.stringify(text)} is not a size`, 'use a number of bytes or a unit: 64MiB, 500kB, 1GiB, 2TiB');
  const bytes = Math.round(Number(m[1]) * unit);
  if (!Number.isSafeInteger(bytes))
    throw new UserError(`${option}: ${JSON.stringify(text)} is too large to be a size`, 'use a size below 8 PiB');
  if (bytes < min) throw new UserError(`${option}: ${JSON.stringify(text)} is too small`, `use at least ${formatBytes(min)}`);
  return bytes;
}

/** A number greater than zero; `integer` refuses fractions (counts). */
export function parsePositive(value: string | number, option: string, integer = false): number {
  // Defaults are numbers (so that --help prints them as such); flags, variables and files give text.
  const text = String(value);
  const n = text.trim() === '' ? NaN : Number(text);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n)))
    throw new UserError(
      `${option}: ${JSON.stringify(text)} is not a positive ${integer ? 'whole number' : 'number'}`,
      `use a number greater than 0 (for example ${option} ${integer ? '8' : '60'})`,
    );
  return n;
}

const DURATION_UNITS: Record<string, number> = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3 };

/** A duration in milliseconds: `90s`, `15m`, `6h`, `30d`, `2w`. */
export function parseDuration(text: string, option: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$/i.exec(text);
  const ms = m ? Number(m[1]) * DURATION_UNITS[m[2]!.toLowerCase()]! : NaN;
  if (!(ms > 0))
    throw new UserError(`${option}: ${JSON.stringify(text)} is not a duration`, 'use a number and a unit: 90s, 15m, 6h, 30d, 2w');
  return ms;
}

/** Microseconds since the Unix epoch as ISO 8601 with all six fractional digits. */
export function formatMicros(micros: bigint): string {
  // Floor, not truncation toward zero: before 1970 the second is the one below.
  const fraction = ((micros % 1_000_000n) + 1_000_000n) % 1_000_000n;
  const iso = new Date(Number((micros - fraction) / 1000n)).toISOString();
  return `${iso.slice(0, 19)}.${fraction.toString().padStart(6, '0')}Z`;
}

export function parsePort(text: string): number {
  const n = /^\s*\d+\s*$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new UserError(`--metrics-port: ${JSON.stringify(text)} is not a port number`, 'use a number from 1 to 65535 (0: any free port)');
  return n;
}

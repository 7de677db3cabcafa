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
};

/** `64MiB`, `500kB`, `1048576`. */
export function parseBytes(text: string, option: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m ? BYTE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined)
    throw new UserError(`${option}: ${JSON.stringify(text)} is not a size`, 'use a number of bytes or a unit: 64MiB, 500kB, 1GiB');
  return Math.round(Number(m[1]) * unit);
}

export function parsePositive(text: string, option: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new UserError(`${option}: ${JSON.stringify(text)} is not a positive number`);
  return n;
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

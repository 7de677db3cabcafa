import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * Logs go to stderr so that stdout stays for command output (`pgtape log`, `replay.json`).
 * JSON for machines; pino-pretty when a person is watching a terminal.
 * Secrets are kept out at the source (see redactUrl), and redacted here again in case a
 * config object is ever logged whole.
 */
export function createLogger(options: { level?: string; pretty?: boolean } = {}): Logger {
  const level = options.level ?? process.env.PGTAPE_LOG_LEVEL ?? 'info';
  const pretty = options.pretty ?? (process.stderr.isTTY && process.env.PGTAPE_LOG_FORMAT !== 'json');
  const redact = {
    paths: ['password', '*.password', 'connectionString', '*.connectionString', 'secretAccessKey', '*.secretAccessKey'],
    censor: '***',
  };
  if (pretty) {
    return pino({
      level,
      redact,
      transport: { target: 'pino-pretty', options: { destination: 2, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } },
    });
  }
  return pino({ level, redact, base: { pid: process.pid } }, pino.destination({ dest: 2, sync: true }));
}

/** A URL with its password (and any `password=` query parameter) replaced, for logs and errors. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    for (const key of [...u.searchParams.keys()]) {
      if (/pass|secret|token|key$/i.test(key)) u.searchParams.set(key, '***');
    }
    return u.toString();
  } catch {
    // Not a URL (a keyword/value connection string, say): hide anything that looks like a password.
    return url.replace(/(password\s*=\s*)('[^']*'|\S+)/gi, '$1***');
  }
}

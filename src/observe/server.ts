import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { UserError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { ArchiveMetrics } from './metrics.js';

/** What /readyz reports: ready when streaming and the store takes writes. */
export interface Readiness {
  ready(): { ready: boolean; reasons: string[] };
}

/**
 * /metrics (Prometheus), /healthz (the process answers) and /readyz (streaming, and the store
 * writable) on one port, for Kubernetes probes and scrapes.
 */
export async function startObserveServer(
  port: number,
  host: string,
  metrics: ArchiveMetrics,
  readiness: Readiness,
  log: Logger,
): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/metrics') {
      metrics.registry
        .metrics()
        .then((body) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body))
        .catch((err: Error) => res.writeHead(500).end(err.message));
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const r = readiness.ready();
      res.writeHead(r.ready ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(r) + '\n');
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics, /healthz or /readyz\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'EADDRINUSE' || err.code === 'EACCES'
          ? new UserError(
              `--metrics-port ${port}: ${err.code === 'EADDRINUSE' ? 'the port is in use' : 'not allowed'} on ${host}`,
              'choose another port',
            )
          : err,
      ),
    );
    server.listen(port, host, () => resolve());
  });
  server.unref();
  log.info({ port: (server.address() as AddressInfo).port, host }, 'serving /metrics, /healthz and /readyz');
  return server;
}

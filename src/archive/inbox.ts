import type { PgoutputMessage } from '../pgoutput/messages.js';

/**
 * The pgoutput messages received and not handled yet, in arrival order, and the back-pressure
 * on the connection: the socket is not read while anything waits here or is being handled.
 *
 * That is also what keeps the messages valid. They are views into node-postgres's read buffer,
 * which it overwrites when the next read arrives; while the socket is paused nothing arrives, so
 * a message stays intact until its handling (which copies what it keeps) is over. At most one
 * read's worth of messages waits here.
 */
export class MessageInbox {
  private messages: (PgoutputMessage | undefined)[] = [];
  private head = 0;
  private paused = false;

  constructor(private readonly socket: { pause(): void; resume(): void }) {}

  get length(): number {
    return this.messages.length - this.head;
  }

  push(msg: PgoutputMessage): void {
    this.messages.push(msg);
    this.hold();
  }

  /** Stops reading: a message's handling is not over. */
  hold(): void {
    if (this.paused) return;
    this.paused = true;
    this.socket.pause();
  }

  shift(): PgoutputMessage | undefined {
    if (this.head === this.messages.length) return undefined;
    const msg = this.messages[this.head];
    this.messages[this.head++] = undefined;
    if (this.head === this.messages.length) {
      this.messages = [];
      this.head = 0;
    }
    return msg;
  }

  /** Everything received is handled: reading goes on. */
  release(): void {
    if (!this.paused || this.length > 0) return;
    this.paused = false;
    this.socket.resume();
  }

  /** Drops everything: a lost connection's messages are sent again by the next one. */
  clear(): void {
    this.messages = [];
    this.head = 0;
    this.release();
  }
}

/** The exit codes of every command, as the README's table documents them. */
export const ExitCode = {
  /** Done. */
  DONE: 0,
  /** An unexpected error: a bug, or a failure pgtape has no advice for. */
  UNEXPECTED: 1,
  /** Bad input or environment: the message says what is wrong and what to do; nothing stored was touched. */
  BAD_INPUT: 2,
  /** The store conflicts with what pgtape was about to write. */
  CONFLICT: 3,
  /** The archive or its stream needs attention (damage found, a warning printed). */
  ATTENTION: 4,
} as const;

export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/**
 * An error the user can act on: `message` says what is wrong, `hint` what to do about it.
 * The CLI prints both without a stack trace and exits with `exitCode`.
 */
export class UserError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
    readonly exitCode: ExitCode = ExitCode.BAD_INPUT,
  ) {
    super(message);
    this.name = 'UserError';
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

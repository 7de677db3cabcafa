/**
 * An error the user can act on: `message` says what is wrong, `hint` what to do about it.
 * The CLI prints both without a stack trace and exits with `exitCode`.
 */
export class UserError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
    readonly exitCode = 2,
  ) {
    super(message);
    this.name = 'UserError';
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** Exit codes the README documents: 2 bad input, 3 a conflict in the store, 4 the archive or its stream needs attention. */
export const EXIT_ATTENTION = 4;

/**
 * The error every `meshledger` command throws for bad flags or arguments: main() prints it with the
 * command's usage and exits with 2, so scripts can tell a usage mistake from a failed command (exit 1).
 */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

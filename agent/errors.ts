/**
 * Stable error codes of verdict-agent. Callers branch on `code`; messages say
 * what to do next.
 */
export class AgentError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}

export const usageError = (message: string) => new AgentError('VERDICT_USAGE', message);

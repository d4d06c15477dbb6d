/**
 * JSON-RPC 2.0 errors.
 *
 * Standard codes (JSON-RPC 2.0 §5.1) and the application table (-32000..-32099). The application table is the
 * single source of truth: `schemas/openrpc.json` lists the same entries under `components.errors` (keyed by the
 * same names, same code and message) and a unit test checks that the two agree.
 *
 * Application errors always carry `data: { rule: string, ... }`. For most entries the rule is the entry's own
 * name (`{"rule":"unknown_block"}`); for `invalid_transaction` and `mempool_rejected` it names the specific
 * ledger / mempool rule that failed (e.g. `{"rule":"bad_nonce"}`).
 */

/** The codes JSON-RPC 2.0 itself defines. */
export const STANDARD_ERRORS = {
  PARSE_ERROR: { code: -32700, message: 'Parse error' },
  INVALID_REQUEST: { code: -32600, message: 'Invalid Request' },
  METHOD_NOT_FOUND: { code: -32601, message: 'Method not found' },
  INVALID_PARAMS: { code: -32602, message: 'Invalid params' },
  INTERNAL_ERROR: { code: -32603, message: 'Internal error' },
} as const;

export const PARSE_ERROR = STANDARD_ERRORS.PARSE_ERROR.code;
export const INVALID_REQUEST = STANDARD_ERRORS.INVALID_REQUEST.code;
export const METHOD_NOT_FOUND = STANDARD_ERRORS.METHOD_NOT_FOUND.code;
export const INVALID_PARAMS = STANDARD_ERRORS.INVALID_PARAMS.code;
export const INTERNAL_ERROR = STANDARD_ERRORS.INTERNAL_ERROR.code;

/** Application errors. Keys are the names used in `data.rule` and in the OpenRPC `components.errors`. */
export const APP_ERRORS = {
  unknown_block: { code: -32000, message: 'Unknown block' },
  unknown_transaction: { code: -32001, message: 'Unknown transaction' },
  invalid_transaction: { code: -32002, message: 'Invalid transaction' },
  mempool_rejected: { code: -32003, message: 'Transaction rejected by the mempool' },
  rate_limited: { code: -32004, message: 'Rate limited' },
  unauthorized: { code: -32005, message: 'Unauthorized' },
  not_ready: { code: -32006, message: 'Node not ready' },
  subscription_error: { code: -32007, message: 'Subscription error' },
} as const satisfies Record<string, { code: number; message: string }>;

export type AppErrorName = keyof typeof APP_ERRORS;

/** The JSON-RPC error object as it goes on the wire. */
export interface RpcErrorObject {
  code: number;
  message: string;
  data?: unknown;
}

export class RpcError extends Error {
  readonly code: number;
  readonly data?: unknown;

  constructor(code: number, message: string, data?: unknown) {
    super(message);
    this.name = 'RpcError';
    if (!Number.isInteger(code)) throw new TypeError(`RpcError code must be an integer, got ${code}`);
    this.code = code;
    if (data !== undefined) this.data = data;
  }

  toErrorObject(): RpcErrorObject {
    return this.data === undefined ? { code: this.code, message: this.message } : { code: this.code, message: this.message, data: this.data };
  }

  static parseError(detail?: string): RpcError {
    return new RpcError(PARSE_ERROR, detail ? `${STANDARD_ERRORS.PARSE_ERROR.message}: ${detail}` : STANDARD_ERRORS.PARSE_ERROR.message);
  }

  /** `rule` names what made the request invalid (e.g. `jsonrpc_version`, `batch_too_large`). */
  static invalidRequest(detail?: string, rule?: string): RpcError {
    const msg = detail ? `${STANDARD_ERRORS.INVALID_REQUEST.message}: ${detail}` : STANDARD_ERRORS.INVALID_REQUEST.message;
    return new RpcError(INVALID_REQUEST, msg, rule ? { rule } : undefined);
  }

  static methodNotFound(method?: string): RpcError {
    return new RpcError(
      METHOD_NOT_FOUND,
      STANDARD_ERRORS.METHOD_NOT_FOUND.message,
      method === undefined ? undefined : { rule: 'method_not_found', method: method.length > 100 ? `${method.slice(0, 100)}…` : method },
    );
  }

  /** `detail` should name the offending parameter, e.g. `"height" must be >= 0`. */
  static invalidParams(detail: string, data?: Record<string, unknown>): RpcError {
    return new RpcError(INVALID_PARAMS, `${STANDARD_ERRORS.INVALID_PARAMS.message}: ${detail}`, { rule: 'invalid_params', ...data });
  }

  /** The message is generic on purpose: internal details go to the log, never to the caller. */
  static internal(): RpcError {
    return new RpcError(INTERNAL_ERROR, STANDARD_ERRORS.INTERNAL_ERROR.message);
  }

  /**
   * An application error from the table. `data.rule` defaults to the entry's name; pass `rule` for
   * `invalid_transaction` / `mempool_rejected` to name the specific rule. Extra `data` fields are merged in.
   */
  static app(name: AppErrorName, opts: { message?: string; rule?: string; data?: Record<string, unknown> } = {}): RpcError {
    const entry = APP_ERRORS[name];
    return new RpcError(entry.code, opts.message ?? entry.message, { ...opts.data, rule: opts.rule ?? name });
  }
}

export function isRpcError(e: unknown): e is RpcError {
  return e instanceof RpcError;
}

/** The table entry for an application code, if any. */
export function appErrorByCode(code: number): { name: AppErrorName; code: number; message: string } | undefined {
  for (const [name, entry] of Object.entries(APP_ERRORS) as [AppErrorName, { code: number; message: string }][]) {
    if (entry.code === code) return { name, code: entry.code, message: entry.message };
  }
  return undefined;
}

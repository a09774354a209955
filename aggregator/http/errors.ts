import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyRequest } from 'fastify';

/**
 * Every error the HTTP API answers, in one shape: `{ error: "VERDICT_...",
 * message }` (the ErrorReply schema). fastify's own errors (FST_ERR_* codes,
 * the raw-socket "Client Error") are translated here, so a client never sees
 * a framework code or a message that does not say what to do.
 */
export interface ErrorBody {
  error: string;
  message: string;
}

export interface ErrorAnswer {
  status: number;
  body: ErrorBody;
}

/** The code for a 4xx status when nothing more specific applies. */
const CODE_BY_STATUS: Record<number, string> = {
  400: 'VERDICT_BAD_REQUEST',
  401: 'VERDICT_UNAUTHENTICATED',
  403: 'VERDICT_FORBIDDEN',
  404: 'VERDICT_NOT_FOUND',
  405: 'VERDICT_METHOD_NOT_ALLOWED',
  406: 'VERDICT_NOT_ACCEPTABLE',
  408: 'VERDICT_REQUEST_TIMEOUT',
  413: 'VERDICT_BODY_TOO_LARGE',
  414: 'VERDICT_URL_TOO_LONG',
  415: 'VERDICT_UNSUPPORTED_MEDIA_TYPE',
  431: 'VERDICT_HEADERS_TOO_LARGE',
};

/** A reader the authorizer refused: 401 without (known) credentials, 403 without the grant; the reason says which. */
export function accessDenied(status: 401 | 403, reason: string): ErrorBody {
  return { error: status === 401 ? 'VERDICT_UNAUTHENTICATED' : 'VERDICT_FORBIDDEN', message: reason };
}

/** fastify's request errors (fastify/lib/errors.js), each with what the client should change. */
function frameworkError(err: FastifyError, req: FastifyRequest): ErrorAnswer | undefined {
  const contentType = String(req.headers['content-type'] ?? '');
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return {
        status: 413,
        body: {
          error: 'VERDICT_BODY_TOO_LARGE',
          message: `the request body is larger than the ${req.routeOptions.bodyLimit ?? 'configured'} bytes this route accepts; send a smaller body`,
        },
      };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return {
        status: 415,
        body: {
          error: 'VERDICT_UNSUPPORTED_MEDIA_TYPE',
          message: `this API reads JSON bodies, not "${contentType.slice(0, 100)}"; send Content-Type: application/json`,
        },
      };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return {
        status: 400,
        body: {
          error: 'VERDICT_BAD_REQUEST',
          message: 'Content-Type is application/json but the body is empty; send a JSON document, or no Content-Type',
        },
      };
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return {
        status: 400,
        body: {
          error: 'VERDICT_INVALID_JSON',
          // fastify's parser answers this both for broken JSON and for a "__proto__" or "constructor.prototype" key
          // (secure-json-parse refuses them), and its message says only "not valid JSON": name both.
          message: `the body is not valid JSON or holds a "__proto__" or "constructor" key, which this API refuses (${err.message}); send a JSON document`,
        },
      };
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return {
        status: 400,
        body: {
          error: 'VERDICT_BAD_REQUEST',
          message: 'Content-Length does not match the body that was sent; send the exact length of the body',
        },
      };
    case 'FST_ERR_BAD_URL':
      return {
        status: 400,
        body: {
          error: 'VERDICT_BAD_URL',
          message: 'the URL path has an invalid percent-escape; encode reserved characters as %XX with two hex digits',
        },
      };
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return {
        status: 414,
        body: {
          error: 'VERDICT_URL_TOO_LONG',
          message: `a path segment is longer than the ${MAX_PARAM_LENGTH} characters any Verdict name may have; check the name`,
        },
      };
    default:
      break;
  }
  // secure-json-parse refuses __proto__ and constructor.prototype keys with a 400 SyntaxError.
  if (err instanceof SyntaxError && err.statusCode === 400)
    return {
      status: 400,
      body: {
        error: 'VERDICT_INVALID_JSON',
        message: `the body is refused as JSON (${err.message}); send a plain JSON document`,
      },
    };
  return undefined;
}

/** The longest path parameter: a Kubernetes object name (DNS subdomain, 253 characters). */
export const MAX_PARAM_LENGTH = 253;

/**
 * The answer for an error that reached the error handler: schema validation,
 * fastify's own request errors, errors a handler threw with a 4xx status; 5xx
 * for everything else (a bug: the caller logs it, the client gets no detail).
 */
export function errorAnswer(err: FastifyError, req: FastifyRequest): ErrorAnswer {
  if (err.validation) {
    return {
      status: 400,
      body: {
        error: 'VERDICT_BAD_REQUEST',
        message:
          `${err.validationContext ?? 'request'} ${err.message.replace(/^(querystring|params|body|headers)\s*/, '')}; see /docs for the API`.trim(),
      },
    };
  }
  const known = frameworkError(err, req);
  if (known) return known;
  const status =
    typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
  if (status === 500)
    return { status, body: { error: 'VERDICT_INTERNAL', message: 'internal error; see the aggregator log' } };
  const code =
    typeof err.code === 'string' && err.code.startsWith('VERDICT_')
      ? err.code
      : (CODE_BY_STATUS[status] ?? 'VERDICT_BAD_REQUEST');
  return {
    status,
    body: { error: code, message: err.message || `${STATUS_CODES[status] ?? 'bad request'}; see /docs for the API` },
  };
}

/**
 * Node's HTTP parser refused the bytes before fastify saw a request (fastify's
 * default answers `{"message":"Client Error"}` here). Same codes as
 * http.Server's own handling: 408 on a request timeout, 431 on header
 * overflow, 400 otherwise; then the connection closes.
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, body]: [number, ErrorBody] =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [
          408,
          {
            error: 'VERDICT_REQUEST_TIMEOUT',
            message: 'the request was not received in time; send it again without pausing',
          },
        ]
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? [
            431,
            {
              error: 'VERDICT_HEADERS_TOO_LARGE',
              message: 'the request line and headers exceed 16 KiB; send a shorter URL or fewer headers',
            },
          ]
        : [
            400,
            {
              error: 'VERDICT_BAD_REQUEST',
              message: `the request is not valid HTTP/1.1 (${err.code ?? 'parse error'}); check the client`,
            },
          ];
  const text = JSON.stringify(body);
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
    );
  }
  socket.destroy(err);
}

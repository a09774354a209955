import { readFileSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { StringDecoder } from 'node:string_decoder';
import { parse as parseYaml } from 'yaml';
import { VerdictError } from './errors.js';

/** Where the API server is and how to prove who we are. */
export interface KubeConnection {
  /** https://host:port (http:// only for tests against a local stand-in). */
  server: string;
  /** Bearer token; read per request so rotated projected tokens are picked up. */
  token?: () => string | undefined;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  /** Where this came from, for messages. */
  describe: string;
}

/** The code of every KubeApiError. */
export const KUBE_API_ERROR = 'VERDICT_KUBE_API';

/**
 * A failed API call (a VerdictError with code VERDICT_KUBE_API): the HTTP status (0: none, the server was not
 * reached or the kubeconfig is unusable) and the Status object's reason when there is one.
 */
export class KubeApiError extends VerdictError {
  constructor(
    readonly status: number,
    readonly reason: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(KUBE_API_ERROR, detail, options);
  }
}

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** The client's fixed settings (shared by verdict-agent and verdict-aggregator). */
const KUBE_CLIENT_SETTINGS = {
  /** A token file (projected tokens rotate) is read again at most this often. */
  tokenRereadMs: 60_000,
  /** Idle connections to the API server are kept this long. */
  keepAliveTimeoutMs: 30_000,
  /** A request fails when the API server has not answered its headers, or sent more of a body, in this long. */
  headersTimeoutMs: 15_000,
  bodyTimeoutMs: 30_000,
} as const;

/**
 * In-cluster configuration: the API server from KUBERNETES_SERVICE_HOST/PORT
 * (the serving certificate is only guaranteed for that address), the pod's
 * service-account token and CA. The token file is re-read at most once a
 * minute, since projected tokens rotate.
 */
export function inClusterConnection(env = process.env, saDir = SA_DIR): KubeConnection | undefined {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT_HTTPS ?? env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) return undefined;
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    token: cachedFile(`${saDir}/token`, KUBE_CLIENT_SETTINGS.tokenRereadMs),
    ca: readFileSync(`${saDir}/ca.crt`),
    describe: 'in-cluster service account',
  };
}

function cachedFile(path: string, maxAgeMs: number): () => string {
  let value = '';
  let readAt = 0;
  return () => {
    if (Date.now() - readAt > maxAgeMs) {
      value = readFileSync(path, 'utf8').trim();
      readAt = Date.now();
    }
    return value;
  };
}

type KubeconfigDoc = {
  'current-context'?: string;
  contexts?: { name: string; context: { cluster: string; user: string } }[];
  clusters?: {
    name: string;
    cluster: { server: string; 'certificate-authority'?: string; 'certificate-authority-data'?: string };
  }[];
  users?: {
    name: string;
    user: {
      token?: string;
      tokenFile?: string;
      'client-certificate'?: string;
      'client-certificate-data'?: string;
      'client-key'?: string;
      'client-key-data'?: string;
    };
  }[];
};

/** A kubeconfig file's current context: server, CA, and a token or client certificate. */
export function kubeconfigConnection(path: string): KubeConnection {
  let doc: KubeconfigDoc;
  try {
    doc = parseYaml(readFileSync(path, 'utf8')) as KubeconfigDoc;
  } catch (err) {
    throw new KubeApiError(0, 'BadKubeconfig', `cannot read kubeconfig ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const ctxName = doc['current-context'];
  const ctx = doc.contexts?.find((c) => c.name === ctxName)?.context;
  if (!ctx)
    throw new KubeApiError(0, 'BadKubeconfig', `${path}: current-context "${ctxName ?? ''}" is not among its contexts`);
  const cluster = doc.clusters?.find((c) => c.name === ctx.cluster)?.cluster;
  const user = doc.users?.find((u) => u.name === ctx.user)?.user ?? {};
  if (!cluster?.server) throw new KubeApiError(0, 'BadKubeconfig', `${path}: cluster "${ctx.cluster}" has no server`);
  const fileOrData = (file?: string, data?: string) =>
    data ? Buffer.from(data, 'base64') : file ? readFileSync(file) : undefined;
  const token = user.token;
  return {
    server: cluster.server.replace(/\/$/, ''),
    token: user.tokenFile
      ? cachedFile(user.tokenFile, KUBE_CLIENT_SETTINGS.tokenRereadMs)
      : token
        ? () => token
        : undefined,
    ca: fileOrData(cluster['certificate-authority'], cluster['certificate-authority-data']),
    cert: fileOrData(user['client-certificate'], user['client-certificate-data']),
    key: fileOrData(user['client-key'], user['client-key-data']),
    describe: `kubeconfig ${path}`,
  };
}

/**
 * A small Kubernetes API client over node:https (node:http for an http:// stand-in in tests): JSON in, JSON out, Status
 * errors as KubeApiError. Not undici: its module graph (fetch, WebSocket, caches, the llhttp WebAssembly) added some
 * 9 MiB to the agent's resting RSS for the few GETs the agent makes, and node:https is loaded already with gRPC's TLS.
 */
export class KubeClient {
  private readonly agent: HttpAgent;
  private readonly send: typeof httpsRequest;

  constructor(readonly connection: KubeConnection) {
    const plain = connection.server.startsWith('http:');
    const options = {
      keepAlive: true,
      // An idle kept-alive connection is closed after this long (Node's agent applies `timeout` to free sockets).
      timeout: KUBE_CLIENT_SETTINGS.keepAliveTimeoutMs,
    };
    this.agent = plain
      ? new HttpAgent(options)
      : new HttpsAgent({ ...options, ca: connection.ca, cert: connection.cert, key: connection.key });
    this.send = plain ? httpRequest : httpsRequest;
  }

  async get<T>(path: string): Promise<T> {
    return this.call<T>('GET', path);
  }

  async create<T>(path: string, body: unknown): Promise<T> {
    return this.call<T>('POST', path, body);
  }

  async replace<T>(path: string, body: unknown): Promise<T> {
    return this.call<T>('PUT', path, body);
  }

  async call<T>(
    method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
    path: string,
    body?: unknown,
    contentType = 'application/json',
  ): Promise<T> {
    const headers = this.headers();
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body), 'utf8');
    if (payload) {
      headers['content-type'] = contentType;
      headers['content-length'] = String(payload.length);
    }
    let res: IncomingMessage;
    let text: string;
    try {
      res = await this.open(method, path, headers, payload);
      text = await bodyText(res, KUBE_CLIENT_SETTINGS.bodyTimeoutMs);
    } catch (err) {
      throw this.unreachable(method, path, err);
    }
    const statusCode = res.statusCode ?? 0;
    // Not 2xx: a Status object, or a proxy's or redirect's answer (not followed: the token is not sent elsewhere).
    if (statusCode < 200 || statusCode >= 300) throw failedAnswer(method, path, res, text);
    try {
      return (text ? JSON.parse(text) : {}) as T;
    } catch (err) {
      throw new KubeApiError(
        statusCode,
        'BadResponse',
        `${method} ${path}: ${statusCode} answer is not JSON: ${text.slice(0, 300)}`,
        { cause: err },
      );
    }
  }

  /** Every request's headers: JSON, and the bearer token when the connection has one (read at each request). */
  private headers(): Record<string, string> {
    const headers: Record<string, string> = { accept: 'application/json' };
    const token = this.connection.token?.();
    if (token) headers.authorization = `Bearer ${token}`;
    return headers;
  }

  /** A request that got no complete answer: the server was not reached, or the connection failed before the end. */
  private unreachable(method: string, path: string, err: unknown): KubeApiError {
    const { server, describe } = this.connection;
    const detail = `${method} ${path} on ${server} (${describe}) failed: ${(err as Error).message}`;
    return new KubeApiError(0, 'Unreachable', detail, { cause: err });
  }

  /**
   * A watch: the response body as lines of JSON (one watch event each), until
   * the server ends it or `signal` aborts. HTTP errors throw KubeApiError; with
   * `idleMs`, so does a watch that sends nothing for that long.
   */
  async *watchLines(path: string, signal: AbortSignal, idleMs?: number): AsyncGenerator<string> {
    const headers = this.headers();
    let res: IncomingMessage;
    try {
      res = await this.open('GET', path, headers, undefined, signal);
    } catch (err) {
      throw signal.aborted ? signal.reason : this.unreachable('GET', path, err);
    }
    const statusCode = res.statusCode ?? 0;
    if (statusCode < 200 || statusCode >= 300) {
      let text: string;
      try {
        text = await bodyText(res, KUBE_CLIENT_SETTINGS.bodyTimeoutMs);
      } catch (err) {
        throw this.unreachable('GET', path, err);
      }
      throw failedAnswer('GET', path, res, text);
    }
    // A watch's body has no time limit: the server ends it (timeoutSeconds) or `signal` does. With idleMs, a watch
    // that sends nothing for that long is taken for a dead connection (a peer gone without a FIN or RST, which TCP
    // alone notices after hours) and fails, so the caller watches again instead of waiting for good.
    const idle = idleMs === undefined ? undefined : idleLimit(res, idleMs, 'watch data');
    const decoder = new StringDecoder('utf8');
    // The pieces of a line not ended yet: only each new chunk is searched for the newline and the pieces are joined
    // once, so an event of many chunks (a large object) costs its length, not its length times its chunks.
    const pieces: string[] = [];
    try {
      for await (const chunk of res) {
        idle?.touch();
        let text = decoder.write(chunk as Buffer);
        let nl: number;
        while ((nl = text.indexOf('\n')) >= 0) {
          pieces.push(text.slice(0, nl));
          const line = pieces.join('').trim();
          pieces.length = 0;
          text = text.slice(nl + 1);
          if (line) yield line;
        }
        if (text) pieces.push(text);
      }
    } catch (err) {
      // Aborted: the signal's reason (an AbortError), not the "aborted" of the connection it closed.
      throw signal.aborted ? signal.reason : err;
    } finally {
      idle?.stop();
    }
    const rest = (pieces.join('') + decoder.end()).trim();
    if (rest) yield rest;
  }

  /**
   * Sends a request and answers its response once the headers are in; fails when they take longer than
   * headersTimeoutMs (the request is then destroyed) or `signal` aborts.
   */
  private open(
    method: string,
    path: string,
    headers: Record<string, string>,
    payload?: Buffer,
    signal?: AbortSignal,
  ): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req = this.send(`${this.connection.server}${path}`, { method, headers, agent: this.agent, signal });
      const timer = setTimeout(() => {
        req.destroy(new KubeClientTimeout(`no response headers within ${KUBE_CLIENT_SETTINGS.headersTimeoutMs} ms`));
      }, KUBE_CLIENT_SETTINGS.headersTimeoutMs);
      timer.unref();
      req.once('response', (res) => {
        clearTimeout(timer);
        resolve(res);
      });
      req.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      req.end(payload);
    });
  }

  async close(): Promise<void> {
    this.agent.destroy();
  }
}

/** A complete answer that is not 2xx: its Status object's reason and message, else its code and its body's start. */
function failedAnswer(method: string, path: string, res: IncomingMessage, text: string): KubeApiError {
  const statusCode = res.statusCode ?? 0;
  let reason = String(statusCode);
  let message = text.slice(0, 300);
  try {
    const status = JSON.parse(text) as { reason?: string; message?: string };
    reason = status.reason ?? reason;
    message = status.message ?? message;
  } catch {
    // not a Status object
  }
  if (res.headers.location) message = `redirected to ${res.headers.location}${message ? `: ${message}` : ''}`;
  return new KubeApiError(statusCode, reason, `${method} ${path}: ${statusCode} ${reason}: ${message}`);
}

/** A request that timed out (its message says which limit). */
class KubeClientTimeout extends Error {
  override name = 'KubeClientTimeout';
}

/**
 * Destroys `res` with a KubeClientTimeout ("no <what> within idleMs ms") once it has been idle that long: started at
 * once, `touch` on each chunk, `stop` at the end.
 */
function idleLimit(res: IncomingMessage, idleMs: number, what: string): { touch(): void; stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  const touch = () => {
    clearTimeout(timer);
    timer = setTimeout(() => res.destroy(new KubeClientTimeout(`no ${what} within ${idleMs} ms`)), idleMs);
    timer.unref();
  };
  touch();
  return { touch, stop: () => clearTimeout(timer) };
}

/**
 * A response's body as text (UTF-8, decoded once); fails when the server sends nothing for `idleMs` while the body is
 * not complete (the response is then destroyed).
 */
function bodyText(res: IncomingMessage, idleMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const idle = idleLimit(res, idleMs, 'body data');
    res.on('data', (c: Buffer) => {
      chunks.push(c);
      idle.touch();
    });
    res.once('end', () => {
      idle.stop();
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
    res.once('error', (err) => {
      idle.stop();
      reject(err);
    });
    res.once('close', () => {
      idle.stop();
      if (!res.complete) reject(new Error('the API server closed the connection before the end of the body'));
    });
  });
}

import { readFileSync } from 'node:fs';
import { Agent, request, type Dispatcher } from 'undici';
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

/** A small Kubernetes API client over undici: JSON in, JSON out, Status errors as KubeApiError. */
export class KubeClient {
  private readonly dispatcher: Dispatcher;

  constructor(readonly connection: KubeConnection) {
    this.dispatcher = new Agent({
      connect: { ca: connection.ca, cert: connection.cert, key: connection.key },
      keepAliveTimeout: KUBE_CLIENT_SETTINGS.keepAliveTimeoutMs,
    });
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
    const headers: Record<string, string> = { accept: 'application/json' };
    const token = this.connection.token?.();
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = contentType;
    let res: Dispatcher.ResponseData;
    try {
      res = await request(`${this.connection.server}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        dispatcher: this.dispatcher,
        headersTimeout: KUBE_CLIENT_SETTINGS.headersTimeoutMs,
        bodyTimeout: KUBE_CLIENT_SETTINGS.bodyTimeoutMs,
      });
    } catch (err) {
      throw new KubeApiError(
        0,
        'Unreachable',
        `${method} ${path} on ${this.connection.server} (${this.connection.describe}) failed: ${(err as Error).message}`,
        { cause: err },
      );
    }
    const text = await res.body.text();
    if (res.statusCode >= 400) {
      let reason = String(res.statusCode);
      let message = text.slice(0, 300);
      try {
        const status = JSON.parse(text) as { reason?: string; message?: string };
        reason = status.reason ?? reason;
        message = status.message ?? message;
      } catch {
        // not a Status object
      }
      throw new KubeApiError(res.statusCode, reason, `${method} ${path}: ${res.statusCode} ${reason}: ${message}`);
    }
    return (text ? JSON.parse(text) : {}) as T;
  }

  /**
   * A watch: the response body as lines of JSON (one watch event each), until
   * the server ends it or `signal` aborts. HTTP errors throw KubeApiError.
   */
  async *watchLines(path: string, signal: AbortSignal): AsyncGenerator<string> {
    const headers: Record<string, string> = { accept: 'application/json' };
    const token = this.connection.token?.();
    if (token) headers.authorization = `Bearer ${token}`;
    const res = await request(`${this.connection.server}${path}`, {
      method: 'GET',
      headers,
      dispatcher: this.dispatcher,
      signal,
      headersTimeout: KUBE_CLIENT_SETTINGS.headersTimeoutMs,
      bodyTimeout: 0,
    });
    if (res.statusCode >= 400) {
      const text = await res.body.text();
      let reason = String(res.statusCode);
      try {
        reason = (JSON.parse(text) as { reason?: string }).reason ?? reason;
      } catch {
        // not a Status object
      }
      throw new KubeApiError(res.statusCode, reason, `GET ${path}: ${res.statusCode} ${reason}`);
    }
    let buf = '';
    for await (const chunk of res.body) {
      buf += (chunk as Buffer).toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line) yield line;
      }
    }
    if (buf.trim()) yield buf.trim();
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}

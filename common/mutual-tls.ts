import { createSecureContext } from 'node:tls';
import { errorDetail, VerdictError } from './errors.js';

/** Files of one side of mutual TLS: its certificate and key, and the CA that signs the other side. */
export interface MutualTlsFiles {
  cert: string;
  key: string;
  ca: string;
}

/**
 * The --tls-cert/--tls-key/--tls-ca triple both programs take: all three or
 * none (undefined); any other mix is a usage error naming the missing flags.
 */
export function mutualTlsFlags(
  values: { 'tls-cert'?: string; 'tls-key'?: string; 'tls-ca'?: string },
  code = 'VERDICT_USAGE',
): MutualTlsFiles | undefined {
  const { 'tls-cert': cert, 'tls-key': key, 'tls-ca': ca } = values;
  if (!cert && !key && !ca) return undefined;
  if (cert && key && ca) return { cert, key, ca };
  const missing = [!cert && '--tls-cert', !key && '--tls-key', !ca && '--tls-ca'].filter(Boolean).join(', ');
  throw new VerdictError(code, `mutual TLS needs all of --tls-cert, --tls-key and --tls-ca (missing ${missing})`);
}

/**
 * Mutual-TLS material checked as Node's TLS will use it (PEM, a key that matches its certificate): what OpenSSL
 * refuses becomes one VERDICT_CONFIG_INVALID line naming the flags, where grpc-js would throw OpenSSL's error with a
 * stack from deep inside its credentials.
 */
export function checkTlsMaterial(pem: { ca: Buffer; cert: Buffer; key: Buffer }): void {
  try {
    createSecureContext({ ca: pem.ca, cert: pem.cert, key: pem.key });
  } catch (err) {
    throw new VerdictError(
      'VERDICT_CONFIG_INVALID',
      `--tls-cert, --tls-key and --tls-ca cannot be used: ${errorDetail(err)}; give PEM files, the key matching the certificate`,
      { cause: err },
    );
  }
}

import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { configError } from '../errors.js';

/**
 * The operator's Ed25519 key (--signing-key FILE, PEM PKCS#8, e.g. from `openssl genpkey -algorithm ed25519`):
 * signs the exact bytes of every download, and publishes its public key (PEM SPKI) in report status and with
 * each download. Ed25519 signs the message itself (no pre-hash), so `openssl pkeyutl -verify -rawin` checks it.
 */
export interface EvidenceSigner {
  publicKeyPem: string;
  sign(data: string | Uint8Array): Buffer;
}

export function loadSigningKey(file: string): EvidenceSigner {
  let key: KeyObject;
  try {
    key = createPrivateKey(readFileSync(file));
  } catch (err) {
    throw configError(`--signing-key ${file}: ${(err as Error).message}; give a PEM PKCS#8 Ed25519 private key`, {
      cause: err,
    });
  }
  if (key.asymmetricKeyType !== 'ed25519')
    throw configError(
      `--signing-key ${file} is a ${key.asymmetricKeyType ?? 'symmetric'} key; give an Ed25519 one (openssl genpkey -algorithm ed25519)`,
    );
  const publicKeyPem = createPublicKey(key).export({ type: 'spki', format: 'pem' }).toString();
  return { publicKeyPem, sign: (data) => sign(null, toBytes(data), key) };
}

/** Whether `signature` is `publicKeyPem`'s Ed25519 signature of `data`; false for a key that is not Ed25519. */
export function verifySignature(publicKeyPem: string, data: string | Uint8Array, signature: Uint8Array): boolean {
  const key = createPublicKey(publicKeyPem);
  if (key.asymmetricKeyType !== 'ed25519') return false;
  return verify(null, toBytes(data), key, signature);
}

const toBytes = (data: string | Uint8Array): Uint8Array =>
  typeof data === 'string' ? Buffer.from(data, 'utf8') : data;

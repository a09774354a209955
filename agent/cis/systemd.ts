import { posix } from 'node:path';
import type { HostView } from './host.js';

/** A systemd service as systemd would assemble it from its unit and drop-ins. */
export interface SystemdService {
  unitFile?: string;
  /** Drop-in files applied, in the order systemd applies them. */
  dropIns: string[];
  /** The effective ExecStart, split into words with $VAR and ${VAR} expanded. */
  execStart?: string[];
  /** The file whose ExecStart= line is the effective one. */
  execStartFile?: string;
  environment: Map<string, string>;
  /** Every [Service] assignment in the order systemd applies them. */
  assignments: { key: string; value: string; file: string }[];
  /**
   * Files systemd would read that exist but cannot be read here (the unit, a
   * drop-in directory or file, an EnvironmentFile): what the service runs is
   * then unknown, and nothing read from it may PASS.
   */
  errors: string[];
}

/** [Service] settings that collect values across lines; an empty assignment clears them. */
const LIST_PROPERTIES = new Set([
  'IPAddressAllow',
  'IPAddressDeny',
  'Environment',
  'EnvironmentFile',
  'ExecStartPre',
  'ExecStartPost',
  'SupplementaryGroups',
  'CapabilityBoundingSet',
]);

/** Where systemd looks for units, highest precedence first. */
export const SYSTEMD_UNIT_DIRS: readonly string[] = [
  '/etc/systemd/system',
  '/run/systemd/system',
  '/usr/local/lib/systemd/system',
  '/usr/lib/systemd/system',
  '/lib/systemd/system',
];

/** A [Service] property as systemd ends up with it: list properties joined by spaces, others the last value. */
export function serviceProperty(
  service: SystemdService,
  property: string,
): { value: string | undefined; file?: string } {
  let value: string | undefined;
  let file: string | undefined;
  for (const a of service.assignments) {
    if (a.key !== property) continue;
    file = a.file;
    if (LIST_PROPERTIES.has(property)) value = a.value === '' ? undefined : [value, a.value].filter(Boolean).join(' ');
    else value = a.value === '' ? undefined : a.value;
  }
  return { value, file };
}

/**
 * Read a service the way systemd builds it: the unit from the first directory
 * that has it, then `<unit>.d/*.conf` drop-ins from every directory (a name in an
 * earlier directory masks the same name later), applied in lexical order of
 * file name. An empty `ExecStart=` resets the list; `Environment=` and
 * `EnvironmentFile=` (a leading `-` means optional) feed the expansion.
 */
export function readSystemdService(host: HostView, unit: string, dirs: readonly string[]): SystemdService | undefined {
  const errors: string[] = [];
  let unitFile: string | undefined;
  let unitReadable = false;
  for (const path of dirs.map((d) => posix.join(d, unit))) {
    const st = host.stat(path);
    if (st.kind === 'absent') continue;
    // `systemctl mask` links the unit to /dev/null: systemd will not start it at all.
    if (st.kind === 'found' && st.facts.resolvedPath === '/dev/null') return undefined;
    if (st.kind === 'error') errors.push(unreadable(path, st.reason));
    unitFile = path;
    unitReadable = st.kind === 'found';
    break;
  }
  const dropInByName = new Map<string, string>();
  for (const dir of dirs.map((d) => posix.join(d, `${unit}.d`))) {
    const listing = host.listDir(dir);
    if (listing.kind === 'error') errors.push(unreadable(dir, listing.reason));
    for (const name of listing.kind === 'found' ? listing.names : []) {
      if (name.endsWith('.conf') && !dropInByName.has(name)) dropInByName.set(name, posix.join(dir, name));
    }
  }
  const dropIns = [...dropInByName.keys()].sort().map((n) => dropInByName.get(n) as string);
  if (!unitFile && dropIns.length === 0 && errors.length === 0) return undefined;

  const service: SystemdService = { unitFile, dropIns, environment: new Map(), assignments: [], errors };
  let execLine: string | undefined;
  const envFiles: string[] = [];
  for (const file of [...(unitFile && unitReadable ? [unitFile] : []), ...dropIns]) {
    const text = host.readText(file);
    if (text.kind === 'error') errors.push(unreadable(file, text.reason));
    if (text.kind !== 'found') continue;
    let section = '';
    for (const line of joinContinuations(text.text)) {
      const trimmed = line.trim();
      if (trimmed === '' || trimmed.startsWith('#') || trimmed.startsWith(';')) continue;
      const header = /^\[(.+)\]$/.exec(trimmed);
      if (header) {
        section = header[1] as string;
        continue;
      }
      if (section !== 'Service') continue;
      const eq = trimmed.indexOf('=');
      if (eq < 0) continue;
      const key = trimmed.slice(0, eq).trim();
      const value = trimmed.slice(eq + 1).trim();
      service.assignments.push({ key, value, file });
      if (key === 'ExecStart') {
        execLine = value === '' ? undefined : value;
        service.execStartFile = value === '' ? undefined : file;
      } else if (key === 'Environment') {
        for (const word of splitWords(value)) assign(service.environment, word);
      } else if (key === 'EnvironmentFile') {
        envFiles.push(value);
      }
    }
  }
  for (const spec of envFiles) {
    const path = spec.replace(/^-/, '');
    const text = host.readText(path);
    // A leading "-" only forgives a missing file.
    if (text.kind === 'error') errors.push(unreadable(`EnvironmentFile ${path}`, text.reason));
    if (text.kind !== 'found') continue;
    for (const line of text.text.split('\n')) {
      const t = line.trim();
      if (t === '' || t.startsWith('#')) continue;
      assign(service.environment, t.replace(/^export\s+/, ''));
    }
  }
  if (execLine !== undefined)
    service.execStart = expand(splitWords(execLine.replace(/^[-@:+!]+/, '')), service.environment);
  return service;
}

function unreadable(what: string, reason: string): string {
  return `${what} exists but cannot be read: ${reason}`;
}

function joinContinuations(text: string): string[] {
  const out: string[] = [];
  let acc = '';
  for (const line of text.split('\n')) {
    if (line.endsWith('\\')) {
      acc += line.slice(0, -1) + ' ';
    } else {
      out.push(acc + line);
      acc = '';
    }
  }
  if (acc) out.push(acc);
  return out;
}

function assign(env: Map<string, string>, word: string): void {
  const eq = word.indexOf('=');
  if (eq <= 0) return;
  env.set(word.slice(0, eq), unquote(word.slice(eq + 1)));
}

function unquote(v: string): string {
  if (v.length >= 2 && (v[0] === '"' || v[0] === "'") && v.endsWith(v[0])) return v.slice(1, -1);
  return v;
}

/** Split on whitespace, keeping quoted stretches whole (systemd's word rules, minus escapes we never meet). */
function splitWords(s: string): string[] {
  const words: string[] = [];
  let cur = '';
  let quote: string | undefined;
  let has = false;
  for (const ch of s) {
    if (quote) {
      if (ch === quote) quote = undefined;
      else cur += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      has = true;
    } else if (/\s/.test(ch)) {
      if (has || cur) words.push(cur);
      cur = '';
      has = false;
    } else {
      cur += ch;
      has = true;
    }
  }
  if (has || cur) words.push(cur);
  return words;
}

/** `$VAR` alone expands to its whitespace-split words; `${VAR}` expands in place as one word. */
function expand(words: string[], env: Map<string, string>): string[] {
  const out: string[] = [];
  for (const w of words) {
    const bare = /^\$([A-Za-z_][A-Za-z0-9_]*)$/.exec(w);
    if (bare) {
      out.push(...splitWords(env.get(bare[1] as string) ?? ''));
      continue;
    }
    out.push(w.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, k: string) => env.get(k) ?? ''));
  }
  return out;
}

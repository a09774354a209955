import type { HostView } from './cis/host.js';

export interface NodeInfo {
  osImage: string;
  kernelVersion: string;
  architecture: string;
}

/**
 * OS, kernel and architecture of the node, read through the host root. The
 * container's own /etc/os-release describes the agent image, not the node, and
 * systeminformation's osInfo() both reads that and starts shells, so the node's
 * files are read directly. The kernel is shared with the container; its version
 * is in the host's procfs.
 */
export function readNodeInfo(host: HostView): NodeInfo {
  const osRelease = host.readText('/etc/os-release');
  const fromOs = osRelease.kind === 'found' ? osReleaseField(osRelease.text, 'PRETTY_NAME') : undefined;
  const kernel = host.readText('/proc/sys/kernel/osrelease');
  return {
    osImage: fromOs ?? '',
    kernelVersion: kernel.kind === 'found' ? kernel.text.trim() : '',
    architecture: process.arch,
  };
}

function osReleaseField(text: string, key: string): string | undefined {
  for (const line of text.split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m && m[1] === key) return (m[2] as string).replace(/^(["'])(.*)\1$/, '$2');
  }
  return undefined;
}

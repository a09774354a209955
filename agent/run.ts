export async function runCommand(_args: string[]): Promise<number> {
  throw new Error('VERDICT_TODO: run');
}

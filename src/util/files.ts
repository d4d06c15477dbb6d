/** File writes shared by the key-file and genesis-file writers. */
import { promises as fs } from 'node:fs';

/**
 * Write a file that must not silently destroy its predecessor (a lost validator key is not recoverable):
 * an existing file is first renamed to `<path>.<time>.bak`. Returns the backup's path, if one was made.
 */
export async function writeFileKeepingOld(path: string, body: string, mode: number): Promise<string | undefined> {
  let backup: string | undefined;
  try {
    await fs.access(path);
    backup = `${path}.${new Date().toISOString().replace(/[:.]/g, '-')}.bak`;
    await fs.rename(path, backup);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  await fs.writeFile(path, body, { mode, flag: 'wx' });
  return backup;
}

// An exclusive lock file (the embedded database's directory, the ingest CLI's run): created with O_EXCL, holding
// the owner's pid and, on Linux, the identity of that process (boot id and start time from /proc), so a lock is
// taken over when its process is gone, and also when the pid now belongs to another process: after a container
// restart the API often gets the very pid it had, and a pid-only check then read its own dead lock as alive.
import fs from 'node:fs/promises';
import { readFileSync } from 'node:fs';

type LockContent = { pid: number; identity: string | null };

/** `boot id/start time in clock ticks` of a running process on Linux; null where /proc does not say. */
export function processIdentity(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 2 (comm) is parenthesised and may hold spaces; fields after it start at 3 (state), start time is 22.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const startTime = fields[22 - 3];
    const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    return startTime ? `${bootId}/${startTime}` : null;
  } catch {
    return null;
  }
}

function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function parseLock(text: string): LockContent | null {
  const trimmed = text.trim();
  if (/^\d+$/.test(trimmed)) return { pid: Number(trimmed), identity: null };
  try {
    const parsed = JSON.parse(trimmed) as Partial<LockContent>;
    return Number.isInteger(parsed.pid) && (parsed.pid as number) > 0 ? { pid: parsed.pid as number, identity: typeof parsed.identity === 'string' ? parsed.identity : null } : null;
  } catch {
    return null;
  }
}

/** The pid of the live process holding the lock described by `text`, or null when the lock is stale. */
export function liveLockHolder(text: string): number | null {
  const lock = parseLock(text);
  if (!lock || !isProcessAlive(lock.pid)) return null;
  if (lock.identity !== null) {
    const current = processIdentity(lock.pid);
    if (current !== null && current !== lock.identity) return null;
  }
  return lock.pid;
}

/**
 * Takes `lockPath`, taking over a stale lock; throws `refuse(pid)` when a live process holds it. Returns the
 * release function.
 */
export async function acquireLockFile(lockPath: string, refuse: (pid: number) => Error): Promise<() => Promise<void>> {
  const content = JSON.stringify({ pid: process.pid, identity: processIdentity(process.pid) });
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      await fs.writeFile(lockPath, content, { flag: 'wx' });
      return async () => {
        await fs.rm(lockPath, { force: true });
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = liveLockHolder(await fs.readFile(lockPath, 'utf8').catch(() => ''));
      if (holder !== null) throw refuse(holder);
      await fs.rm(lockPath, { force: true });
    }
  }
  throw new Error(`Could not take the lock ${lockPath}`);
}

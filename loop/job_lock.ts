/**
 * A lock file so that one job (retraining, DMD, a registry change) works at a time on a models folder (safe to start
 * from cron at any time).
 *
 * The lock is a file created exclusively (`createNew`), holding the owner's pid, host and start time. A second run
 * finds it and is refused. A lock older than `staleMs` (a run that was killed) is taken over.
 *
 * @module
 */

/**
 * The lock file of a models folder: retraining, DMD and every change of the release registry take it.
 *
 * @param modelsDir the models folder
 * @returns the lock file's path
 */
export function jobLockPath(modelsDir: string): string {
  return `${modelsDir}/.retrain.lock`;
}

/** A held lock. */
export interface JobLock {
  release(): Promise<void>;
}

/** Thrown when another run holds the lock. */
export class LockBusyError extends Error {
  constructor(readonly holder: { pid?: number; host?: string; startedAt?: string }, path: string) {
    super(
      `Cannot start: another run holds ${path} (pid ${holder.pid ?? "?"} on ${holder.host ?? "?"} since ${
        holder.startedAt ?? "?"
      })`,
    );
    this.name = "LockBusyError";
  }
}

/**
 * Take the lock.
 *
 * @param path the lock file
 * @param options `staleMs`: age after which a lock is taken over (default 2 hours)
 * @returns the lock
 * @throws LockBusyError when another run holds it
 */
export async function acquireJobLock(path: string, options: { staleMs?: number } = {}): Promise<JobLock> {
  const staleMs = options.staleMs ?? 2 * 3_600_000;
  const body = JSON.stringify({ pid: Deno.pid, host: Deno.hostname(), startedAt: new Date().toISOString() });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const file = await Deno.open(path, { write: true, createNew: true });
      await file.write(new TextEncoder().encode(body));
      file.close();
      let released = false;
      return {
        async release() {
          if (released) return;
          released = true;
          await Deno.remove(path).catch(() => {});
        },
      };
    } catch (err) {
      if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
      const info = await Deno.stat(path).catch(() => null);
      if (info?.mtime && Date.now() - info.mtime.getTime() > staleMs && attempt === 0) {
        await Deno.remove(path).catch(() => {});
        continue;
      }
      let holder = {};
      try {
        holder = JSON.parse(await Deno.readTextFile(path));
      } catch {
        // being written
      }
      throw new LockBusyError(holder, path);
    }
  }
  throw new LockBusyError({}, path);
}

/**
 * For command-line jobs: take the lock, or say who holds it and exit with `exitCode`.
 *
 * @param path the lock file
 * @param exitCode the process's exit status when busy (default 3)
 * @returns the lock
 */
export async function acquireJobLockOrExit(path: string, exitCode = 3): Promise<JobLock> {
  try {
    return await acquireJobLock(path);
  } catch (err) {
    if (!(err instanceof LockBusyError)) throw err;
    console.error(err.message);
    Deno.exit(exitCode);
  }
}

/**
 * The pre-flight check of a local database's files: before a libSQL connection opens a local file, and before each
 * call on it, make sure this process may write the database, its `-wal` and `-shm` files (or, where they are
 * absent, create them in the folder).
 *
 * Why: in WAL mode SQLite maps `<db>-shm` into memory, shared and writable. A `-shm` this process cannot write is
 * mapped read-only or not at all at open (the driver then fails cleanly, but with messages that do not name the
 * file); one made immutable (`chattr +i`) while it is mapped makes the kernel refuse the next write to the mapping
 * with SIGBUS, which ends the whole process at once, with no log line (issue 11). Closing a connection writes to the
 * mapping too (its last checkpoint), so a connection on such a file is not even closed until the file is writable
 * again ({@link closeWhenWritable}).
 *
 * The check asks the kernel with `access(2)`, through libc: it opens nothing. Opening and closing the `-shm` here
 * would drop every POSIX lock this process holds on it (closing any descriptor of a file releases them all), among
 * them SQLite's lock that tells other processes the mapping is in use; another process could then reset the file
 * under our mapping. `access(2)` is right for root (an immutable file or a read-only file system is refused even
 * to root) and for other users alike; Deno's `node:fs` `accessSync` only reads the mode bits, which is wrong for both.
 * Where libc cannot be loaded (no `--allow-ffi`, or an unknown system) the check is skipped: the libSQL driver needs
 * `--allow-ffi` itself, so a process that opens a local database has it.
 *
 * @module
 */
import { dirname } from "node:path";
import { AppError } from "../errors.ts";

/** The code of {@link DatabaseFileError}. */
export const DB_FILE_UNWRITABLE = "DB_FILE_UNWRITABLE";

/** A file of a local database (or its folder) that this process cannot write; the cause of an `AppError`. */
export class DatabaseFileError extends Error {
  /** Always {@link DB_FILE_UNWRITABLE}. */
  readonly code = DB_FILE_UNWRITABLE;
  /** The file or folder at fault. */
  readonly file: string;
  /** The system's reason, e.g. `EPERM`. */
  readonly errno: string;

  /**
   * @param file the file or folder
   * @param errno the system's error name
   * @param message what is wrong and how to fix it
   */
  constructor(file: string, errno: string, message: string) {
    super(message);
    this.name = "DatabaseFileError";
    this.file = file;
    this.errno = errno;
  }
}

const R_OK = 4;
const W_OK = 2;
const X_OK = 1;
const ENOENT = 2;
const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  13: "EACCES",
  20: "ENOTDIR",
  30: "EROFS",
};
const HINTS: Record<string, string> = {
  EPERM: "operation not permitted: is it immutable (lsattr; chattr -i)?",
  EACCES: "permission denied: chown or chmod it for the service's user",
  EROFS: "the file system is read-only",
};

interface Libc {
  /** `access(2)`: 0, or -1 with errno set. */
  access(path: string, mode: number): number;
  /** errno of the last failed call on this thread. */
  errno(): number;
}

/** The libc of this process (loaded once per thread), or null where it cannot be loaded. */
let libc: Libc | null | undefined;

function loadLibc(): Libc | null {
  const names = Deno.build.os === "linux"
    ? ["libc.so.6", "libc.musl-x86_64.so.1", "libc.musl-aarch64.so.1"]
    : Deno.build.os === "darwin"
    ? ["libSystem.B.dylib"]
    : [];
  const errnoSymbol = Deno.build.os === "darwin" ? "__error" : "__errno_location";
  for (const name of names) {
    try {
      const lib = Deno.dlopen(
        name,
        {
          access: { parameters: ["buffer", "i32"], result: "i32" },
          [errnoSymbol]: { parameters: [], result: "pointer" },
        } as const,
      );
      const encoder = new TextEncoder();
      // The same few paths are checked before every call: encode each once.
      const encoded = new Map<string, Uint8Array<ArrayBuffer>>();
      const cString = (path: string) => {
        let bytes = encoded.get(path);
        if (!bytes) encoded.set(path, bytes = encoder.encode(path + "\0"));
        return bytes;
      };
      const errnoAt = lib.symbols[errnoSymbol] as () => Deno.PointerValue;
      return {
        access: (path, mode) => lib.symbols.access(cString(path), mode) as number,
        errno: () => {
          const at = errnoAt();
          return at === null ? 0 : new Deno.UnsafePointerView(at).getInt32();
        },
      };
    } catch {
      // not this name, or no --allow-ffi
    }
  }
  return null;
}

/** `access(2)` on a path: null when allowed, else the errno's name; undefined when libc is not available. */
function accessError(path: string, mode: number): string | null | undefined {
  libc ??= loadLibc();
  if (!libc) return undefined;
  if (libc.access(path, mode) === 0) return null;
  const errno = libc.errno();
  return ERRNO_NAMES[errno] ?? `errno ${errno}`;
}

/**
 * What keeps this process from writing a local database's files safely, or null when nothing does (or when the
 * check cannot run here; see the module doc). Opens nothing.
 *
 * @param path the database file's path
 * @returns the error naming the file and the fix, or null
 */
export function unwritableDatabaseFile(path: string): DatabaseFileError | null {
  let missing = false;
  for (const file of [`${path}-shm`, `${path}-wal`, path]) {
    const err = accessError(file, R_OK | W_OK);
    if (err === undefined) return null;
    if (err === null) continue;
    if (err === ERRNO_NAMES[ENOENT]) {
      missing = true;
      continue;
    }
    const mapped = file.endsWith("-shm")
      ? "; SQLite maps this file into memory and writes to it (an immutable one ends the process with SIGBUS)"
      : "";
    return new DatabaseFileError(
      file,
      err,
      `${file} cannot be opened read-write by this process (${err}, ${
        HINTS[err] ?? "see the system's error"
      })${mapped}`,
    );
  }
  if (missing) {
    // SQLite creates the missing ones beside the database.
    const folder = dirname(path);
    const err = accessError(folder, W_OK | X_OK);
    if (err) {
      return new DatabaseFileError(
        folder,
        err,
        `the folder ${folder} does not let this process create the database's -wal and -shm files ` +
          `(${err}, ${HINTS[err] ?? "see the system's error"})`,
      );
    }
  }
  return null;
}

/**
 * Throw when a local database's files cannot be written safely ({@link unwritableDatabaseFile}).
 *
 * @param path the database file's path
 * @param action what was being done, for the message, e.g. "Cannot open the decision database"
 * @throws AppError DB_UNAVAILABLE whose cause is a {@link DatabaseFileError}
 */
export function checkDatabaseFiles(path: string, action: string): void {
  const problem = unwritableDatabaseFile(path);
  if (problem) throw new AppError("DB_UNAVAILABLE", `${action}: ${problem.message}`, { cause: problem });
}

/** How often a connection left open on an unwritable file tries to close again, in milliseconds. */
const CLOSE_RETRY_MS = 1000;

/**
 * Close a connection now if its database's files are writable, else as soon as they are (checked every second, on
 * a timer that does not keep the process alive): closing runs a last checkpoint that writes to the mapped `-shm`,
 * which would end the process with SIGBUS while the file is immutable.
 *
 * @param path the database file's path
 * @param close closes the connection
 */
export function closeWhenWritable(path: string, close: () => void): void {
  if (unwritableDatabaseFile(path) === null) return close();
  const timer = setInterval(() => {
    if (unwritableDatabaseFile(path) !== null) return;
    clearInterval(timer);
    close();
  }, CLOSE_RETRY_MS);
  Deno.unrefTimer(timer);
}

/**
 * Flags for the command-line scripts: strict parsing, `--help`/`-h` printing the usage (exit 0), and an unknown or
 * malformed flag printing the reason and the usage (exit 2).
 *
 * @module
 */
import { parseArgs, type ParseArgsOptionsConfig } from "node:util";

/**
 * Parse `Deno.args`.
 *
 * @param options the flags (`help` is added)
 * @param usage the usage line(s)
 * @returns the flags' values
 */
export function parseFlags<T extends ParseArgsOptionsConfig>(options: T, usage: string) {
  const config = {
    args: Deno.args,
    strict: true as const,
    allowPositionals: false as const,
    options: { ...options, help: { type: "boolean" as const, short: "h" } },
  };
  let values: ReturnType<typeof parseArgs<typeof config>>["values"];
  try {
    values = parseArgs(config).values;
  } catch (err) {
    usageError(`Cannot read flags: ${(err as Error).message}`, usage);
  }
  if ((values as { help?: boolean }).help) {
    console.log(usage);
    Deno.exit(0);
  }
  return values;
}

/**
 * Say what is wrong with the flags, print the usage and exit 2.
 *
 * @param message the reason
 * @param usage the usage line(s)
 */
export function usageError(message: string, usage: string): never {
  console.error(`${message}\n${usage}`);
  Deno.exit(2);
}

/**
 * Flags for the command-line scripts, one parser for all: strict parsing, `--help`/`-h` printing the usage (exit 0),
 * and an unknown or malformed flag printing one line (exit 2). A script that parses its flags here also gets one
 * line, not a stack, when a file it was given is missing or unreadable, or when its input is refused
 * ({@link InputError}; exit 1).
 *
 * @module
 */
import { parseArgs, type ParseArgsOptionsConfig } from "node:util";
import { TooFewPairsError } from "../switcher/selection.ts";

/** Input a script refuses (a file in the wrong format, an unlabeled dataset): reported in one line, exit 1. */
export class InputError extends Error {
  override name = "InputError";
}

/**
 * Parse flags (default `Deno.args`).
 *
 * @param options the flags (`help` is added)
 * @param usage the usage line(s), printed by `--help`
 * @param args the arguments to parse
 * @returns the flags' values
 */
export function parseFlags<T extends ParseArgsOptionsConfig>(options: T, usage: string, args: string[] = Deno.args) {
  const config = {
    args,
    strict: true as const,
    allowPositionals: false as const,
    options: { ...options, help: { type: "boolean" as const, short: "h" } },
  };
  reportInputErrors();
  let values: ReturnType<typeof parseArgs<typeof config>>["values"];
  try {
    values = parseArgs(config).values;
  } catch (err) {
    // node's parser explains some refusals over several lines (a value starting with "-": write --flag=-5); keep them.
    usageError(`Cannot read flags: ${(err as Error).message.replaceAll("\n", " ")}`, usage);
  }
  if ((values as { help?: boolean }).help) {
    console.log(usage);
    Deno.exit(0);
  }
  return values;
}

/**
 * Say in one line what is wrong with the flags (and where the usage is) and exit 2.
 *
 * @param message the reason
 * @param usage the usage line(s), starting `usage: deno task NAME`
 */
export function usageError(message: string, usage: string): never {
  const command = /^usage: (deno task \S+)/.exec(usage)?.[1];
  console.error(`${message.split("\n")[0]}${command ? ` (usage: ${command} --help)` : ""}`);
  Deno.exit(2);
}

/** The one-line message for an expected failure (missing file, refused input), or undefined for a bug. */
export function inputErrorMessage(err: unknown): string | undefined {
  if (err instanceof Deno.errors.NotFound) return `Cannot read ${errorPath(err)}: no such file or folder`;
  if (err instanceof Deno.errors.PermissionDenied) return `Cannot read ${errorPath(err)}: permission denied`;
  if (err instanceof Deno.errors.IsADirectory) return `Cannot read ${errorPath(err)}: it is a folder`;
  if (err instanceof InputError || err instanceof TooFewPairsError) return err.message;
  return undefined;
}

/** The path in a Deno file-system error's message (`... (os error 2): open '/x'`), else its whole message. */
function errorPath(err: Error): string {
  return /'([^']*)'\s*$/.exec(err.message)?.[1] ?? err.message;
}

let installed = false;
/** Report expected failures in one line and exit 1; anything else keeps Deno's stack trace (it is a bug). */
function reportInputErrors(): void {
  if (installed) return;
  installed = true;
  const report = (event: Event, err: unknown) => {
    const message = inputErrorMessage(err);
    if (message === undefined) return;
    event.preventDefault();
    console.error(message);
    Deno.exit(1);
  };
  globalThis.addEventListener("unhandledrejection", (e) => report(e, e.reason));
  globalThis.addEventListener("error", (e) => report(e, e.error));
}

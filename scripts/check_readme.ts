/**
 * `deno task check:readme`: check the README's commands without running long jobs. Every command in a `sh` block and
 * every inline command must get Deno the one pinned way (`npx -y deno@VERSION`, VERSION the same everywhere); every
 * task it names must exist in deno.json and answer `--help` with exit 0; every flag it passes must appear in that
 * task's `--help`; every repository file it reads must exist; the Python build's flags must be ones `build.py`
 * defines. Prints one line per problem and exits 1 if there is any.
 *
 *   deno task check:readme
 *
 * @module
 */
import { parseFlags } from "./cli.ts";

/** The pinned way to get Deno, as the README writes it. */
export const DENO = /npx -y deno@(\d+\.\d+\.\d+)/;

/** One command as the README writes it (continuation lines joined, comment cut). */
export interface ReadmeCommand {
  line: number;
  text: string;
  /** In a `sh` block (an example to type) or inline in the prose. */
  where: "block" | "inline";
}

/**
 * The commands of a README: every line of a `sh` block, and every inline code span that starts with the pinned Deno.
 *
 * @param readme the README's text
 * @returns the commands, in order
 */
export function readmeCommands(readme: string): ReadmeCommand[] {
  const commands: ReadmeCommand[] = [];
  const lines = readme.split("\n");
  let inSh = false;
  let pending: { line: number; text: string } | undefined;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i];
    if (/^```/.test(raw)) {
      inSh = !inSh && raw.trim() === "```sh";
      continue;
    }
    if (inSh) {
      const text = raw.replace(/\s+#\s.*$/, "").trim();
      if (!text) continue;
      const joined = pending ? `${pending.text} ${text}` : text;
      const start = pending?.line ?? i + 1;
      if (joined.endsWith("\\")) pending = { line: start, text: joined.slice(0, -1).trim() };
      else {
        commands.push({ line: start, text: joined, where: "block" });
        pending = undefined;
      }
      continue;
    }
    for (const m of raw.matchAll(/`([^`]+)`/g)) {
      if (/^(?:cd \S+ && )?(?:[A-Z_]+=\S+ )*npx -y deno@/.test(m[1]) || /^deno (task|run) /.test(m[1])) {
        commands.push({ line: i + 1, text: m[1], where: "inline" });
      }
    }
  }
  return commands;
}

/** A deno invocation in a command: the task (or `run FILE`) and the flags it passes. */
export interface DenoInvocation {
  version: string | undefined;
  task?: string;
  run?: { cwd: string; file: string };
  flags: string[];
  args: string[];
}

/**
 * Read the deno invocation of a command (undefined for other commands: curl, python, open).
 *
 * @param text one command
 * @returns the invocation
 */
export function denoInvocation(text: string): DenoInvocation | undefined {
  const m = /^(?:cd (\S+) && )?(?:[A-Z_]+=\S+ )*(?:npx -y deno@(\S+)|deno) (task|run) (.*)$/.exec(text);
  if (!m) return undefined;
  const [, cwd, version, verb, rest] = m;
  const words = rest.split(/\s+/).filter(Boolean);
  const flags = words.filter((w) => w.startsWith("--")).map((w) => w.split("=")[0]);
  if (verb === "task") {
    const [task, ...args] = words.filter((w) => !w.startsWith("-"));
    return { version, task, flags, args };
  }
  const file = words.find((w) => /\.(ts|js)$/.test(w)) ?? "";
  return { version, run: { cwd: cwd ?? ".", file }, flags: flags.filter((f) => f !== "--allow-all"), args: [] };
}

/**
 * Tasks whose `--help` is not run: the task is not a Deno script. Each is still checked to exist; `checkReadme` lists
 * them as not run.
 */
export const HELP_NOT_RUN: Record<string, string> = {
  testdata: "a shell script that downloads the test images",
};

/** A problem with a README command: the line to print, and the task it concerns (if any). */
export interface ReadmeProblem {
  message: string;
  task?: string;
}

/** Words that stand for the reader's own value in an example (`FILE`, `DIR`, `LABELLED`), not repository paths. */
function isPlaceholder(word: string): boolean {
  return /^[A-Z][A-Z_.-]*$/.test(word) || /^(my[-_]|build\/|dist\/|data\/)/.test(word) || word.includes("$");
}

/**
 * Check the README at `root`.
 *
 * @param root the repository root (ending in `/`)
 * @param options `runHelp`: run `--help` of each task (default true)
 * @returns the problems, each a line naming the README line and command (empty when all is well)
 */
export async function checkReadme(root: string, options: { runHelp?: boolean } = {}): Promise<ReadmeProblem[]> {
  const readme = await Deno.readTextFile(`${root}README.md`);
  const tasks = JSON.parse(await Deno.readTextFile(`${root}deno.json`)).tasks as Record<string, string>;
  const problems: ReadmeProblem[] = [];
  const report = (message: string, task?: string) => problems.push({ message, task });
  const versions = new Set<string>();
  const helps = new Map<string, Promise<{ code: number; out: string }>>();
  const help = (task: string) => {
    if (!helps.has(task)) helps.set(task, runHelp(root, ["task", "-q", task, "--help"]));
    return helps.get(task)!;
  };
  const exists = async (path: string) => await Deno.stat(`${root}${path}`).then(() => true, () => false);

  for (const c of readmeCommands(readme)) {
    const at = `README.md:${c.line}: ${c.text}`;
    const inv = denoInvocation(c.text);
    if (inv) {
      if (inv.version === undefined) report(`${at}: gets Deno without the pinned npx -y deno@VERSION`);
      else versions.add(inv.version);
      if (inv.task !== undefined) {
        if (!(inv.task in tasks)) {
          report(`${at}: no task "${inv.task}" in deno.json`, inv.task);
          continue;
        }
        for (const a of inv.args) {
          if (a.includes("/") && !isPlaceholder(a) && !(await exists(a))) report(`${at}: no file ${a}`, inv.task);
        }
        if (options.runHelp === false || inv.task in HELP_NOT_RUN) continue;
        const h = await help(inv.task);
        if (h.code !== 0) report(`${at}: --help exits ${h.code}: ${h.out.trim().split("\n")[0]}`, inv.task);
        for (const f of inv.flags) {
          if (!h.out.includes(f)) report(`${at}: ${inv.task} --help does not mention ${f}`, inv.task);
        }
      } else if (inv.run) {
        // `cd dist && deno run -A main.js`: dist/main.js is the bundle of main.ts (deno task build).
        const source = inv.run.cwd === "dist" && inv.run.file === "main.js" ? "main.ts" : inv.run.file;
        if (!(await exists(source))) report(`${at}: no ${source}`);
        else if (options.runHelp !== false) {
          const h = await runHelp(root, ["run", "-A", source, "--help"]);
          if (h.code !== 0) report(`${at}: ${source} --help exits ${h.code}`);
        }
      }
      continue;
    }
    if (c.where === "inline") continue;
    const data = /--data @(\S+)/.exec(c.text)?.[1];
    if (data && !(await exists(data))) report(`${at}: no file ${data}`);
    const py = /^python3 (\S+\.py) (.*)$/.exec(c.text);
    if (py) {
      const source = await Deno.readTextFile(`${root}${py[1]}`).catch(() => "");
      if (!source) report(`${at}: no ${py[1]}`);
      for (const f of py[2].split(/\s+/).filter((w) => w.startsWith("--"))) {
        if (!source.includes(`"${f}"`)) report(`${at}: ${py[1]} defines no ${f}`);
      }
    }
    const pip = /^pip install -r (\S+)/.exec(c.text);
    if (pip && !(await exists(pip[1]))) report(`${at}: no ${pip[1]}`);
  }
  for (const m of readme.matchAll(/`(pip install -r (\S+))`/g)) {
    if (!(await exists(m[2]))) report(`README.md: ${m[1]}: no ${m[2]}`);
  }
  if (versions.size > 1) report(`README.md: Deno is pinned to several versions: ${[...versions].join(", ")}`);
  return problems;
}

/**
 * Run the local deno (the one running this) with `args` in `root`, colours off, stdin closed.
 *
 * @param root the working folder
 * @param args deno's arguments
 * @returns the exit code and what it printed
 */
export async function runDeno(
  root: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: root,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
    env: { NO_COLOR: "1", ...env },
    signal: AbortSignal.timeout(120_000),
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}

/** `runDeno` with stdout and stderr together. */
async function runHelp(root: string, args: string[]): Promise<{ code: number; out: string }> {
  const r = await runDeno(root, args);
  return { code: r.code, out: r.stdout + r.stderr };
}

if (import.meta.main) {
  parseFlags(
    {},
    "usage: deno task check:readme\n" +
      "Check the README's commands: pinned Deno, tasks that exist, --help that answers, flags that exist, files present.",
  );
  const root = new URL("..", import.meta.url).pathname;
  const problems = await checkReadme(root);
  for (const p of problems) console.error(p.message);
  console.log(problems.length === 0 ? "README commands: all checked, no problem" : `${problems.length} problem(s)`);
  Deno.exit(problems.length === 0 ? 0 : 1);
}

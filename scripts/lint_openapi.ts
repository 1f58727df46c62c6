/**
 * `deno task lint:openapi`: lint the OpenAPI document the service serves with Redocly's recommended rules.
 * It starts the service ({@link withService}), writes `GET /openapi.json` to `--out` (default build/openapi.json), stops the service and runs
 * `@redocly/cli lint` on the file (`.redocly.lint-ignore.yaml` lists the findings kept on purpose, each with its
 * reason). Exit status: Redocly's (0: clean).
 *
 *   deno task lint:openapi [--out build/openapi.json] [--models DIR]
 *
 * @module
 */
import { loadConfig } from "../config.ts";
import { startService } from "../main.ts";
import { parseFlags } from "./cli.ts";

/** The pinned linter. */
export const REDOCLY = "npm:@redocly/cli@2.77.0";

/**
 * Start the service on 127.0.0.1 (a fresh database in a temporary folder, `ADMIN_TOKEN` set so that every route is
 * mounted), run `fn` against it, stop it.
 *
 * @param modelsDir the model set to serve
 * @param fn what to do with the service's URL and admin token
 * @returns what `fn` returns
 */
export async function withService<T>(
  modelsDir: string,
  fn: (url: string, adminToken: string) => Promise<T>,
): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "dmd_openapi_" });
  const adminToken = crypto.randomUUID();
  const service = await startService(loadConfig({
    ...Deno.env.toObject(),
    PORT: "0",
    HOST: "127.0.0.1",
    MODELS_DIR: modelsDir,
    DATABASE_URL: `file:${dir}/decisions.db`,
    ADMIN_TOKEN: adminToken,
    WORKERS: "1",
    WARMUP_RUNS: "1",
    LOG_LEVEL: "silent",
  }));
  try {
    return await fn(service.url, adminToken);
  } finally {
    await service.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * The OpenAPI document the service serves.
 *
 * @param modelsDir the model set to serve
 * @returns the document
 */
export async function servedDocument(modelsDir: string): Promise<Record<string, unknown>> {
  return await withService(modelsDir, async (url) => await (await fetch(`${url}/openapi.json`)).json());
}

/**
 * Run Redocly's linter (recommended rules) on a document file.
 *
 * @param file the document
 * @param cwd where `.redocly.lint-ignore.yaml` is looked up
 * @returns the exit code and what it printed
 */
export async function redoclyLint(file: string, cwd: string): Promise<{ code: number; output: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", REDOCLY, "lint", file, "--format=stylish"],
    cwd,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
    env: { NO_COLOR: "1", REDOCLY_TELEMETRY: "off", REDOCLY_SUPPRESS_UPDATE_NOTICE: "true" },
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, output: decode(out.stdout) + decode(out.stderr) };
}

if (import.meta.main) {
  const args = parseFlags(
    { out: { type: "string", default: "build/openapi.json" }, models: { type: "string", default: "wasm-models" } },
    "usage: deno task lint:openapi [--out build/openapi.json] [--models DIR]\n" +
      "Lint the served OpenAPI document with Redocly's recommended rules (exit 0: clean).",
  );
  const root = new URL("..", import.meta.url).pathname;
  const doc = await servedDocument(args.models!);
  const out = args.out!.startsWith("/") ? args.out! : `${root}${args.out}`;
  await Deno.mkdir(out.slice(0, out.lastIndexOf("/")), { recursive: true });
  await Deno.writeTextFile(out, JSON.stringify(doc, null, 2) + "\n");
  const result = await redoclyLint(out, root);
  console.log(result.output.trim());
  Deno.exit(result.code);
}

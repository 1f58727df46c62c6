/**
 * `deno task build`: bundle the edge app with esbuild into a self-contained `dist/` that starts with
 * `deno run -A main.js` from `dist/` alone (no deno.json, no network):
 *
 *   dist/main.js                       the edge app (hono, zod, drizzle, libSQL client, ... bundled)
 *   dist/workers/inference_worker.js   the inference worker (onnxruntime-web bundled)
 *   dist/workers/pose_worker.js        the pose worker (camera frames), beside its JPEG/PNG decoders' .wasm
 *   dist/cloud/reference_server.js     the reference cloud server
 *   dist/db/host.js                    the database process (every call on a local database file runs there)
 *   dist/db/decision_writer_worker.js  the decision writer's thread
 *   dist/serve/conn_guard_thread.js    the connection guard's thread
 *   dist/ort/*.wasm                    the onnxruntime-web binary
 *   dist/wasm-models/                  the model set (manifest, models, samples)
 *   dist/db/migrations/                the SQL migrations applied at start-up
 *   dist/node_modules/                 the two native packages esbuild cannot bundle (libsql, onnxruntime-node)
 *
 * Flags: --out DIR (default dist), --models DIR (default wasm-models)
 *
 * @module
 */
import { builtinModules } from "node:module";
import * as esbuild from "esbuild";
import { parseFlags } from "./cli.ts";

const args = parseFlags(
  { out: { type: "string", default: "dist" }, models: { type: "string", default: "wasm-models" } },
  "usage: deno task build [--out DIR (dist)] [--models DIR (wasm-models)]\n" +
    "Bundle the edge app into a self-contained folder that starts with `cd DIR && deno run -A main.js`.",
);
const root = new URL("../", import.meta.url).pathname;
const out = args.out!.startsWith("/") ? args.out! : `${Deno.cwd()}/${args.out}`;
const modelsDir = args.models!.startsWith("/") ? args.models! : `${Deno.cwd()}/${args.models}`;

/** Packages with native code: copied beside the bundle with what they need at run time. */
const NATIVE = ["libsql", "onnxruntime-node"];

async function copyDir(from: string, to: string, skip?: (relPath: string) => boolean, rel = ""): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const e of Deno.readDir(from)) {
    const src = `${from}/${e.name}`;
    const dst = `${to}/${e.name}`;
    const relPath = `${rel}${e.name}`;
    if (skip?.(e.isDirectory ? `${relPath}/` : relPath)) continue;
    const real = e.isSymlink ? await Deno.realPath(src) : src;
    const isDir = e.isSymlink ? (await Deno.stat(real)).isDirectory : e.isDirectory;
    if (isDir) await copyDir(real, dst, skip, `${relPath}/`);
    else await Deno.copyFile(real, dst);
  }
}

/** The folder of an installed npm package, following Deno's node_modules layout. */
async function packageDir(name: string, from = `${root}node_modules`): Promise<string> {
  return await Deno.realPath(`${from}/${name}`).catch(async () => {
    // Transitive dependencies live under node_modules/.deno/<name>@<version>/node_modules/<name>.
    const flat = name.replace("/", "+");
    for await (const e of Deno.readDir(`${root}node_modules/.deno`)) {
      if (e.name.startsWith(`${flat}@`)) {
        return await Deno.realPath(`${root}node_modules/.deno/${e.name}/node_modules/${name}`);
      }
    }
    throw new Error(`Cannot build: package ${name} is not installed`);
  });
}

/**
 * What of a vendored package runs here: onnxruntime-node ships binaries for every platform and install-time
 * dependencies (adm-zip, global-agent) it never loads at run time; keep this platform's binary and its runtime
 * dependency.
 */
const NATIVE_BIN = `bin/napi-v6/${Deno.build.os}/${Deno.build.arch === "x86_64" ? "x64" : "arm64"}/`;
const KEEP: Record<string, { skip: (relPath: string) => boolean; dependencies?: string[] }> = {
  "onnxruntime-node": {
    skip: (rel) =>
      rel.startsWith("script/") ||
      (rel.startsWith("bin/") && !NATIVE_BIN.startsWith(rel) && !rel.startsWith(NATIVE_BIN)),
    dependencies: ["onnxruntime-common"],
  },
};

/** Copy a package and its run-time dependencies (those installed for this platform) into dist/node_modules. */
async function vendor(name: string, seen: Set<string>): Promise<void> {
  if (seen.has(name)) return;
  const dir = await packageDir(name).catch(() => null);
  if (!dir) return; // an optional dependency for another platform
  seen.add(name);
  const keep = KEEP[name];
  await copyDir(dir, `${out}/node_modules/${name}`, keep?.skip);
  const pkg = JSON.parse(await Deno.readTextFile(`${dir}/package.json`));
  const deps = keep?.dependencies ??
    [...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.optionalDependencies ?? {})];
  for (const dep of deps) await vendor(dep, seen);
}

const t0 = performance.now();
await Deno.remove(out, { recursive: true }).catch(() => {});
await Deno.mkdir(out, { recursive: true });

const common: esbuild.BuildOptions = {
  bundle: true,
  format: "esm",
  platform: "neutral",
  target: "es2022",
  mainFields: ["module", "main"],
  conditions: ["deno", "import", "default"],
  // Node built-ins stay external, with or without the `node:` prefix (CommonJS packages such as prom-client
  // require("cluster")); the banner's require() resolves them at run time.
  external: [...NATIVE, "node:*", ...builtinModules],
  sourcemap: "linked",
  minify: false,
  logLevel: "warning",
  // Node's CommonJS packages inside an ESM bundle: give them a require() that Deno provides.
  banner: {
    js:
      'import { createRequire as __createRequire } from "node:module"; const require = __createRequire(import.meta.url);',
  },
  absWorkingDir: root,
};
await esbuild.build({
  ...common,
  entryPoints: {
    "main": `${root}main.ts`,
    "workers/inference_worker": `${root}workers/inference_worker.ts`,
    "workers/pose_worker": `${root}workers/pose_worker.ts`,
    "cloud/reference_server": `${root}cloud/reference_server.ts`,
    "db/host": `${root}db/host.ts`,
    "db/decision_writer_worker": `${root}db/decision_writer_worker.ts`,
    "serve/conn_guard_thread": `${root}serve/conn_guard_thread.ts`,
  },
  outdir: out,
});
await esbuild.stop();

await Deno.mkdir(`${out}/ort`, { recursive: true });
await Deno.copyFile(
  `${await packageDir("onnxruntime-web")}/dist/ort-wasm-simd-threaded.wasm`,
  `${out}/ort/ort-wasm-simd-threaded.wasm`,
);
// The JPEG decoder loads its .wasm beside the bundle that imports it (PNG is decoded in TypeScript).
await Deno.copyFile(
  `${await packageDir("@jsquash/jpeg")}/codec/dec/mozjpeg_dec.wasm`,
  `${out}/workers/mozjpeg_dec.wasm`,
);
await copyDir(modelsDir, `${out}/wasm-models`);
for await (const e of Deno.readDir(`${out}/wasm-models`)) {
  if (e.name.endsWith(".ts")) await Deno.remove(`${out}/wasm-models/${e.name}`);
}
await copyDir(`${root}db/migrations`, `${out}/db/migrations`);
// The dashboard page and its vendored chart library, served by GET /dashboard.
await copyDir(`${root}dashboard`, `${out}/dashboard`);
const seen = new Set<string>();
for (const name of NATIVE) await vendor(name, seen);
await Deno.writeTextFile(
  `${out}/package.json`,
  JSON.stringify({ name: "dmd-edge-dist", private: true, type: "module" }, null, 2) + "\n",
);

let bytes = 0;
async function size(dir: string): Promise<void> {
  for await (const e of Deno.readDir(dir)) {
    if (e.isDirectory) await size(`${dir}/${e.name}`);
    else bytes += (await Deno.stat(`${dir}/${e.name}`)).size;
  }
}
await size(out);
console.log(JSON.stringify({
  level: "info",
  msg: "built",
  out,
  mib: Number((bytes / 2 ** 20).toFixed(1)),
  seconds: Number(((performance.now() - t0) / 1000).toFixed(1)),
  vendored: [...seen],
}));
console.log(`start it with: cd ${args.out} && deno run -A main.js`);

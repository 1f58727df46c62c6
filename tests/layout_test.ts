/**
 * The rooms hold: onnxruntime is imported only in `workers/` (and the reference server in `cloud/`), and only
 * workers/runtime.ts configures it; the pool does not load the engine on the calling thread; the request path
 * (`serve/`), the learning loop (`loop/`), releases (`release/`) and pre-processing (`sequence/`) import what their
 * room allows; the README's layout names every top-level folder of code.
 */
import assert from "node:assert/strict";
import { ROOT, sources as allSources } from "./fixtures/sources.ts";

const SKIP = /^(node_modules|\.tools|build|dist|datasets|tests|\.git|dashboard|wasm-models\/samples)(\/|$)/;
const sources = () => allSources(SKIP);

/** The modules a source file imports (static and dynamic), as written. */
function imports(file: string): string[] {
  const text = Deno.readTextFileSync(`${ROOT}${file}`);
  return [...text.matchAll(/(?:from|import)\s*\(?\s*"([^"]+)"/g)].map((m) => m[1]);
}

Deno.test("layout: onnxruntime only in workers/ and the reference server; only workers/runtime.ts sets ort.env", () => {
  for (const file of sources()) {
    const ort = imports(file).filter((m) => m.startsWith("onnxruntime"));
    if (ort.length > 0) {
      assert.ok(file.startsWith("workers/") || file === "cloud/reference_server.ts", `${file} imports ${ort}`);
    }
    const text = Deno.readTextFileSync(`${ROOT}${file}`);
    if (file.startsWith("workers/") && file !== "workers/runtime.ts") {
      assert.ok(!/\bort\.env\b|\.env\.wasm\./.test(text), `${file} configures the runtime itself`);
    }
  }
});

Deno.test("layout: the pool never imports the engine; rooms import what they may", () => {
  assert.ok(!imports("workers/pool.ts").some((m) => /engine|in_process|onnxruntime/.test(m)));
  for (const file of sources()) {
    const deps = imports(file).filter((m) => m.startsWith("."));
    // Pure rooms: no drizzle, no libSQL, no Hono, no runtime.
    if (/^(release|sequence|switcher)\//.test(file)) {
      for (const m of imports(file)) {
        assert.ok(!/^(drizzle|@libsql|hono|@hono|onnxruntime)/.test(m), `${file} is pure but imports ${m}`);
        assert.ok(!/\/(db|workers|serve|loop|routes)\//.test(m), `${file} is pure but imports ${m}`);
      }
    }
    // Routes and the request path reach the workers only through the pool's signature and the protocol's types.
    if (/^(routes|serve)\//.test(file)) {
      for (const m of deps.filter((d) => d.includes("/workers/"))) {
        assert.ok(/\/workers\/(pool|protocol|artefacts|pose_protocol)\.ts$/.test(m), `${file} reaches into ${m}`);
      }
      assert.ok(!deps.some((d) => d.includes("/scripts/")), `${file} imports a script`);
    }
    // The request path does not depend on the learning loop's jobs (the follower reads the registry's rows).
    if (file.startsWith("serve/")) {
      assert.ok(!deps.some((d) => /\/loop\/(retrain|pairs|job_lock)\.ts$/.test(d)), `${file} imports a loop job`);
    }
  }
});

Deno.test("layout: the README's layout section names every folder of code, and no folder that is gone", () => {
  const readme = Deno.readTextFileSync(`${ROOT}README.md`);
  const section = readme.slice(readme.indexOf("## Layout"));
  const listed = new Set([...section.matchAll(/^([a-z][a-z_-]*)\/\s/gm)].map((m) => m[1]));
  const folders = new Set(
    [...Deno.readDirSync(ROOT)]
      .filter((e) => e.isDirectory && !/^(\..*|node_modules|build|dist|data)$/.test(e.name))
      .map((e) => e.name),
  );
  assert.deepEqual([...listed].sort(), [...folders].sort());
});

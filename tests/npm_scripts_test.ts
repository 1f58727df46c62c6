/**
 * The first start installs the npm dependencies. Deno runs no npm lifecycle script unless told to, and warns about
 * each package that has one it skipped. Two do, and the service needs neither script: protobufjs's postinstall
 * only checks its optional command-line tools, and onnxruntime-node's downloads GPU execution providers (CUDA,
 * TensorRT) from the network, while the CPU binding the reference cloud server uses ships in the package. deno.json
 * says so (`allowScripts.deny`), so a fresh install prints no warning box; these tests hold that and check that
 * native onnxruntime still loads without the script.
 */
import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url);
/** Packages whose lifecycle scripts the service does not need, as deno.json lists them. */
const DENIED = ["npm:onnxruntime-node", "npm:protobufjs"];

async function run(args: string[], cwd: string) {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}

Deno.test("deno.json declares the lifecycle scripts the service does without, and no others", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
  assert.deepEqual(config.allowScripts, { deny: DENIED });
});

Deno.test({
  name: "a fresh install prints no warning about ignored build scripts, and native onnxruntime loads without them",
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "dmd_edge_install_" });
    try {
      for (const file of ["deno.json", "deno.lock"]) await Deno.copyFile(new URL(file, ROOT), `${dir}/${file}`);
      const install = await run(["install"], dir);
      assert.equal(install.code, 0, install.stderr);
      const printed = install.stdout + install.stderr;
      assert.doesNotMatch(printed, /Ignored build scripts|Warning/i, printed);
      assert.match(printed, /npm:onnxruntime-node 1\.30\.0/);
      // The binding the reference server loads first (runtime "auto" or "native").
      const load = await run([
        "eval",
        'const ort = await import("onnxruntime-node"); console.log(ort.env.versions.node, typeof ort.InferenceSession.create)',
      ], dir);
      assert.equal(load.code, 0, load.stderr);
      assert.equal(load.stdout.trim(), "1.30.0 function");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

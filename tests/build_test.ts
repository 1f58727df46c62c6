/**
 * `deno task build` makes a self-contained dist/: copied to a folder outside the project, it starts with
 * `deno run -A main.js`, becomes ready and classifies a sample.
 */
import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url).pathname;

Deno.test({
  name: "build: dist/ starts alone, outside the project, and classifies a sample",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const scratch = await Deno.makeTempDir();
    const out = `${scratch}/dist`;
    try {
      const build = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", `${ROOT}scripts/build.ts`, "--out", out, "--models", `${ROOT}wasm-models`],
        cwd: ROOT,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(build.code, 0, new TextDecoder().decode(build.stderr));

      // No deno.json, no node_modules of the project: only what dist/ holds.
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "main.js"],
        cwd: out,
        env: { PORT: "0", WORKERS: "1", DATABASE_URL: `file:${scratch}/d.db`, DENO_NO_UPDATE_CHECK: "1" },
        clearEnv: false,
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      try {
        const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
        let text = "";
        let url = "";
        while (!url) {
          const { value, done } = await reader.read();
          if (done) throw new Error(`dist exited before listening: ${text}`);
          text += value;
          const line = text.split("\n").find((l) => l.includes('"dmd-edge listening"'));
          if (line) url = JSON.parse(line).url;
        }
        (async () => {
          while (!(await reader.read()).done) { /* drain */ }
        })();
        const ready = await fetch(`${url}/readyz`);
        assert.equal(ready.status, 200, JSON.stringify(await ready.json()));
        const samples = [...Deno.readDirSync(`${out}/wasm-models/samples`)].filter((e) => e.name.endsWith(".json"));
        const body = await Deno.readTextFile(`${out}/wasm-models/samples/${samples[0].name}`);
        const res = await fetch(`${url}/v1/classify`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body,
        });
        const answer = await res.json();
        assert.equal(res.status, 200, JSON.stringify(answer));
        assert.ok(["edge", "cloud"].includes(answer.route));
        assert.equal(typeof answer.label, "string");
        // The decision reaches the database through the bundled writer thread and database process, and is read
        // back through the HTTP thread's database process.
        let logged = 0;
        for (let i = 0; i < 100 && logged !== 200; i++) {
          await new Promise((r) => setTimeout(r, 100));
          const got = await fetch(`${url}/v1/decisions/${answer.decisionId}`);
          await got.body?.cancel();
          logged = got.status;
        }
        assert.equal(logged, 200, "the decision was written and read back");
        const page = await fetch(`${url}/dashboard`);
        assert.equal(page.status, 200);
        assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
        assert.match(await page.text(), /<html/i);
      } finally {
        child.kill("SIGTERM");
        await child.status;
      }
    } finally {
      await Deno.remove(scratch, { recursive: true });
    }
  },
});

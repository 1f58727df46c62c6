/**
 * The log's line buffer (observability/logger.ts): lines batched into one write, in order, after flushMs or at once
 * past a size; a synchronous flush that survives partial writes; a failing sink that never throws into the caller;
 * and a process that logs and exits (normally, by Deno.exit, by an uncaught error) loses none of its lines and keeps
 * their order.
 */
import assert from "node:assert/strict";
import { LineBuffer, type LineSink } from "../observability/logger.ts";

const dec = new TextDecoder();
const LOGGER = new URL("../observability/logger.ts", import.meta.url).href;

/** Run `body` in a child Deno after `import { <names> } from` the logger; its exit code and decoded output. */
async function runWithLogger(names: string, body: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const code = `import { ${names} } from "${LOGGER}";\n${body}`;
  const out = await new Deno.Command(Deno.execPath(), { args: ["eval", code], stdout: "piped", stderr: "piped" })
    .output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** A sink that records its writes; `chunk` caps one write; `fail` throws. */
function recordingSink(options: { chunk?: number; fail?: boolean } = {}) {
  const writes: string[] = [];
  const sink: LineSink = {
    writeSync(bytes) {
      if (options.fail) throw new Error("closed");
      const n = Math.min(bytes.length, options.chunk ?? bytes.length);
      writes.push(dec.decode(bytes.subarray(0, n)));
      return n;
    },
  };
  return { sink, writes };
}

Deno.test("LineBuffer batches lines into one write, in order, after flushMs", async () => {
  const { sink, writes } = recordingSink();
  const buffer = new LineBuffer(sink, { flushMs: 10 });
  for (const line of ["a", "b", "c"]) buffer.push(line);
  assert.equal(writes.length, 0);
  assert.equal(buffer.pending, 3);
  await new Promise((r) => setTimeout(r, 40));
  assert.deepEqual(writes, ["a\nb\nc\n"]);
  buffer.push("d");
  buffer.flushSync();
  assert.deepEqual(writes, ["a\nb\nc\n", "d\n"]);
  assert.equal(buffer.pending, 0);
});

Deno.test("LineBuffer writes at once past flushBytes", () => {
  const { sink, writes } = recordingSink();
  const buffer = new LineBuffer(sink, { flushMs: 60_000, flushBytes: 8 });
  buffer.push("0123");
  assert.equal(buffer.pending, 1);
  buffer.push("4567"); // 10 bytes with the newlines: written now, not in a minute
  assert.equal(buffer.pending, 0);
  assert.deepEqual(writes, ["0123\n4567\n"]);
});

Deno.test("LineBuffer.flushSync writes every waiting line, across partial writes", () => {
  const { sink, writes } = recordingSink({ chunk: 3 });
  const buffer = new LineBuffer(sink, { flushMs: 60_000 });
  buffer.push("hello");
  buffer.push("world");
  buffer.flushSync();
  assert.equal(writes.join(""), "hello\nworld\n");
  assert.equal(buffer.pending, 0);
  buffer.flushSync(); // nothing waits: nothing written
  assert.equal(writes.join(""), "hello\nworld\n");
});

Deno.test("LineBuffer: a sink that fails loses those lines and never throws into the caller", () => {
  const { sink } = recordingSink({ fail: true });
  const buffer = new LineBuffer(sink, { flushMs: 60_000, flushBytes: 4 });
  buffer.push("xxxx");
  buffer.push("y");
  buffer.flushSync();
  assert.equal(buffer.pending, 0);
});

Deno.test("createLogger's own sink: a process that logs and then ends, exits or throws loses no line", async () => {
  for (const end of ["", "Deno.exit(3);", "throw new Error('boom');"]) {
    const out = await runWithLogger(
      "createLogger",
      `const log = createLogger({ level: "info" });
for (let i = 0; i < 500; i++) log.info("n", { i });
${end}`,
    );
    const lines = out.stdout.trimEnd().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(
      lines.map((l) => l.i),
      Array.from({ length: 500 }, (_, i) => i),
      `ending with ${end || "nothing"}`,
    );
    assert.equal(out.code, end.startsWith("Deno") ? 3 : end ? 1 : 0);
  }
});

Deno.test("createLogger: warn and error lines reach standard error at once", async () => {
  const out = await runWithLogger(
    "createLogger",
    `const log = createLogger({ level: "info" });
log.info("later");
log.error("now");
Deno.stderr.writeSync(new TextEncoder().encode("after\\n"));
await new Promise((r) => setTimeout(r, 50));`,
  );
  const err = out.stderr.trimEnd().split("\n");
  assert.equal(JSON.parse(err[0]).msg, "now");
  assert.equal(err[1], "after");
  assert.equal(JSON.parse(out.stdout).msg, "later");
});

Deno.test("flushLogsSync(): a line written to standard output directly afterwards comes after the buffered ones", async () => {
  const out = await runWithLogger(
    "createLogger, flushLogsSync",
    `const log = createLogger({ level: "info" });
log.info("first");
flushLogsSync();
console.log("second");
await new Promise((r) => setTimeout(r, 50));`,
  );
  const lines = out.stdout.trimEnd().split("\n");
  assert.equal(JSON.parse(lines[0]).msg, "first");
  assert.equal(lines[1], "second");
});

/**
 * The memory trimmer (serve/memory_trim.ts): glibc's malloc_trim off the HTTP thread, on a timer that never holds
 * the process open; where it cannot work it says why once and does nothing; MEMORY_TRIM_MS configures it.
 */
import assert from "node:assert/strict";
import { loadConfig } from "../config.ts";
import { startMemoryTrim } from "../serve/memory_trim.ts";
import type { Logger } from "../observability/logger.ts";
import { spawnService } from "./reliability_helpers.ts";

/** A logger that keeps what it is told. */
function recordingLogger(): Logger & { lines: { level: string; msg: string; fields?: Record<string, unknown> }[] } {
  const lines: { level: string; msg: string; fields?: Record<string, unknown> }[] = [];
  const at = (level: string) => (msg: string, fields?: Record<string, unknown>) => lines.push({ level, msg, fields });
  return {
    level: "debug",
    lines,
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    enabled: () => true,
  } as unknown as Logger & { lines: { level: string; msg: string; fields?: Record<string, unknown> }[] };
}

const glibc = Deno.build.os === "linux" && (() => {
  try {
    Deno.dlopen("libc.so.6", { malloc_trim: { parameters: ["usize"], result: "i32" } }).close();
    return true;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "memory trim: a trim on demand reports the resident set before and after, one at a time",
  ignore: !glibc,
  async fn() {
    const logger = recordingLogger();
    const trimmer = startMemoryTrim({ intervalMs: 0, logger });
    try {
      assert.equal(trimmer.available, true);
      assert.equal(trimmer.reason, null);
      // Two asked together share one call.
      const [a, b] = await Promise.all([trimmer.trim(), trimmer.trim()]);
      assert.ok(a && a === b);
      assert.ok(a.rssBefore > 0 && a.rssAfter > 0 && a.ms >= 0 && typeof a.released === "boolean");
      assert.equal(trimmer.stats().trims, 1);
      assert.equal(logger.lines.filter((l) => l.msg === "memory trimmed").length, 1);
    } finally {
      await trimmer.stop();
    }
    assert.equal(await trimmer.trim(), null, "nothing after stop");
  },
});

Deno.test({
  name: "memory trim: the timer trims after firstAfterMs and then every intervalMs, until stopped",
  ignore: !glibc,
  async fn() {
    const trimmer = startMemoryTrim({ intervalMs: 40, firstAfterMs: 10 });
    try {
      const end = Date.now() + 5000;
      while (trimmer.stats().trims < 3 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      assert.ok(trimmer.stats().trims >= 3, `${trimmer.stats().trims} trims`);
    } finally {
      await trimmer.stop();
    }
    const after = trimmer.stats().trims;
    await new Promise((r) => setTimeout(r, 120));
    assert.equal(trimmer.stats().trims, after, "no trim after stop");
  },
});

Deno.test("memory trim: without the C library's malloc_trim it says why once and does nothing", async () => {
  const logger = recordingLogger();
  const trimmer = startMemoryTrim({ intervalMs: 10, library: "libno-such-library.so.1", logger });
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(trimmer.available, false);
  assert.match(trimmer.reason ?? "", /libno-such-library\.so\.1|not on Linux/);
  assert.equal(await trimmer.trim(), null);
  assert.deepEqual(trimmer.stats(), { trims: 0, releasedBytes: 0 });
  assert.deepEqual(logger.lines.map((l) => [l.level, l.msg]), [["info", "memory trim unavailable"]]);
  await trimmer.stop();
});

Deno.test("loadConfig(): MEMORY_TRIM_MS is 60000 by default, 0 turns it off, a bad value stops", () => {
  const base = { DATABASE_URL: ":memory:" };
  assert.equal(loadConfig(base).memoryTrimMs, 60_000);
  assert.equal(loadConfig({ ...base, MEMORY_TRIM_MS: "0" }).memoryTrimMs, 0);
  assert.throws(() => loadConfig({ ...base, MEMORY_TRIM_MS: "-5" }), /Invalid MEMORY_TRIM_MS/);
});

Deno.test({
  name: "memory trim: the service trims on its own timer and stops it at shutdown",
  ignore: !glibc,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const svc = await spawnService({ DATABASE_URL: ":memory:", MEMORY_TRIM_MS: "200", LOG_LEVEL: "debug" });
    const end = Date.now() + 20_000;
    while (!svc.output().includes('"msg":"memory trimmed"') && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.match(svc.output(), /"msg":"memory trimmed","rssBeforeMiB":\d+,"rssAfterMiB":\d+/);
    svc.child.kill("SIGTERM");
    assert.equal((await svc.status).code, 0, svc.output());
  },
});

/**
 * The benchmark's load generator (scripts/bench_load.ts), run as the separate process `deno task bench` runs: it
 * counts answered, shed (503 OVERLOADED) and failed requests apart, reports percentiles of the answered ones only,
 * takes the server's stage timings from the answers, reports its own CPU time, and refuses bad flags with exit 2.
 * Also the per-thread CPU reading the bench takes of the service (scripts/procs.ts).
 */
import assert from "node:assert/strict";
import { idleShare, machineCpu, threadCpuMs } from "../scripts/procs.ts";
import { appDurationMs } from "../scripts/timing.ts";

const SCRIPT = new URL("../scripts/bench_load.ts", import.meta.url).pathname;

async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), { args: ["run", "-A", SCRIPT, ...args] }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

for (const client of ["raw", "fetch"]) {
  Deno.test(`bench_load (--client ${client}) counts answered, shed and failed requests apart and reads the server's timings`, async () => {
    let n = 0;
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
      await req.text();
      const i = n++ % 4;
      if (i === 1) return Response.json({ code: "OVERLOADED", message: "shed" }, { status: 503 });
      if (i === 2) return Response.json({ code: "INTERNAL", message: "x" }, { status: 500 });
      return Response.json({
        label: "a",
        timings: { queueMs: 1, preprocessMs: 0.5, edgeMs: 2, switcherMs: 0.1, totalMs: 4 },
      }, { headers: { "server-timing": 'db;dur=9, app;desc="the service";dur=4.5' } });
    });
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeTextFile(`${dir}/body.json`, "{}");
      const url = `http://127.0.0.1:${server.addr.port}/v1/classify`;
      const { code, stdout } = await run([
        "--url",
        url,
        "--body",
        `${dir}/body.json`,
        "--concurrency",
        "2",
        "--duration-ms",
        "300",
        "--client",
        client,
      ]);
      assert.equal(code, 0);
      const r = JSON.parse(stdout);
      assert.equal(r.client, client);
      assert.equal(r.answered + r.shed + r.failed, n);
      assert.ok(r.answered >= 1 && r.shed >= 1 && r.failed >= 1, stdout);
      assert.ok(Math.abs(r.answered - 2 * r.shed) <= 2 && Math.abs(r.shed - r.failed) <= 2, stdout);
      assert.deepEqual(r.serverP50, {
        queueMs: 1,
        preprocessMs: 0.5,
        edgeMs: 2,
        switcherMs: 0.1,
        totalMs: 4,
        appMs: 4.5,
      });
      assert.equal(r.concurrency, 2);
      assert.ok(r.p50Ms > 0 && r.p99Ms >= r.p50Ms && r.throughputRps > 0);
      // Its own CPU over the phase: some, and no more than its wall time on every core.
      assert.ok(r.cpuMs > 0 && r.cpuMs <= r.wallMs * navigator.hardwareConcurrency, stdout);
    } finally {
      await server.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("appDurationMs reads the app metric of a Server-Timing header and nothing else", () => {
  assert.equal(appDurationMs("app;dur=0.712"), 0.712);
  assert.equal(appDurationMs('cache;desc="hit", app;desc="x";dur=2.5, db;dur=1'), 2.5);
  assert.equal(appDurationMs("APP;DUR=1"), null); // metric names are case-sensitive
  assert.equal(appDurationMs("application;dur=3"), null);
  assert.equal(appDurationMs("app"), null);
  assert.equal(appDurationMs("app;dur=abc"), null);
  assert.equal(appDurationMs(null), null);
});

Deno.test("bench_load refuses a missing URL, a bad concurrency and an unknown client with exit 2", async () => {
  const missing = await run(["--concurrency", "1"]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /--url is required/);
  const bad = await run(["--url", "http://127.0.0.1:9/", "--concurrency", "0"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--concurrency must be >= 1/);
  const client = await run(["--url", "http://127.0.0.1:9/", "--client", "curl"]);
  assert.equal(client.code, 2);
  assert.match(client.stderr, /--client must be raw or fetch/);
});

Deno.test("bench_load sends a binary body with its content type and headers", async () => {
  const seen: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const bytes = new Uint8Array(await req.arrayBuffer());
    seen.push(`${req.headers.get("content-type")} ${req.headers.get("x-frames")} ${bytes.length} ${bytes[2]}`);
    return Response.json({ timings: {} });
  });
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/body.f32`, Uint8Array.from([0, 1, 2, 3, 4, 5, 6, 7]));
    const { code, stdout } = await run([
      ...["--url", `http://127.0.0.1:${server.addr.port}/`, "--body", `${dir}/body.f32`],
      ...["--content-type", "application/octet-stream", "--header", "x-frames: 2", "--duration-ms", "100"],
    ]);
    assert.equal(code, 0);
    assert.equal(JSON.parse(stdout).answered, seen.length);
    assert.ok(seen.length >= 1);
    assert.ok(seen.every((s) => s === "application/octet-stream 2 8 2"), seen[0]);
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("threadCpuMs groups a process's CPU by thread: a busy Web Worker counts under workers", async (t) => {
  if (Deno.build.os !== "linux") {
    assert.equal(threadCpuMs(Deno.pid), null);
    return;
  }
  const before = threadCpuMs(Deno.pid)!;
  const url = `data:text/javascript,${
    encodeURIComponent("const end = performance.now() + 300; while (performance.now() < end); postMessage(1);")
  }`;
  const worker = new Worker(url, { type: "module" });
  await new Promise((resolve) => (worker.onmessage = resolve));
  const after = threadCpuMs(Deno.pid)!;
  worker.terminate();
  // 300 ms of spinning, read in 10 ms ticks: well over 100 ms on the worker's thread.
  assert.ok(after.workers - before.workers >= 100, JSON.stringify({ before, after }));
  // The main thread lives as long as the process, so its time only grows. The other groups are sums over the threads
  // alive at each reading: one that ends between the readings (a runtime thread idle for seconds, an earlier worker)
  // takes its time out of the sum, so they need not.
  assert.ok(after.main >= before.main, JSON.stringify({ before, after }));
  await t.step("a process that is gone reads null", () => assert.equal(threadCpuMs(2 ** 22 + 12345), null));
});

Deno.test("bench_load --interleave-url: each client alternates, and the GETs are timed apart", async () => {
  const seen = { post: 0, get: 0 };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    await req.text();
    if (req.method === "GET") {
      seen.get++;
      return Response.json({ ok: true });
    }
    seen.post++;
    return Response.json({ label: "a", timings: { edgeMs: 2 } });
  });
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/body.json`, "{}");
    const base = `http://127.0.0.1:${server.addr.port}`;
    const { code, stdout } = await run([
      "--url",
      `${base}/v1/classify`,
      "--body",
      `${dir}/body.json`,
      "--interleave-url",
      `${base}/healthz`,
      "--concurrency",
      "1",
      "--duration-ms",
      "300",
    ]);
    assert.equal(code, 0);
    const r = JSON.parse(stdout);
    // One GET after every answered POST, never more.
    assert.equal(r.answered, seen.post);
    assert.equal(r.interleaved.answered, seen.get);
    assert.equal(seen.get, seen.post);
    assert.ok(r.interleaved.p50Ms > 0 && r.interleaved.p99Ms >= r.interleaved.p50Ms, stdout);
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("machineCpu and idleShare: a busy core shows as less idle than a sleep", async () => {
  if (Deno.build.os !== "linux") {
    assert.equal(machineCpu(), null);
    return;
  }
  const share = async (busy: boolean) => {
    const before = machineCpu();
    const end = performance.now() + 300;
    if (busy) { while (performance.now() < end) { /* spin one core */ } }
    else await new Promise((r) => setTimeout(r, 300));
    return idleShare(before, machineCpu())!;
  };
  const spinning = await share(true);
  const sleeping = await share(false);
  assert.ok(spinning >= 0 && spinning <= 1 && sleeping >= 0 && sleeping <= 1, `${spinning} ${sleeping}`);
  // One core of n spinning takes at least a share of about 1/n from idle (other load only takes more).
  assert.ok(spinning <= 1 - 0.5 / navigator.hardwareConcurrency, `${spinning}`);
  assert.equal(idleShare(null, machineCpu()), null);
  const now = machineCpu();
  assert.equal(idleShare(now, now), null);
});

Deno.test("spawn finds the child's URL and leaves no timer behind: a script that used it exits when done", async () => {
  const procs = new URL("../scripts/procs.ts", import.meta.url).href;
  const child = `console.log(JSON.stringify({ url: "http://127.0.0.1:1" })); setTimeout(() => {}, 60_000);`;
  const script = `import { spawn } from ${JSON.stringify(procs)};
const p = await spawn(["eval", ${JSON.stringify(child)}], {}, /"url":"([^"]+)"/);
p.child.kill("SIGTERM");
await p.child.status;
console.log(p.url);`;
  const cmd = new Deno.Command(Deno.execPath(), { args: ["eval", script], stdout: "piped", stderr: "piped" }).spawn();
  // spawn's own deadline is two minutes: a timer it left pending would hold the script that long.
  const timer = setTimeout(() => cmd.kill("SIGKILL"), 30_000);
  const out = await cmd.output();
  clearTimeout(timer);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.equal(new TextDecoder().decode(out.stdout).trim(), "http://127.0.0.1:1");
});

/**
 * The connection guard (serve/conn_guard.ts): slow and idle clients are closed, the connection count is capped, and
 * everything a well-behaved client does (keep-alive, chunked and large bodies, pipelining, half-close, SIGTERM drain)
 * still works through it. Loopback only; each test is bounded by its timeouts (a few seconds).
 */
import assert from "node:assert/strict";
import { loadConfig } from "../config.ts";
import {
  createConnGuard,
  type GuardedServer,
  PEER_FIELD,
  SOCKET_DIR_PREFIX,
  sweepSocketDirs,
} from "../serve/conn_guard.ts";
import { classify, spawnService, tinyBody } from "./reliability_helpers.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A raw client connection: what it received, and when the server closed it. */
interface RawClient {
  conn: Deno.TcpConn;
  /** Everything received until the server closed the connection (or reset it), and after how long. */
  ended: Promise<{ text: string; afterMs: number; reset: boolean }>;
  send(text: string): Promise<void>;
}

async function rawClient(port: number): Promise<RawClient> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const t0 = performance.now();
  const ended = (async () => {
    const buf = new Uint8Array(65536);
    let text = "";
    for (;;) {
      const n = await conn.read(buf).catch(() => -1);
      if (n === null || n === -1) {
        try {
          conn.close();
        } catch { /* closed */ }
        return { text, afterMs: performance.now() - t0, reset: n === -1 };
      }
      text += dec.decode(buf.subarray(0, n));
    }
  })();
  return {
    conn,
    ended,
    send: async (text) => void await conn.write(enc.encode(text)),
  };
}

/** What the client received by the time the server closed it, or "still open" after `ms` (then it is closed here). */
async function endedWithin(client: RawClient, ms: number): Promise<{ text: string; afterMs: number }> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const open = new Promise<null>((r) => timer = setTimeout(() => r(null), ms));
  const end = await Promise.race([client.ended, open]);
  clearTimeout(timer);
  if (end) return end;
  client.conn.close();
  return { text: "still open", afterMs: Infinity };
}

/** Send a header byte every `everyMs` until the connection is closed. */
function trickle(client: RawClient, everyMs: number): void {
  const head = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + "a".repeat(10_000);
  let i = 0;
  const timer = setInterval(() => client.send(head[i++ % head.length]).catch(() => clearInterval(timer)), everyMs);
  client.ended.finally(() => clearInterval(timer));
}

/** A guarded echo server: method, path, body length and byte sum, and the client's address as the handler sees it. */
async function echoServer(options: Partial<Parameters<typeof createConnGuard>[0]> = {}) {
  const guard = createConnGuard({
    hostname: "127.0.0.1",
    port: 0,
    headerTimeoutMs: 400,
    keepAliveIdleMs: 600,
    maxConnections: 50,
    ...options,
  });
  const server: GuardedServer = await guard.serve(async (req, info) => {
    let length = 0;
    let sum = 0;
    for await (const chunk of req.body ?? []) {
      length += chunk.length;
      for (const b of chunk) sum = (sum + b) % 1_000_003;
    }
    return Response.json({
      method: req.method,
      path: new URL(req.url).pathname,
      length,
      sum,
      peer: `${info.remoteAddr.hostname}:${info.remoteAddr.port}`,
      forged: req.headers.get("x-forged"),
    });
  });
  return { guard, server, url: `http://127.0.0.1:${server.addr.port}`, port: server.addr.port };
}

/** Run `fn` against a guarded echo server, shut down afterwards. */
async function withEcho(
  options: Partial<Parameters<typeof createConnGuard>[0]>,
  fn: (echo: Awaited<ReturnType<typeof echoServer>>) => Promise<void>,
): Promise<void> {
  const echo = await echoServer(options);
  try {
    await fn(echo);
  } finally {
    await echo.server.shutdown();
  }
}

function byteSum(bytes: Uint8Array): number {
  let sum = 0;
  for (const b of bytes) sum = (sum + b) % 1_000_003;
  return sum;
}

Deno.test({
  name: "service: a slowloris client and a silent one are closed with 408 after HEADER_TIMEOUT_MS while others are " +
    "served; SIGTERM still answers the request in flight",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir();
    // A cloud that answers after 800 ms: a request routed to it is in flight when SIGTERM arrives.
    const cloud = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
      if (!new URL(req.url).pathname.endsWith("/infer")) return Response.json({ name: "cloud", ready: true });
      const n = (await req.json()).inputs[0].shape[0];
      await new Promise((r) => setTimeout(r, 800));
      return Response.json({
        model_name: "cloud",
        model_version: "slow-1",
        outputs: [{ name: "logits", shape: [n, 3], datatype: "FP32", data: Array(n * 3).fill(1) }],
      });
    });
    try {
      const svc = await spawnService({
        DATABASE_URL: `file:${dir}/d.db`,
        CLOUD_URL: `http://127.0.0.1:${cloud.addr.port}`,
        CLOUD_TIMEOUT_MS: "5000",
        HEADER_TIMEOUT_MS: "800",
        SHUTDOWN_TIMEOUT_MS: "5000",
      });
      const port = Number(new URL(svc.url).port);
      const slow = await rawClient(port);
      trickle(slow, 50);
      const silent = await rawClient(port);
      // Meanwhile, a normal client is served, again and again.
      const served: number[] = [];
      while (served.length < 5) {
        served.push((await classify(svc.url, tinyBody({ route: "edge" })))?.status ?? 0);
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.deepEqual(served, [200, 200, 200, 200, 200]);
      for (const client of [slow, silent]) {
        const end = await endedWithin(client, 3000);
        assert.match(end.text, /^HTTP\/1\.1 408 Request Timeout\r\n/);
        assert.match(end.text, /\r\nconnection: close\r\n/);
        assert.match(end.text, /"code":"REQUEST_TIMEOUT"/);
        assert.ok(end.afterMs >= 750 && end.afterMs < 3000, `closed after ${end.afterMs} ms`);
      }
      const metrics = await (await fetch(`${svc.url}/metrics`)).text();
      assert.match(metrics, /dmd_http_connections_closed_total\{reason="header_timeout"[^}]*\} 2\n/);

      // SIGTERM with a request in flight and a slow client connected: the request is answered, the exit is clean.
      const inFlight = classify(svc.url, tinyBody({ route: "cloud" }));
      const slowAtExit = await rawClient(port);
      trickle(slowAtExit, 50);
      await new Promise((r) => setTimeout(r, 300));
      // (That new requests get 503 meanwhile, through the guard: tests/shutdown_test.ts.)
      const t0 = performance.now();
      svc.child.kill("SIGTERM");
      const answered = await inFlight;
      assert.equal(answered?.status, 200);
      assert.equal(answered?.json.route, "cloud");
      assert.equal((await svc.status).code, 0, svc.output());
      assert.ok(performance.now() - t0 < 4000, "the slow client did not hold the exit");
      await slowAtExit.ended;
    } finally {
      await cloud.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("guard: one kept-alive connection carries Content-Length, chunked and large streamed bodies", async () => {
  const { server, url } = await echoServer({ keepAliveIdleMs: 5000 });
  const client = Deno.createHttpClient({ poolMaxIdlePerHost: 1, http2: false });
  try {
    const small = enc.encode("hello, guard");
    const large = new Uint8Array(24 * 1024 * 1024).map((_, i) => (i * 7) & 255);
    const chunked = () =>
      new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(small);
          c.enqueue(new Uint8Array(5000).fill(3));
          c.close();
        },
      });
    /** 24 MiB in 64 KiB pieces, produced as they are read: nothing holds the whole body. */
    const streamed = () => {
      let at = 0;
      return new ReadableStream<Uint8Array>({
        pull(c) {
          if (at >= large.length) return c.close();
          c.enqueue(large.subarray(at, at += 65536));
        },
      });
    };
    const answers = [];
    for (const body of [small, chunked(), streamed(), small]) {
      const res = await fetch(`${url}/echo`, { method: "POST", body, client });
      answers.push(await res.json());
    }
    assert.deepEqual(answers.map((a) => [a.length, a.sum]), [
      [small.length, byteSum(small)],
      [small.length + 5000, byteSum(small) + 15000],
      [large.length, byteSum(large)],
      [small.length, byteSum(small)],
    ]);
    assert.equal(new Set(answers.map((a) => a.peer)).size, 1, "every request came on the same connection");
    assert.match(answers[0].peer, /^127\.0\.0\.1:\d+$/);
  } finally {
    client.close();
    await server.shutdown();
  }
});

Deno.test("guard: a pipelined pair is answered in order, and a half-close waits for the answers", () =>
  withEcho({}, async ({ port }) => {
    const c = await rawClient(port);
    await c.send(
      "POST /one HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc" +
        "POST /two HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n0\r\n\r\n",
    );
    await c.conn.closeWrite();
    const { text, reset } = await c.ended;
    assert.equal(reset, false);
    const bodies = [...text.matchAll(/\r\n\r\n(\{[^}]*\})/g)].map((m) => JSON.parse(m[1]));
    assert.deepEqual(bodies.map((b) => [b.path, b.length]), [["/one", 3], ["/two", 2]]);
  }));

Deno.test("guard: after Connection: close the answer arrives whole, bytes sent after it notwithstanding", () =>
  withEcho({}, async ({ port }) => {
    const c = await rawClient(port);
    await c.send(
      `GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n${"junk after the last request ".repeat(500)}`,
    );
    const { text, reset } = await c.ended;
    assert.equal(reset, false);
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n[^]*"path":"\/last"/);
  }));

Deno.test("guard: the handler sees the client's address; a forged peer field is dropped", () =>
  withEcho({}, async ({ port }) => {
    const c = await rawClient(port);
    await c.send(
      `GET /who HTTP/1.1\r\nHost: x\r\n${PEER_FIELD}: 6.6.6.6 66\r\nX-Forged: kept\r\nConnection: close\r\n\r\n`,
    );
    const body = JSON.parse((await c.ended).text.split("\r\n\r\n")[1]);
    assert.equal(body.peer, `127.0.0.1:${(c.conn.localAddr as Deno.NetAddr).port}`);
    assert.equal(body.forged, "kept");
  }));

Deno.test("guard: an idle kept-alive connection is closed after keepAliveIdleMs, not before", () =>
  withEcho({ headerTimeoutMs: 5000, keepAliveIdleMs: 500 }, async ({ guard, port }) => {
    const c = await rawClient(port);
    await c.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    await new Promise((r) => setTimeout(r, 300));
    await c.send("GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    const sent = performance.now();
    const { text } = await c.ended;
    const idleMs = performance.now() - sent;
    assert.equal([...text.matchAll(/HTTP\/1\.1 200 OK/g)].length, 2);
    assert.ok(idleMs >= 450 && idleMs < 2000, `closed after ${idleMs} ms idle`);
    assert.equal(guard.stats().idleClosed, 1);
    assert.equal(guard.stats().headerTimeouts, 0);
  }));

Deno.test("guard: past maxConnections a new connection gets 503 and is closed; a freed slot is reused", () =>
  withEcho({ maxConnections: 2, headerTimeoutMs: 5000 }, async ({ guard, port }) => {
    const held = [await rawClient(port), await rawClient(port)];
    await new Promise((r) => setTimeout(r, 50));
    const refused = await rawClient(port);
    const end = await refused.ended;
    assert.match(end.text, /^HTTP\/1\.1 503 Service Unavailable\r\n/);
    assert.match(end.text, /"code":"OVERLOADED"/);
    assert.equal(guard.stats().refusedAtLimit, 1);
    held[0].conn.close();
    await new Promise((r) => setTimeout(r, 50));
    const next = await rawClient(port);
    await next.send("GET /again HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert.match((await next.ended).text, /^HTTP\/1\.1 200 OK/);
    held[1].conn.close();
  }));

Deno.test("guard: a head over the limit is 431 and a malformed request 400, after the answer before it", () =>
  withEcho({ maxHeadBytes: 1024 }, async ({ guard, port }) => {
    const big = await rawClient(port);
    await big.send(`GET / HTTP/1.1\r\nX-Big: ${"b".repeat(2000)}`);
    assert.match((await big.ended).text, /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
    const bad = await rawClient(port);
    await bad.send(
      "GET /first HTTP/1.1\r\nHost: x\r\n\r\nPOST /second HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    const { text } = await bad.ended;
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n[^]*"path":"\/first"[^]*HTTP\/1\.1 400 Bad Request\r\n/);
    assert.match(text, /both Transfer-Encoding and Content-Length/);
    assert.equal(guard.stats().badRequests, 2);
  }));

/** The id of a process that has ended. */
async function deadPid(): Promise<number> {
  const child = new Deno.Command(Deno.execPath(), { args: ["--version"], stdout: "null" }).spawn();
  await child.status;
  return child.pid;
}

Deno.test("sweepSocketDirs: removes a dead process's folder whose socket refuses connections, and nothing else", async () => {
  const tmp = await Deno.makeTempDir();
  const listener = Deno.listen({ transport: "unix", path: `${tmp}/live.sock` });
  try {
    const dead = await deadPid();
    const make = async (name: string, files: string[], socket?: "stale" | "listening") => {
      await Deno.mkdir(`${tmp}/${name}`);
      for (const f of files) await Deno.writeTextFile(`${tmp}/${name}/${f}`, "");
      if (socket === "stale") {
        // A socket file with no server behind it, as a killed process leaves it.
        const l = Deno.listen({ transport: "unix", path: `${tmp}/${name}/http.sock` });
        l.close();
        await Deno.stat(`${tmp}/${name}/http.sock`).catch(() => Deno.writeTextFile(`${tmp}/${name}/http.sock`, ""));
      } else if (socket === "listening") {
        await Deno.symlink(`${tmp}/live.sock`, `${tmp}/${name}/http.sock`);
      }
    };
    await make(`${SOCKET_DIR_PREFIX}${dead}-stale`, [], "stale");
    await make(`${SOCKET_DIR_PREFIX}${dead}-empty`, []);
    // A server still listens (a process of another pid namespace sharing the folder): kept.
    await make(`${SOCKET_DIR_PREFIX}${dead}-served`, [], "listening");
    // Something besides the socket: not ours to judge, kept.
    await make(`${SOCKET_DIR_PREFIX}${dead}-more`, ["notes.txt"], "stale");
    // This process's own folder, and one of a process that runs: kept.
    await make(`${SOCKET_DIR_PREFIX}${Deno.pid}-mine`, [], "stale");
    await make(`${SOCKET_DIR_PREFIX}1-init`, [], "stale");
    // Another name, and the folders of earlier versions (no process id): kept.
    await make(`other-${dead}-x`, [], "stale");
    await make(`${SOCKET_DIR_PREFIX}abcdef0123`, [], "stale");

    const removed = await sweepSocketDirs(tmp);
    assert.deepEqual(
      removed.map((d) => d.slice(tmp.length + 1)).sort(),
      [`${SOCKET_DIR_PREFIX}${dead}-empty`, `${SOCKET_DIR_PREFIX}${dead}-stale`],
    );
    const left = [];
    for await (const e of Deno.readDir(tmp)) left.push(e.name);
    assert.deepEqual(
      left.sort(),
      [
        `${SOCKET_DIR_PREFIX}${dead}-more`,
        `${SOCKET_DIR_PREFIX}${dead}-served`,
        `${SOCKET_DIR_PREFIX}${Deno.pid}-mine`,
        `${SOCKET_DIR_PREFIX}1-init`,
        `${SOCKET_DIR_PREFIX}abcdef0123`,
        "live.sock",
        `other-${dead}-x`,
      ].sort(),
    );
    // A folder that cannot be read is no error.
    assert.deepEqual(await sweepSocketDirs(`${tmp}/missing`), []);
  } finally {
    listener.close();
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test({
  name: "service: the private folder of a service killed with SIGKILL is removed when the next one starts; SIGTERM " +
    "removes its own",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const tmp = await Deno.makeTempDir();
    const folders = async () => {
      const names: string[] = [];
      for await (const e of Deno.readDir(tmp)) if (e.name.startsWith(SOCKET_DIR_PREFIX)) names.push(e.name);
      return names;
    };
    try {
      const first = await spawnService({ DATABASE_URL: ":memory:", TMPDIR: tmp });
      first.child.kill("SIGKILL");
      await first.status;
      const left = await folders();
      assert.equal(left.length, 1);
      assert.ok(left[0].startsWith(`${SOCKET_DIR_PREFIX}${first.child.pid}-`), left[0]);

      const second = await spawnService({ DATABASE_URL: ":memory:", TMPDIR: tmp });
      assert.equal((await classify(second.url, tinyBody({ route: "edge" })))?.status, 200);
      const now = await folders();
      assert.equal(now.length, 1);
      assert.ok(now[0].startsWith(`${SOCKET_DIR_PREFIX}${second.child.pid}-`), now[0]);
      second.child.kill("SIGTERM");
      assert.equal((await second.status).code, 0, second.output());
      assert.deepEqual(await folders(), []);
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

Deno.test("loadConfig(): the guard is on by default (10 s, 30 s, 1000); HEADER_TIMEOUT_MS=0 turns it off; bad values stop", () => {
  const base = { DATABASE_URL: ":memory:" };
  const c = loadConfig(base);
  assert.deepEqual([c.headerTimeoutMs, c.keepAliveIdleMs, c.maxConnections], [10_000, 30_000, 1000]);
  assert.equal(loadConfig({ ...base, HEADER_TIMEOUT_MS: "0" }).headerTimeoutMs, 0);
  assert.throws(() => loadConfig({ ...base, HEADER_TIMEOUT_MS: "-1" }), /Invalid HEADER_TIMEOUT_MS/);
  assert.throws(() => loadConfig({ ...base, KEEPALIVE_IDLE_MS: "0" }), /Invalid KEEPALIVE_IDLE_MS/);
  assert.throws(() => loadConfig({ ...base, MAX_CONNECTIONS: "many" }), /Invalid MAX_CONNECTIONS/);
});

/**
 * The benchmark's lean HTTP/1.1 client (scripts/http1_client.ts) against raw TCP servers that answer the ways a
 * server may: Content-Length or chunked, in pieces of a few bytes, larger than its buffer, closing the connection
 * after an answer (`Connection: close`, or silently between requests); and against Deno.serve.
 */
import assert from "node:assert/strict";
import { buildRequest, Http1Connection } from "../scripts/http1_client.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A raw TCP server: `answer` gets each connection and writes what it likes. */
function rawServer(answer: (conn: Deno.TcpConn, index: number) => Promise<void>) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let index = 0;
  const done = (async () => {
    for await (const conn of listener) answer(conn, index++).catch(() => {}).finally(() => conn.close());
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    close: async () => {
      listener.close();
      await done.catch(() => {});
    },
  };
}

/** Read one request head (and a Content-Length body) from a connection; null at its end. */
async function readRequest(conn: Deno.TcpConn, pending: { bytes: Uint8Array }): Promise<string | null> {
  const buf = new Uint8Array(4096);
  for (;;) {
    const text = dec.decode(pending.bytes);
    const end = text.indexOf("\r\n\r\n");
    if (end >= 0) {
      const length = Number(/content-length: (\d+)/i.exec(text.slice(0, end))?.[1] ?? 0);
      if (pending.bytes.length >= end + 4 + length) {
        pending.bytes = pending.bytes.slice(end + 4 + length);
        return text.slice(0, end + 4 + length);
      }
    }
    const n = await conn.read(buf);
    if (n === null) return null;
    const next = new Uint8Array(pending.bytes.length + n);
    next.set(pending.bytes);
    next.set(buf.subarray(0, n), pending.bytes.length);
    pending.bytes = next;
  }
}

/** Write bytes a few at a time, so that the client reads every part of an answer across reads. */
async function writeSlowly(conn: Deno.TcpConn, text: string, step = 7): Promise<void> {
  const bytes = enc.encode(text);
  for (let i = 0; i < bytes.length; i += step) {
    await conn.write(bytes.subarray(i, i + step));
    await new Promise((r) => setTimeout(r, 0));
  }
}

Deno.test("buildRequest: the request line, host, headers, content-length and body; http: only", () => {
  const bytes = buildRequest(new URL("http://127.0.0.1:8080/v1/classify?x=1"), {
    headers: { "content-type": "application/json" },
    body: '{"a":"é"}',
  });
  assert.equal(
    dec.decode(bytes),
    "POST /v1/classify?x=1 HTTP/1.1\r\nhost: 127.0.0.1:8080\r\nconnection: keep-alive\r\n" +
      'content-type: application/json\r\ncontent-length: 10\r\n\r\n{"a":"é"}',
  );
  assert.match(dec.decode(buildRequest(new URL("http://h/healthz"))), /^GET \/healthz HTTP\/1\.1\r\n/);
  assert.throws(() => buildRequest(new URL("https://h/")), /only http: URLs/);
  assert.throws(() => buildRequest(new URL("http://h/"), { headers: { a: "b\r\nc: d" } }), /line break/);
});

Deno.test("Http1Connection reads Content-Length and chunked answers sent a few bytes at a time, on one connection", async () => {
  let connections = 0;
  const server = rawServer(async (conn) => {
    connections++;
    const pending = { bytes: new Uint8Array() };
    for (let i = 0; (await readRequest(conn, pending)) !== null; i++) {
      if (i % 2 === 0) {
        await writeSlowly(
          conn,
          `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{"i":${i}}`,
        );
      } else {
        await writeSlowly(
          conn,
          "HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nOVER\r\n6\r\nLOADED\r\n0\r\nTrailer: t\r\n\r\n",
        );
      }
    }
  });
  const client = new Http1Connection("127.0.0.1", server.port);
  try {
    const req = buildRequest(new URL(`http://127.0.0.1:${server.port}/`), { body: "{}" });
    for (let i = 0; i < 6; i++) {
      const res = await client.request(req);
      if (i % 2 === 0) {
        assert.equal(res.status, 200);
        assert.equal(res.headers.get("content-type"), "application/json");
        assert.equal(dec.decode(res.body), `{"i":${i}}`);
      } else {
        assert.equal(res.status, 503);
        assert.equal(dec.decode(res.body), "OVERLOADED");
      }
    }
    assert.equal(connections, 1);
  } finally {
    client.close();
    await server.close();
  }
});

Deno.test("Http1Connection: an answer larger than its buffer, Connection: close, and a connection closed between requests", async () => {
  const big = "x".repeat(200_000);
  const server = rawServer(async (conn, index) => {
    const pending = { bytes: new Uint8Array() };
    if ((await readRequest(conn, pending)) === null) return;
    if (index === 0) {
      await conn.write(enc.encode(`HTTP/1.1 200 OK\r\nContent-Length: ${big.length}\r\n\r\n${big}`));
      // Then the server drops the kept-alive connection without a word: the client must send again on a new one.
      return;
    }
    if (index === 1) {
      await conn.write(enc.encode("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"));
      return;
    }
    await conn.write(enc.encode("HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n"));
  });
  const client = new Http1Connection("127.0.0.1", server.port);
  try {
    const req = buildRequest(new URL(`http://127.0.0.1:${server.port}/`));
    const first = await client.request(req);
    assert.equal(first.status, 200);
    assert.equal(first.body.length, big.length);
    assert.ok(first.body.every((b) => b === 120));
    await new Promise((r) => setTimeout(r, 20)); // the server has closed it by now
    const second = await client.request(req); // sent again on a new connection (the server's second)
    assert.deepEqual([second.status, dec.decode(second.body)], [200, "ok"]);
    const third = await client.request(req); // "Connection: close" made the client open the third
    assert.deepEqual([third.status, third.body.length], [404, 0]);
  } finally {
    client.close();
    await server.close();
  }
});

Deno.test("Http1Connection: a connection closed inside an answer, or a bad status line, is an error", async () => {
  const server = rawServer(async (conn, index) => {
    const pending = { bytes: new Uint8Array() };
    if ((await readRequest(conn, pending)) === null) return;
    if (index === 0) await conn.write(enc.encode("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"));
    else if (index === 1) await conn.write(enc.encode("HTTP/1.1 200 OK\r\nContent-"));
    else await conn.write(enc.encode("SMTP ready\r\n\r\n"));
  });
  const req = buildRequest(new URL(`http://127.0.0.1:${server.port}/`));
  try {
    for (const pattern of [/closed inside its body/, /closed inside its header/, /bad status line/]) {
      const client = new Http1Connection("127.0.0.1", server.port);
      await assert.rejects(client.request(req), pattern);
      client.close();
    }
  } finally {
    await server.close();
  }
});

Deno.test("Http1Connection against Deno.serve: bodies arrive whole, and answers match fetch's", async () => {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const text = await req.text();
    if (req.method === "GET") {
      // A streamed answer: chunked transfer coding.
      const body = new ReadableStream({
        start(c) {
          c.enqueue(enc.encode("str"));
          c.enqueue(enc.encode("eamed"));
          c.close();
        },
      });
      return new Response(body);
    }
    return Response.json({ length: text.length, last: text.at(-1) }, { status: 201 });
  });
  const url = new URL(`http://127.0.0.1:${server.addr.port}/p`);
  const client = new Http1Connection(url.hostname, Number(url.port));
  try {
    const body = JSON.stringify({ frames: Array.from({ length: 3000 }, (_, i) => i) });
    const res = await client.request(buildRequest(url, { headers: { "content-type": "application/json" }, body }));
    const viaFetch = await fetch(url, { method: "POST", body });
    assert.equal(res.status, viaFetch.status);
    assert.deepEqual(JSON.parse(dec.decode(res.body)), await viaFetch.json());
    const streamed = await client.request(buildRequest(url));
    assert.equal(dec.decode(streamed.body), "streamed");
  } finally {
    client.close();
    await server.shutdown();
  }
});

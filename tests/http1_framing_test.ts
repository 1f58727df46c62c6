/** The HTTP/1.1 framing the connection guard follows (serve/http1_framing.ts), on bytes made up here. */
import assert from "node:assert/strict";
import fc from "fast-check";
import { Http1Framer } from "../serve/http1_framing.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const PEER = enc.encode("x-peer: 10.0.0.1 4242\r\n");

function requests(maxHeadBytes = 1024): Http1Framer {
  return new Http1Framer({ side: "request", maxHeadBytes, extraFields: { names: ["x-peer"], lines: PEER } });
}

/** Feed `text` in pieces cut at `cuts`; returns what is passed on, as text. */
function feed(framer: Http1Framer, text: string, cuts: number[] = []): string {
  const bytes = enc.encode(text);
  const bounds = [0, ...cuts.filter((c) => c > 0 && c < bytes.length).sort((a, b) => a - b), bytes.length];
  let out = "";
  for (let k = 0; k + 1 < bounds.length; k++) {
    for (const part of framer.push(bytes.slice(bounds[k], bounds[k + 1]))) out += dec.decode(part);
  }
  return out;
}

const STREAM = "POST /a HTTP/1.1\r\nHost: x\r\nX-Peer: forged\r\nContent-Length: 5\r\n\r\nhello" +
  "POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\n" +
  "Trailer-One: t\r\n\r\n" +
  "\r\nGET /c HTTP/1.0\nHost: x\n\n";
const EXPECTED = "POST /a HTTP/1.1\r\nx-peer: 10.0.0.1 4242\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" +
  "POST /b HTTP/1.1\r\nx-peer: 10.0.0.1 4242\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n10\r\n" +
  "0123456789abcdef\r\n0\r\nTrailer-One: t\r\n\r\n" +
  "GET /c HTTP/1.0\nx-peer: 10.0.0.1 4242\r\nHost: x\n\n";

Deno.test("Http1Framer passes three requests on whole, with the peer field in place of a forged one", () => {
  const framer = requests();
  assert.equal(feed(framer, STREAM), EXPECTED);
  assert.equal(framer.headsCompleted, 3);
  assert.equal(framer.messagesCompleted, 3);
  assert.equal(framer.phase, "idle");
  assert.deepEqual(framer.methods, ["POST", "POST", "GET"]);
  assert.equal(framer.rejection, null);
});

Deno.test("Http1Framer gives the same bytes and counts however the stream is cut", () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: STREAM.length - 1 }), { maxLength: 12 }), (cuts) => {
      const framer = requests();
      assert.equal(feed(framer, STREAM, cuts), EXPECTED);
      assert.equal(framer.messagesCompleted, 3);
      assert.equal(framer.headsStarted, 3);
    }),
    { seed: 11, numRuns: 300 },
  );
  // Byte by byte.
  const framer = requests();
  assert.equal(feed(framer, STREAM, [...Array(STREAM.length).keys()]), EXPECTED);
});

Deno.test("Http1Framer holds a head until its blank line and counts a head begun at its first byte", () => {
  const framer = requests();
  assert.deepEqual(framer.push(enc.encode("GET / HTTP/1.1\r\nHo")), []);
  assert.equal(framer.phase, "head");
  assert.equal(framer.headsStarted, 1);
  assert.equal(framer.headsCompleted, 0);
  assert.ok(framer.busy());
  const out = framer.push(enc.encode("st: x\r\n\r\nPOST"));
  assert.equal(out.map((b) => dec.decode(b)).join(""), "GET / HTTP/1.1\r\nx-peer: 10.0.0.1 4242\r\nHost: x\r\n\r\n");
  assert.equal(framer.headsCompleted, 1);
  assert.equal(framer.headsStarted, 2, "the next head began with its first byte");
  assert.equal(framer.phase, "head");
});

Deno.test("Http1Framer streams a large body without holding it", () => {
  const framer = requests();
  framer.push(enc.encode("PUT /big HTTP/1.1\r\nContent-Length: 3000000\r\n\r\n"));
  const piece = new Uint8Array(65536);
  let passed = 0;
  for (let sent = 0; sent < 3_000_000; sent += piece.length) {
    const out = framer.push(piece.subarray(0, Math.min(piece.length, 3_000_000 - sent)));
    assert.equal(out.length, 1);
    assert.equal(out[0].buffer, piece.buffer, "body bytes are views of the input, not copies");
    passed += out[0].length;
  }
  assert.equal(passed, 3_000_000);
  assert.equal(framer.messagesCompleted, 1);
  assert.equal(framer.phase, "idle");
});

const REJECTED: [string, string, number, RegExp][] = [
  [
    "both framings",
    "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
    400,
    /both Transfer-Encoding and Content-Length/,
  ],
  ["a bad Content-Length", "POST / HTTP/1.1\r\nContent-Length: 3x\r\n\r\n", 400, /invalid Content-Length/],
  ["conflicting lengths", "POST / HTTP/1.1\r\nContent-Length: 3, 4\r\n\r\n", 400, /conflicting Content-Length/],
  [
    "a coding not ending in chunked",
    "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
    400,
    /does not end in chunked/,
  ],
  ["obs-fold", "GET / HTTP/1.1\r\nX-A: 1\r\n  2\r\n\r\n", 400, /obs-fold/],
  ["a bare CR", "GET / HTTP/1.1\r\nX-A: 1\r2\r\n\r\n", 400, /bare CR/],
  ["a space before the colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400, /malformed header line/],
  ["a malformed request line", "GET /\r\n\r\n", 400, /malformed request line/],
  ["HTTP/2 prior knowledge", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, /HTTP\/2/],
  ["a head over the limit", `GET / HTTP/1.1\r\nX-A: ${"a".repeat(2000)}\r\n\r\n`, 431, /head over the limit/],
  [
    "a malformed chunk size",
    "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    400,
    /malformed chunk size/,
  ],
  [
    "chunk data past its size",
    "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
    400,
    /chunk data longer than its size/,
  ],
  ["endless blank lines", "\r\n".repeat(600), 431, /blank lines/],
];

for (const [what, text, status, message] of REJECTED) {
  Deno.test(`Http1Framer rejects ${what} (${status}) and reads nothing more`, () => {
    for (const cuts of [[], [...Array(text.length).keys()]]) {
      const framer = requests();
      feed(framer, text, cuts);
      assert.equal(framer.rejection?.status, status);
      assert.match(framer.rejection!.message, /^Cannot read request: /);
      assert.match(framer.rejection!.message, message);
      assert.equal(framer.phase, "failed");
      assert.deepEqual(framer.push(enc.encode("GET / HTTP/1.1\r\n\r\n")), []);
    }
  });
}

Deno.test("Http1Framer passes on the request before a rejected one", () => {
  const framer = requests();
  const out = feed(framer, "GET /ok HTTP/1.1\r\n\r\nGET /bad\r\n\r\n");
  assert.equal(out, "GET /ok HTTP/1.1\r\nx-peer: 10.0.0.1 4242\r\n\r\n");
  assert.equal(framer.messagesCompleted, 1);
  assert.equal(framer.rejection?.status, 400);
});

Deno.test("Http1Framer follows responses: HEAD, 1xx, 204, chunked, length; 101 and close-delimited go opaque", () => {
  const res = new Http1Framer({ side: "response" });
  for (const m of ["HEAD", "POST", "GET", "GET", "GET"]) res.expect(m);
  feed(
    res,
    "HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n" + // HEAD: no body whatever the length says
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok" +
      "HTTP/1.1 204 No Content\r\n\r\n" +
      "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n" +
      "HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nab",
    [7, 30, 31, 90],
  );
  assert.equal(res.headsCompleted, 5, "100 Continue is not a final answer");
  assert.equal(res.messagesCompleted, 4);
  assert.equal(res.phase, "length");
  feed(res, "c");
  assert.equal(res.messagesCompleted, 5);
  assert.equal(res.phase, "idle");

  const upgraded = new Http1Framer({ side: "response" });
  upgraded.expect("GET");
  feed(upgraded, "HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\nanything");
  assert.equal(upgraded.phase, "opaque");
  const unframed = new Http1Framer({ side: "response" });
  unframed.expect("GET");
  feed(unframed, "HTTP/1.1 200 OK\r\n\r\nuntil the end");
  assert.equal(unframed.phase, "opaque");
  assert.equal(unframed.messagesCompleted, 0);
});

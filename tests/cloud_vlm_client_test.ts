/**
 * The OpenAI-compatible VLM client against loopback servers that answer, or fail, in each way a chat server can:
 * the request it sends, probabilities from `top_logprobs` (and their absence), malformed replies, an answer outside
 * the label set, timeouts, oversized replies, HTTP errors; the API key never in an error or a log line.
 */
import assert from "node:assert/strict";
import { CallError } from "../cloud/bounded_call.ts";
import { createVlmClient, type VlmClientOptions } from "../cloud/vlm_client.ts";
import type {
  ChatCompletionRequest,
  ChatImagePart,
  ChatTextPart,
  JsonSchemaFormat,
  TokenLogprob,
} from "../cloud/vlm_protocol.ts";
import { keyProbabilities, sampleFrames, tokenKey } from "../cloud/vlm_protocol.ts";

const LABELS = ["walk", "run", "jump_high"];
const KEY = "sk-test-0123456789-never-shown";
/** Deadline + margin: generous, since this checks behaviour, not speed, on a shared machine. */
const MARGIN_MS = 700;
/** Ten 1-byte "frames": the client does not decode them, it only encodes and samples. */
const CLIP = { kind: "jpeg" as const, images: Array.from({ length: 10 }, (_, i) => new Uint8Array([i])) };

/** A loopback chat server: `answer` builds each reply; every request is kept. Closed by the test. */
function chatServer(answer: (body: ChatCompletionRequest, req: Request) => Response | Promise<Response>) {
  const seen: { body: ChatCompletionRequest; auth: string | null; path: string }[] = [];
  const stalled: (() => void)[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const path = new URL(req.url).pathname;
    if (req.method === "GET") return Response.json({ object: "list", data: [{ id: "vlm-1", object: "model" }] });
    const body = await req.json() as ChatCompletionRequest;
    seen.push({ body, auth: req.headers.get("authorization"), path });
    return answer(body, req);
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    seen,
    stall: () => new Promise<void>((resolve) => stalled.push(resolve)),
    close: () => {
      stalled.forEach((r) => r());
      return server.shutdown();
    },
  };
}

/** A reply whose content is `content`, with `tokens` as its log probabilities (none when null). */
function reply(content: unknown, tokens: TokenLogprob[] | null = null) {
  return Response.json({
    id: "chatcmpl-1",
    object: "chat.completion",
    created: 1,
    model: "vlm-1",
    choices: [{
      index: 0,
      message: { role: "assistant", content },
      logprobs: tokens ? { content: tokens } : null,
      finish_reason: "stop",
    }],
  });
}

/** `{"answer":"B"}` as tokens: B's candidates spread over the keys and a token that is no key. */
const JSON_TOKENS: TokenLogprob[] = [
  { token: '{"', logprob: 0 },
  { token: "answer", logprob: 0 },
  { token: '":"', logprob: 0 },
  {
    token: "B",
    logprob: Math.log(0.5),
    top_logprobs: [
      { token: "B", logprob: Math.log(0.5) },
      { token: " A", logprob: Math.log(0.2) },
      { token: "xyz", logprob: Math.log(0.2) },
      { token: "C", logprob: Math.log(0.1) },
    ],
  },
  { token: '"}', logprob: 0 },
];

function client(url: string, extra: Partial<VlmClientOptions> = {}) {
  return createVlmClient({
    baseUrl: url,
    model: "vlm-1",
    labels: LABELS,
    timeoutMs: 2000,
    frames: 4,
    apiKey: KEY,
    ...extra,
  });
}

async function expectReason(promise: Promise<unknown>, reason: string, code: string, message?: RegExp) {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof CallError, String(e));
    assert.equal(e.reason, reason);
    assert.equal(e.code, code);
    if (message) assert.match(e.message, message);
    assert.ok(!e.message.includes(KEY), "the key is never in a message");
    return true;
  });
}

Deno.test("vlm client: sends sampled frames as data URLs, the keyed prompt, the JSON schema and logprobs", async () => {
  const s = chatServer(() => reply('{"answer":"B"}', JSON_TOKENS));
  try {
    const r = await client(s.url).classify(CLIP);
    const { body, auth, path } = s.seen[0];
    assert.equal(path, "/v1/chat/completions");
    assert.equal(auth, `Bearer ${KEY}`);
    assert.equal(body.model, "vlm-1");
    assert.equal(body.temperature, 0);
    assert.equal(body.logprobs, true);
    assert.equal(body.top_logprobs, 3);
    assert.equal(body.structured_outputs, undefined);
    const format = body.response_format as JsonSchemaFormat;
    assert.equal(format.type, "json_schema");
    assert.deepEqual(format.json_schema.schema.properties, { answer: { type: "string", enum: ["A", "B", "C"] } });
    assert.deepEqual(format.json_schema.schema.required, ["answer"]);
    assert.equal(format.json_schema.schema.additionalProperties, false);
    const parts = body.messages[0].content as (ChatImagePart | ChatTextPart)[];
    const images = parts.filter((p): p is ChatImagePart => p.type === "image_url").map((p) => p.image_url.url);
    // 4 of 10 frames, evenly: 0, 3, 6, 9 (each frame's one byte is its index).
    assert.deepEqual(images, ["AA==", "Aw==", "Bg==", "CQ=="].map((b) => `data:image/jpeg;base64,${b}`));
    const text = (parts.at(-1) as ChatTextPart).text;
    assert.match(text, /^These 4 frames/);
    assert.match(text, /\nA: walk\nB: run\nC: jump high$/);
    // B 0.5, A 0.2, C 0.1 renormalised over the keys; "xyz" is no key.
    assert.equal(r.key, "B");
    assert.equal(r.label, "run");
    assert.equal(r.hasProbabilities, true);
    assert.deepEqual(Array.from(r.probs, (p) => Number(p.toFixed(6))), [0.25, 0.625, 0.125]);
    assert.equal(r.modelVersion, "vlm-1");
  } finally {
    await s.close();
  }
});

Deno.test("vlm client: without logprobs from the server the answer is one-hot and flagged, never a made-up probability", async () => {
  const s = chatServer(() => reply('{"answer":"C"}'));
  try {
    const r = await client(s.url).classify(CLIP);
    assert.equal(r.label, "jump_high");
    assert.equal(r.hasProbabilities, false);
    assert.deepEqual(Array.from(r.probs), [0, 0, 1]);
    // Asked not to request them: none asked, same answer.
    const off = await client(s.url, { logprobs: false }).classify(CLIP);
    assert.equal(s.seen[1].body.logprobs, undefined);
    assert.equal(s.seen[1].body.top_logprobs, undefined);
    assert.equal(off.hasProbabilities, false);
  } finally {
    await s.close();
  }
});

Deno.test("vlm client: vLLM's structured_outputs choice: the bare key is the answer", async () => {
  const s = chatServer(() =>
    reply("A", [{
      token: "A",
      logprob: -0.1,
      top_logprobs: [{ token: "A", logprob: -0.1 }, { token: "B", logprob: -3 }],
    }])
  );
  try {
    const r = await client(s.url, { constraint: "structured_outputs" }).classify(CLIP);
    const body = s.seen[0].body;
    assert.deepEqual(body.structured_outputs, { choice: ["A", "B", "C"] });
    assert.equal(body.response_format, undefined);
    assert.equal(body.max_tokens, 4);
    assert.equal(r.label, "walk");
    const pa = Math.exp(-0.1), pb = Math.exp(-3);
    assert.ok(Math.abs(r.probs[0] - pa / (pa + pb)) < 1e-12);
    assert.equal(r.probs[2], 0);
  } finally {
    await s.close();
  }
});

Deno.test("vlm client: an answer outside the label set is answer_not_in_labels (OFFLOAD_FAILED)", async () => {
  const s = chatServer((b) => reply(b.structured_outputs ? "walk" : '{"answer":"Z"}'));
  try {
    await expectReason(client(s.url).classify(CLIP), "answer_not_in_labels", "OFFLOAD_FAILED", /"Z" is none of/);
    await expectReason(
      client(s.url, { constraint: "structured_outputs" }).classify(CLIP),
      "answer_not_in_labels",
      "OFFLOAD_FAILED",
    );
  } finally {
    await s.close();
  }
});

Deno.test("vlm client: malformed replies are malformed_reply (OFFLOAD_FAILED)", async () => {
  const cases: [string, () => Response][] = [
    ["not JSON", () => new Response("<html>", { headers: { "content-type": "text/html" } })],
    ["no choices", () => Response.json({ id: "x", object: "chat.completion", choices: [] })],
    ["null content", () => reply(null)],
    ["text where JSON was constrained", () => reply("B")],
    ["an answer that is not a string", () => reply('{"answer":2}')],
    ["a positive log probability", () => reply('{"answer":"B"}', [{ token: "B", logprob: 0.5 }])],
    [
      "candidates without logprob",
      () => reply('{"answer":"B"}', [{ token: "B", logprob: -1, top_logprobs: [{ token: "A" } as TokenLogprob] }]),
    ],
  ];
  for (const [what, make] of cases) {
    const s = chatServer(make);
    try {
      await expectReason(client(s.url).classify(CLIP), "malformed_reply", "OFFLOAD_FAILED", /^Cannot classify/);
    } catch (err) {
      throw new Error(`${what}: ${(err as Error).message}`);
    } finally {
      await s.close();
    }
  }
});

Deno.test("vlm client: an HTTP error is http_error and quotes the server's OpenAI-style message", async () => {
  const s = chatServer(() =>
    Response.json({ error: { message: "top_logprobs must be <= 5", type: "BadRequestError", code: 400 } }, {
      status: 400,
    })
  );
  try {
    await expectReason(
      client(s.url).classify(CLIP),
      "http_error",
      "OFFLOAD_FAILED",
      /the cloud answered 400: top_logprobs must be <= 5/,
    );
  } finally {
    await s.close();
  }
});

Deno.test("vlm client: a server slower than the deadline, or stalling mid-body, is a timeout within the deadline", async () => {
  const slow = chatServer(async (_b) => {
    await slow.stall();
    return reply('{"answer":"A"}');
  });
  const midBody = chatServer(() => {
    const body = new ReadableStream({
      async start(ctrl) {
        ctrl.enqueue(new TextEncoder().encode('{"id":"x","choices":['));
        await midBody.stall();
        ctrl.close();
      },
    });
    return new Response(body, { headers: { "content-type": "application/json" } });
  });
  try {
    for (const s of [slow, midBody]) {
      const t0 = performance.now();
      await expectReason(client(s.url, { timeoutMs: 300 }).classify(CLIP), "timeout", "OFFLOAD_TIMEOUT");
      assert.ok(performance.now() - t0 < 300 + MARGIN_MS, `returned after ${performance.now() - t0} ms`);
    }
  } finally {
    await slow.close();
    await midBody.close();
  }
});

Deno.test("vlm client: a reply larger than maxTokens tokens with their candidates can be is refused while it streams", async () => {
  // Bound: 16 tokens x (3 + 1) candidates x 512 bytes + 64 KiB = 98,304 bytes.
  const s = chatServer(() => {
    const chunk = new TextEncoder().encode(" ".repeat(16 * 1024));
    let sent = 0;
    return new Response(
      new ReadableStream({
        pull(ctrl) {
          if (sent++ > 64) return ctrl.close();
          ctrl.enqueue(chunk);
        },
      }),
      { headers: { "content-type": "application/json" } },
    );
  });
  try {
    await expectReason(client(s.url).classify(CLIP), "too_large", "OFFLOAD_FAILED", /larger than 98304 bytes/);
  } finally {
    await s.close();
  }
});

Deno.test("vlm client: the API key is sent, and never in an error, a log line or the request it shows", async () => {
  const lines: string[] = [];
  const original = { log: console.log, error: console.error, warn: console.warn };
  console.log = console.error = console.warn = (...args: unknown[]) => void lines.push(args.map(String).join(" "));
  const s = chatServer((_b, req) =>
    Response.json({ error: `rejected ${req.headers.get("authorization")?.length} chars` }, { status: 401 })
  );
  try {
    const c = client(s.url);
    await expectReason(c.classify(CLIP), "http_error", "OFFLOAD_FAILED", /answered 401/);
    assert.ok(!JSON.stringify(c.request(CLIP)).includes(KEY));
    const refused = `http://127.0.0.1:1`;
    await expectReason(client(refused).classify(CLIP), "unreachable", "OFFLOAD_FAILED");
    assert.throws(
      () => client(`ftp://user:${KEY}@example.com/`),
      (e: unknown) =>
        e instanceof TypeError && !e.message.includes(KEY) && /ftp:\/\/\*\*\*@example.com/.test(e.message),
    );
  } finally {
    Object.assign(console, original);
    await s.close();
  }
  assert.equal(s.seen[0].auth, `Bearer ${KEY}`);
  assert.ok(lines.every((l) => !l.includes(KEY)), "no log line holds the key");
});

Deno.test("vlm client: ready() is true only when /v1/models lists the model", async () => {
  const s = chatServer(() => reply("{}"));
  try {
    assert.equal(await client(s.url).ready(), true);
    assert.equal(await client(s.url, { model: "other" }).ready(), false);
    assert.equal(await client("http://127.0.0.1:1").ready(), false);
  } finally {
    await s.close();
  }
});

Deno.test("vlm protocol: keys from tokens, renormalisation over the keys, even frame sampling", () => {
  assert.equal(tokenKey(' "C"}'), "C");
  assert.equal(tokenKey('":"'), "");
  const p = keyProbabilities({
    token: "A",
    logprob: Math.log(0.3),
    top_logprobs: [{ token: " A", logprob: Math.log(0.3) }],
  }, [
    "A",
    "B",
  ]);
  // "A" and " A" are two tokens spelling one key: their probabilities add up.
  assert.deepEqual(Array.from(p!), [1, 0]);
  assert.equal(keyProbabilities({ token: "Z", logprob: -1 }, ["A", "B"]), null);
  assert.deepEqual(sampleFrames(10, 4), [0, 3, 6, 9]);
  assert.deepEqual(sampleFrames(3, 8), [0, 1, 2]);
  assert.deepEqual(sampleFrames(9, 1), [4]);
  assert.throws(
    () => createVlmClient({ baseUrl: "http://x", model: "m", labels: LABELS, timeoutMs: 1, keys: ["A", "A", "B"] }),
    {
      message: "Cannot use the label keys: they must be distinct",
    },
  );
  assert.throws(
    () => createVlmClient({ baseUrl: "http://x", model: "m", labels: LABELS, timeoutMs: 1, topLogprobs: 21 }),
    RangeError,
  );
});

/**
 * The reference VLM server: requests checked as OpenAI-compatible servers check them (status, error type, the
 * member at fault), the answer and its log probabilities built from the model's probabilities over the offered
 * choices; and the real stand-in (pose + the cloud classifier) end to end on real frames, answering the client.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import encodePng from "@jsquash/png/encode.js";
import { loadVlmServerConfig } from "../config.ts";
import { createVlmClient } from "../cloud/vlm_client.ts";
import { answerFormat, DEFAULT_PROMPT, renderPrompt } from "../cloud/vlm_protocol.ts";
import {
  choiceLabels,
  createVlmReferenceApp,
  type FramesModel,
  startVlmReferenceServer,
} from "../cloud/vlm_reference_server.ts";
import { framesMissing, readVtestFrames } from "./fixtures/opencv_frames.ts";

const LABELS = ["walk", "run", "jump_high"];
const KEYS = ["A", "B", "C"];
const PROMPT = renderPrompt(DEFAULT_PROMPT, { labels: LABELS, keys: KEYS, frames: 2 });
const png = async (w: number, h: number) =>
  new Uint8Array(await encodePng(new ImageData(new Uint8ClampedArray(w * h * 4).fill(90), w, h)));
const PNG = await png(32, 24);
const dataUrl = (bytes: Uint8Array, kind = "png") =>
  `data:image/${kind};base64,${Buffer.from(bytes).toString("base64")}`;

/** The model behind the app in the unit tests: fixed probabilities over the three labels, its calls counted. */
function fixedModel(probs: number[]): FramesModel & { calls: number } {
  const model = {
    labels: LABELS,
    version: "fixed-1",
    calls: 0,
    classify: () => {
      model.calls++;
      return Promise.resolve(Float64Array.from(probs));
    },
  };
  return model;
}

function body(extra: Record<string, unknown> = {}, images = [dataUrl(PNG), dataUrl(PNG)]) {
  return {
    model: "ref-vlm",
    messages: [{
      role: "user",
      content: [...images.map((url) => ({ type: "image_url", image_url: { url } })), { type: "text", text: PROMPT }],
    }],
    temperature: 0,
    logprobs: true,
    top_logprobs: 3,
    response_format: answerFormat(KEYS),
    ...extra,
  };
}

async function post(app: ReturnType<typeof createVlmReferenceApp>, payload: unknown) {
  const res = await app.request("/v1/chat/completions", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: typeof payload === "string" ? payload : JSON.stringify(payload),
  });
  return { status: res.status, json: await res.json() };
}

Deno.test("vlm reference: answers the most probable offered choice, with top_logprobs renormalised over the choices", async () => {
  const app = createVlmReferenceApp({ model: fixedModel([0.2, 0.5, 0.3]), modelName: "ref-vlm" });
  const r = await post(app, body());
  assert.equal(r.status, 200, JSON.stringify(r.json));
  const choice = r.json.choices[0];
  assert.equal(r.json.object, "chat.completion");
  assert.equal(r.json.model, "ref-vlm");
  assert.equal(choice.message.content, '{"answer":"B"}');
  assert.equal(choice.finish_reason, "stop");
  const tokens = choice.logprobs.content;
  assert.deepEqual(tokens.map((t: { token: string }) => t.token), ['{"', "answer", '":"', "B", '"}']);
  const answer = tokens[3];
  assert.deepEqual(
    answer.top_logprobs.map((
      t: { token: string; logprob: number },
    ) => [t.token, Number(Math.exp(t.logprob).toFixed(9))]),
    [["B", 0.5], ["C", 0.3], ["A", 0.2]],
  );
  // Only two of three labels offered: renormalised over those two; the bare form under structured_outputs.
  const two = await post(
    app,
    body({
      response_format: undefined,
      structured_outputs: { choice: ["A", "C"] },
      top_logprobs: 1,
    }),
  );
  assert.equal(two.json.choices[0].message.content, "C");
  const only = two.json.choices[0].logprobs.content[0];
  assert.equal(only.top_logprobs.length, 1);
  assert.ok(Math.abs(Math.exp(only.logprob) - 0.3 / 0.5) < 1e-12);
  // No logprobs asked: none given; max_tokens too short: cut, finish_reason length.
  const plain = await post(app, body({ logprobs: false, top_logprobs: undefined, max_tokens: 2 }));
  assert.equal(plain.json.choices[0].logprobs, null);
  assert.equal(plain.json.choices[0].message.content, '{"answer');
  assert.equal(plain.json.choices[0].finish_reason, "length");
});

Deno.test("vlm reference: refuses what vLLM and llama.cpp refuse, with the status, type and member at fault", async () => {
  const model = fixedModel([1, 0, 0]);
  const app = createVlmReferenceApp({ model, modelName: "ref-vlm" });
  const big = await png(64, 48);
  const cases: [string, unknown, number, string | null, RegExp][] = [
    ["not JSON", "{", 400, null, /not valid JSON/],
    ["no model", body({ model: undefined }), 400, "model", /model must be a non-empty string/],
    ["another model", body({ model: "gpt-x" }), 404, "model", /The model `gpt-x` does not exist/],
    ["no messages", body({ messages: [] }), 400, "messages", /non-empty array/],
    ["a bad role", body({ messages: [{ role: "robot", content: "hi" }] }), 400, "messages", /role must be/],
    [
      "an audio part",
      body({ messages: [{ role: "user", content: [{ type: "input_audio", input_audio: {} }] }] }),
      400,
      "messages",
      /got "input_audio"/,
    ],
    [
      "an image in a system message",
      body({ messages: [{ role: "system", content: [{ type: "image_url", image_url: { url: dataUrl(PNG) } }] }] }),
      400,
      "messages",
      /user messages only/,
    ],
    ["an http image URL", body({}, ["https://example.com/a.jpg"]), 400, "messages", /fetches no URLs/],
    [
      "a gif data URL",
      body({}, ["data:image/gif;base64,R0lGOD"]),
      400,
      "messages",
      /data:image\/jpeg or data:image\/png/,
    ],
    ["no images", body({}, []), 400, "messages", /at least one image_url/],
    ["bytes that are no image", body({}, [dataUrl(new TextEncoder().encode("hello"))]), 400, "messages", /image 0/],
    ["frames of two sizes", body({}, [dataUrl(PNG), dataUrl(big)]), 400, "messages", /one kind and size/],
    ["streaming", body({ stream: true }), 400, "stream", /stream is not supported/],
    ["n = 2", body({ n: 2 }), 400, "n", /n must be 1/],
    ["temperature 3", body({ temperature: 3 }), 400, "temperature", /\[0, 2\]/],
    ["top_logprobs 21", body({ top_logprobs: 21 }), 400, "top_logprobs", /integer in \[0, 20\]/],
    ["top_logprobs without logprobs", body({ logprobs: undefined }), 400, "top_logprobs", /logprobs must be true/],
    ["max_tokens 0", body({ max_tokens: 0 }), 400, "max_tokens", /positive integer/],
    [
      "two constraints",
      body({ structured_outputs: { choice: ["A"] } }),
      400,
      "structured_outputs",
      /only one kind of structured output/,
    ],
    [
      "a regex constraint",
      body({ response_format: undefined, structured_outputs: { regex: "[AB]" } }),
      400,
      "structured_outputs",
      /choice alone/,
    ],
    [
      "an empty choice list",
      body({ response_format: undefined, structured_outputs: { choice: [] } }),
      400,
      "structured_outputs",
      /non-empty array/,
    ],
    ["no constraint", body({ response_format: { type: "text" } }), 400, "response_format", /constrained choices only/],
    [
      "a schema without an enum",
      body({ response_format: { type: "json_schema", json_schema: { name: "x", schema: { type: "object" } } } }),
      400,
      "response_format",
      /constrained choices only/,
    ],
    [
      "a choice the prompt does not name",
      body({ response_format: undefined, structured_outputs: { choice: ["A", "D"] } }),
      400,
      null,
      /names the choice "D" on no/,
    ],
  ];
  for (const [what, payload, status, param, message] of cases) {
    const r = await post(app, payload);
    assert.equal(r.status, status, `${what}: ${JSON.stringify(r.json)}`);
    assert.equal(r.json.error.code, status, what);
    assert.equal(r.json.error.type, status === 404 ? "NotFoundError" : "BadRequestError", what);
    assert.equal(r.json.error.param, param, what);
    assert.match(r.json.error.message, message, what);
  }
  assert.equal(model.calls, 0, "no refused request reaches the model");
  const models = await (await app.request("/v1/models")).json();
  assert.deepEqual(models.data.map((m: { id: string }) => m.id), ["ref-vlm"]);
  const missing = await app.request("/v1/completions", { method: "POST" });
  assert.equal(missing.status, 404);
  assert.equal((await missing.json()).error.type, "NotFoundError");
});

Deno.test("vlm reference: choice labels come from the prompt's KEY: label lines, underscores read as spaces", () => {
  assert.deepEqual(choiceLabels("Options:\nA: walk\n B) jump high\nC: run", ["C", "B", "A"], LABELS), [1, 2, 0]);
  assert.throws(() => choiceLabels("A: swim", ["A"], LABELS), /"swim", which is none of the model's labels/);
});

Deno.test("vlm reference: refuses to listen beyond loopback (it has no authentication)", async () => {
  await assert.rejects(
    startVlmReferenceServer(loadVlmServerConfig({ VLM_SERVER_HOST: "0.0.0.0", VLM_SERVER_PORT: "0" })),
    /listens on loopback only/,
  );
});

if (framesMissing) console.error(`cloud_vlm_reference_server_test: the real-frames test is ignored: ${framesMissing}`);

Deno.test({
  name:
    "vlm reference: the real stand-in (pose + cloud classifier) answers the client deterministically on real frames",
  ignore: framesMissing !== "",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const server = await startVlmReferenceServer(loadVlmServerConfig({ VLM_SERVER_PORT: "0" }));
    try {
      const labels = JSON.parse(await Deno.readTextFile(new URL("../wasm-models/manifest.json", import.meta.url)))
        .cloud.labels as string[];
      const images = await readVtestFrames(16);
      const client = createVlmClient({
        baseUrl: server.url,
        model: server.modelName,
        labels,
        timeoutMs: 60_000,
        frames: 4,
      });
      assert.equal(await client.ready(), true);
      const a = await client.classify({ kind: "jpeg", images });
      const b = await client.classify({ kind: "jpeg", images });
      assert.equal(a.hasProbabilities, true);
      assert.equal(a.label, b.label);
      assert.deepEqual(Array.from(a.probs), Array.from(b.probs));
      // The answer is the argmax of the probabilities it reports, which cover every label (15 <= 20 candidates).
      assert.equal(a.label, labels[a.probs.indexOf(Math.max(...a.probs))]);
      assert.ok(Math.abs(a.probs.reduce((s, p) => s + p, 0) - 1) < 1e-9);
      assert.ok(a.probs.every((p) => p > 0));
    } finally {
      await server.shutdown();
    }
  },
});

/**
 * The VLM client against a real OpenAI-compatible server (vLLM, llama.cpp's server with `--mmproj`, Ollama), when
 * one is configured: `VLM_URL` (base URL without `/v1`), `VLM_MODEL` (default `dmd-reference-vlm`), `VLM_API_KEY`
 * (optional), `VLM_CONSTRAINT` (`json_schema`, default, or `structured_outputs`), `VLM_LOGPROBS` (`false` for a
 * server that refuses them). Ignored, with the reason, otherwise. Uses real frames (deno task testdata).
 */
import assert from "node:assert/strict";
import { createVlmClient } from "../cloud/vlm_client.ts";
import { framesMissing, readVtestFrames } from "./fixtures/opencv_frames.ts";

const url = Deno.env.get("VLM_URL");
const reason = url ? framesMissing : "VLM_URL is not set";
if (reason) console.error(`vlm_live_test: ignored: ${reason}`);

Deno.test({
  name: `vlm live: a real OpenAI-compatible server answers a clip within the label set${
    reason ? ` (ignored: ${reason})` : ""
  }`,
  ignore: reason !== "",
  async fn() {
    const labels = JSON.parse(await Deno.readTextFile(new URL("../wasm-models/manifest.json", import.meta.url)))
      .cloud.labels as string[];
    const constraint = Deno.env.get("VLM_CONSTRAINT") === "structured_outputs" ? "structured_outputs" : "json_schema";
    const client = createVlmClient({
      baseUrl: url!,
      model: Deno.env.get("VLM_MODEL") ?? "dmd-reference-vlm",
      labels,
      timeoutMs: 120_000,
      frames: 4,
      constraint,
      logprobs: Deno.env.get("VLM_LOGPROBS") !== "false",
      apiKey: Deno.env.get("VLM_API_KEY") || undefined,
    });
    assert.equal(await client.ready(), true, "the server lists the model at /v1/models");
    const images = await readVtestFrames(8);
    const r = await client.classify({ kind: "jpeg", images });
    assert.ok(labels.includes(r.label));
    assert.equal(r.probs.length, labels.length);
    assert.ok(Math.abs(r.probs.reduce((s, p) => s + p, 0) - 1) < 1e-9);
    if (!r.hasProbabilities) assert.equal(r.probs[labels.indexOf(r.label)], 1);
    console.error(
      `vlm_live_test: ${r.label} (${r.hasProbabilities ? "with" : "without"} probabilities), ${Math.round(r.ms)} ms`,
    );
  },
});

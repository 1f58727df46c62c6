/**
 * The HTTP floor for `deno task bench`: a bare `Deno.serve` on loopback that reads the request body, parses it as JSON
 * and answers a small JSON object. It does the least any JSON endpoint must do in this runtime, so the bench can set
 * the service's HTTP thread against it: what is Deno's own, what is the service's (routing, checks, the answer, the
 * decision log's hand-off, metrics, the connection guard's relay). Nothing in the service uses it.
 *
 * With `MODELS_DIR`, it is the floor of a service that runs the edge model: each POST's frames are read into one
 * float32 sequence (`flattenFrames`, as the service reads them) and classified by the project's own inference, a
 * worker pool of `WORKERS` workers (default 1; 0: on this thread, `workers/in_process.ts`), and the answer is the top
 * label. No routing, no request checks beyond that read, no decision log, no metrics, no connection guard, no cloud:
 * what any HTTP service on Deno's server and this pool must do at least, so its throughput and latency bound what the
 * service can reach on the same machine. A GET answers at once (its bodiless floor).
 *
 *     deno run --allow-net --allow-env scripts/http_floor.ts
 *     MODELS_DIR=wasm-models WORKERS=1 deno run -A scripts/http_floor.ts
 *     # prints {"msg":"http floor listening","url":"http://127.0.0.1:PORT"}; PORT picks the port (default: any free)
 *
 * @module
 */
import { AppError } from "../errors.ts";
import { flattenFrames } from "../sequence/preprocess.ts";
import type { EdgeInference } from "../workers/pool.ts";

const ANSWER = JSON.stringify({ label: "floor", confidence: 1, route: "edge" });
const JSON_HEADERS = { "content-type": "application/json" };

/** The edge model behind the floor, when `MODELS_DIR` names a model set. */
interface Model {
  inference: EdgeInference;
  labels: string[];
  joints: number;
  channels: number;
}

async function loadModel(dir: string): Promise<Model> {
  const workers = Number(Deno.env.get("WORKERS") ?? 1);
  if (!(Number.isInteger(workers) && workers >= 0)) throw new RangeError("Cannot start: WORKERS must be >= 0");
  const { loadModelSet } = await import("../workers/artefacts.ts");
  const { manifest, init } = await loadModelSet(dir, { warmupRuns: 3000 });
  const inference = workers === 0
    ? await (await import("../workers/in_process.ts")).createInProcessInference(init, { queueMax: 1024 })
    : await (await import("../workers/pool.ts")).createWorkerPool(init, { size: workers, queueMax: 1024 });
  return { inference, labels: manifest.edge.labels, joints: manifest.edge.joints, channels: manifest.edge.channels };
}

const modelsDir = Deno.env.get("MODELS_DIR");
const model = modelsDir ? await loadModel(modelsDir) : null;

/** Read the frames, run the edge model, answer the top label. */
async function classify(m: Model, parsed: { frames?: unknown }): Promise<Response> {
  const seq = flattenFrames(parsed.frames, { joints: m.joints, channels: m.channels, maxFrames: 100_000 });
  const { results } = await m.inference.classify([{ data: seq.data, length: seq.length }]);
  const probs = results[0].probs;
  let top = 0;
  for (let i = 1; i < probs.length; i++) if (probs[i] > probs[top]) top = i;
  return new Response(JSON.stringify({ label: m.labels[top], confidence: probs[top], route: "edge" }), {
    headers: JSON_HEADERS,
  });
}

const server = Deno.serve({
  hostname: "127.0.0.1",
  port: Number(Deno.env.get("PORT") ?? 0),
  onListen: ({ port }) => console.log(JSON.stringify({ msg: "http floor listening", url: `http://127.0.0.1:${port}` })),
}, async (req) => {
  if (req.method === "POST") {
    let parsed: { frames?: unknown };
    try {
      parsed = JSON.parse(await req.text());
    } catch {
      return Response.json({ code: "INVALID_INPUT", message: "Cannot parse request body: malformed JSON" }, {
        status: 400,
      });
    }
    if (model) {
      try {
        return await classify(model, parsed);
      } catch (err) {
        // The service's codes: OVERLOADED and INFERENCE_FAILED keep theirs; a sequence it cannot read is invalid input.
        const [code, status] = err instanceof AppError ? [err.code, err.status] : ["INVALID_INPUT", 400];
        return Response.json({ code, message: err instanceof Error ? err.message : String(err) }, { status });
      }
    }
  }
  return new Response(ANSWER, { headers: JSON_HEADERS });
});

Deno.addSignalListener("SIGTERM", () => server.shutdown());
await server.finished;
await model?.inference.close();

/** The span of time a model reads (sequence/window.ts): resampling to its rate, its most recent window, the minimum. */
import assert from "node:assert/strict";
import { AppError } from "../errors.ts";
import { resample } from "../sequence/preprocess.ts";
import { framesAtRate, framesNeededAt, minimumFrames, toModelTime } from "../sequence/window.ts";
import { createPrng } from "../switcher/prng.ts";

/** The default models: 32 frames at 30 fps. */
const DEFAULT = { windowFrames: 32, fps: 30 };

Deno.test("minimumFrames() is 80% of the window's span unless the model declares it, within 1..window", () => {
  assert.equal(minimumFrames(DEFAULT), 26);
  assert.equal(minimumFrames({ windowFrames: 4, fps: 10 }), 4);
  assert.equal(minimumFrames({ windowFrames: 1, fps: 10 }), 1);
  assert.equal(minimumFrames({ ...DEFAULT, minFrames: 32 }), 32);
  assert.equal(minimumFrames({ ...DEFAULT, minFrames: 1 }), 1);
  assert.equal(minimumFrames({ ...DEFAULT, minFrames: 99 }), 32);
});

Deno.test("framesNeededAt() is the fewest frames whose resampling reaches the minimum, at any rate", () => {
  for (const fps of [1, 7.5, 10, 24, 25, 29.97, 30, 45, 50, 60, 120, 240]) {
    for (const frames of [1, 2, 4, 26, 32]) {
      const t = framesNeededAt(frames, { fps, modelFps: 30 });
      const at = (n: number) => framesAtRate(n, { fromFps: fps, toFps: 30 });
      assert.ok(at(t) >= frames, `${t} frames at ${fps} fps reach ${frames}`);
      assert.ok(t === 1 || at(t - 1) < frames, `${t - 1} frames at ${fps} fps do not reach ${frames}`);
    }
  }
  assert.equal(framesNeededAt(26, { fps: 60, modelFps: 30 }), 50);
  assert.equal(framesNeededAt(26, { fps: 30, modelFps: 30 }), 26);
});

Deno.test("resample() with keepLast computes exactly the last frames of the whole resampling", () => {
  const rng = createPrng(5);
  for (const [inFrames, outFrames, keep] of [[40, 93, 32], [7, 3, 2], [32, 32, 10], [5, 1, 1], [1, 6, 4]]) {
    const data = Float32Array.from({ length: inFrames * 3 }, () => rng.normal());
    const all = resample(data, { inFrames, outFrames, pointSize: 3 });
    const last = resample(data, { inFrames, outFrames, pointSize: 3, keepLast: keep });
    assert.deepEqual(last, all.slice((outFrames - keep) * 3));
  }
});

Deno.test("toModelTime(): the model's rate, then its most recent window; a missing fps is the model's rate", () => {
  const ramp = (n: number) => Float32Array.from({ length: n }, (_, i) => i);
  // 64 frames at 30 fps: the last 32, untouched.
  const long = toModelTime(ramp(64), { inFrames: 64, fps: 30, pointSize: 1, model: DEFAULT });
  assert.deepEqual([long.length, long.fps, long.data[0], long.data[31]], [32, 30, 32, 63]);
  // 63 frames at 60 fps (the same 1.03 s as 32 at 30 fps): every other frame.
  const fast = toModelTime(ramp(63), { inFrames: 63, fps: 60, pointSize: 1, model: DEFAULT });
  assert.deepEqual([...fast.data], Array.from({ length: 32 }, (_, i) => 2 * i));
  // 28 frames at 30 fps: between the minimum and the window, given as they are (the workers stretch them).
  const short = toModelTime(ramp(28), { inFrames: 28, pointSize: 1, model: DEFAULT });
  assert.deepEqual([short.length, short.fps], [28, 30]);
});

Deno.test("toModelTime(): shorter than the model reads is SEQUENCE_TOO_SHORT (422), naming the minimum at the request's fps", () => {
  const data = new Float32Array(32);
  assert.throws(
    () => toModelTime(data, { inFrames: 32, fps: 60, pointSize: 1, model: DEFAULT }),
    (err: unknown) =>
      err instanceof AppError && err.code === "SEQUENCE_TOO_SHORT" && err.status === 422 &&
      err.message ===
        "Cannot classify: 32 frames at 60 fps span 0.517 s; the model reads at least 50 frames at 60 fps (26 at its " +
          "30 fps, 0.833 s)",
  );
  assert.equal(toModelTime(new Float32Array(50), { inFrames: 50, fps: 60, pointSize: 1, model: DEFAULT }).length, 26);
  assert.throws(() => toModelTime(new Float32Array(25), { inFrames: 25, pointSize: 1, model: DEFAULT }), /at least 26/);
});

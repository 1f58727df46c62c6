import assert from "node:assert/strict";
import { flattenFrames, resample } from "../sequence/preprocess.ts";

const limits = { joints: 2, channels: 3, maxFrames: 4 };
const frame = (v: number) => [[v, v, 1], [v, v, 1]];

Deno.test("flattenFrames() flattens T x J x C in order", () => {
  const { data, length } = flattenFrames([frame(1), frame(2)], limits);
  assert.equal(length, 2);
  assert.deepEqual(Array.from(data), [1, 1, 1, 1, 1, 1, 2, 2, 1, 2, 2, 1]);
});

Deno.test("flattenFrames() rejects bad shapes with the exact error", () => {
  const cases: [unknown, ErrorConstructor, string][] = [
    [[], RangeError, "Cannot read frames: expected at least 1 frame, got 0"],
    [
      [frame(0), frame(0), frame(0), frame(0), frame(0)],
      RangeError,
      "Cannot read frames: expected at most 4 frames, got 5",
    ],
    ["x", TypeError, "Cannot read frames: expected an array of frames"],
    [[[[1, 1, 1]]], TypeError, "Cannot read frames: expected 2 points in frame 0, got 1"],
    [[frame(0), [[1, 1], [1, 1, 1]]], TypeError, "Cannot read frames: expected 3 channels at frame 1 point 0, got 2"],
    [[[[1, "a", 1], [1, 1, 1]]], TypeError, "Cannot read frames: value at frame 0 point 0 channel 1 is not a number"],
    [
      [[[1, 1, Infinity], [1, 1, 1]]],
      RangeError,
      "Cannot read frames: value at frame 0 point 0 channel 2 is not finite",
    ],
    [[[[1, 1, NaN], [1, 1, 1]]], RangeError, "Cannot read frames: value at frame 0 point 0 channel 2 is not finite"],
    [[[[1, 1, 1e39], [1, 1, 1]]], RangeError, "Cannot read frames: value at frame 0 point 0 channel 2 is not finite"],
    [[[1, 2]], TypeError, "Cannot read frames: point 0 of frame 0 is not an array"],
  ];
  for (const [input, cls, message] of cases) {
    assert.throws(() => flattenFrames(input, limits), (e: Error) => e instanceof cls && e.message === message);
  }
});

Deno.test("resample() interpolates linearly over the whole sequence", () => {
  // 3 frames of one 1-channel point: 0, 10, 20 -> 5 frames: positions 0, 0.5, 1, 1.5, 2.
  const out = resample(new Float32Array([0, 10, 20]), { inFrames: 3, outFrames: 5, pointSize: 1 });
  assert.deepEqual(Array.from(out), [0, 5, 10, 15, 20]);
  // Down-sampling keeps the endpoints.
  const down = resample(new Float32Array([0, 1, 2, 3, 4]), { inFrames: 5, outFrames: 2, pointSize: 1 });
  assert.deepEqual(Array.from(down), [0, 4]);
});

Deno.test("resample() repeats a single frame and copies an equal length", () => {
  const one = resample(new Float32Array([7, 8]), { inFrames: 1, outFrames: 3, pointSize: 2 });
  assert.deepEqual(Array.from(one), [7, 8, 7, 8, 7, 8]);
  const src = new Float32Array([1, 2]);
  const same = resample(src, { inFrames: 2, outFrames: 2, pointSize: 1 });
  assert.deepEqual(Array.from(same), [1, 2]);
  assert.notEqual(same.buffer, src.buffer);
});

Deno.test("resample() rejects a length that does not match its shape", () => {
  assert.throws(
    () => resample(new Float32Array(5), { inFrames: 2, outFrames: 3, pointSize: 2 }),
    (e: Error) => e instanceof TypeError && e.message === "Cannot resample: expected 4 values, got 5",
  );
});

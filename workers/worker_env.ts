/**
 * Prelude of the inference worker, imported before onnxruntime-web. Inside a Deno worker `location.origin` is the
 * string "null", which onnxruntime-web then uses as a URL base and fails; the main thread has no `location` at
 * all. Hiding it makes the worker look like the main thread to the runtime. Nothing else in the worker reads it.
 *
 * @module
 */
if (typeof location !== "undefined" && location.origin === "null") {
  Object.defineProperty(globalThis, "location", { value: undefined, configurable: true, writable: true });
}

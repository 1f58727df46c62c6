/**
 * The cloud tiers past the first as the climb calls them (serve/cascade.ts): each with its client (the Open
 * Inference Protocol client for `oip` tiers, the OpenAI-compatible VLM client for `openai` tiers), its own circuit
 * breaker, budget and deadline, as configured (serve/tiers.ts).
 *
 * @module
 */
import { circuitOpenError, createCircuitBreaker, throughBreaker } from "./circuit_breaker.ts";
import { createOipClient } from "./oip_client.ts";
import { createVlmClient } from "./vlm_client.ts";
import { createOffloadBudget } from "../switcher/decide.ts";
import { softmax } from "../switcher/features.ts";
import type { ClassifierSpec } from "../wasm-models/manifest.ts";
import { failedOutcome, type TierModel, type TierOutcome } from "../serve/cascade.ts";
import type { CloudTier } from "../serve/tiers.ts";

/** Options of {@link createTierModel}. */
export interface TierModelOptions {
  /** The cloud model's spec (manifest): labels, and the window an `oip` tier takes. */
  cloudSpec: ClassifierSpec;
  /** Called on every state change of the tier's circuit (logging). */
  onCircuit?: (tier: string, from: string, to: string) => void;
  /** The fetch to use (tests). @default globalThis.fetch */
  fetch?: typeof fetch;
}

/**
 * Build one tier's model.
 *
 * @param tier the tier's configuration (an `oip` tier needs its `url`)
 * @param options the cloud model's spec
 * @returns the tier model
 * @throws RangeError when an `oip` tier past the first has no url
 */
export function createTierModel(tier: CloudTier, options: TierModelOptions): TierModel {
  const spec = options.cloudSpec;
  const breaker = createCircuitBreaker({
    failureThreshold: tier.breaker.failures,
    failureRatio: tier.breaker.failureRatio,
    windowSize: tier.breaker.window,
    openMs: tier.breaker.openMs,
    maxOpenMs: tier.breaker.maxOpenMs,
    onStateChange: (from, to) => options.onCircuit?.(tier.name, from, to),
  });
  const budget = createOffloadBudget({ ratePerS: tier.budgetPerS });
  let call: TierModel["call"];
  if (tier.kind === "oip") {
    if (!tier.url) throw new RangeError(`Invalid TIERS: tier ${tier.name}: an oip tier past the first needs its url`);
    const client = createOipClient({
      baseUrl: tier.url,
      modelName: tier.model,
      timeoutMs: tier.timeoutMs,
      auth: tier.apiKey ? { header: "authorization", value: `Bearer ${tier.apiKey}` } : undefined,
      outputSize: spec.labels.length,
      fetch: options.fetch,
    });
    const shape = [1, spec.windowFrames, spec.joints, spec.channels];
    call = async (input): Promise<TierOutcome> => {
      const t0 = performance.now();
      try {
        const reply = await throughBreaker(breaker, () => client.infer(input.window, shape));
        return {
          probs: softmax(reply.logits),
          hasProbabilities: true,
          version: reply.modelVersion ?? tier.model,
          ms: performance.now() - t0,
        };
      } catch (err) {
        return failedOutcome(err, performance.now() - t0);
      }
    };
  } else {
    const client = createVlmClient({
      baseUrl: tier.url!,
      model: tier.model,
      labels: spec.labels,
      keys: tier.keys,
      timeoutMs: tier.timeoutMs,
      frames: tier.frames,
      prompt: tier.prompt,
      constraint: tier.constraint,
      logprobs: tier.logprobs,
      topLogprobs: tier.topLogprobs,
      apiKey: tier.apiKey,
      fetch: options.fetch,
    });
    call = async (input): Promise<TierOutcome> => {
      const t0 = performance.now();
      try {
        if (!input.clip) throw new TypeError(`Cannot call tier ${tier.name}: it takes frames, the request has none`);
        const r = await throughBreaker(breaker, () => client.classify(input.clip!));
        return {
          probs: r.probs,
          hasProbabilities: r.hasProbabilities,
          version: r.modelVersion ?? tier.model,
          ms: performance.now() - t0,
        };
      } catch (err) {
        return failedOutcome(err, performance.now() - t0);
      }
    };
  }
  return {
    tier,
    call,
    down: () => (breaker.state() === "open" ? circuitOpenError(breaker) : null),
    takeToken: () => budget.take(performance.now()),
  };
}

/**
 * Durable answers (`LOG_DURABLE=true`): a request is answered only once its decisions are committed to the database
 * or fsynced to the outbox (db/decision_log.ts), so a kill -9 loses no answered decision — with one exception,
 * stated here and in the README: a decision that is also shadowed (a kept request sent to the cloud in the
 * background for exploration, `EXPLORATION_RATE` of the kept ones) is logged when its background call ends, after the
 * answer, so that the shadow call stays off the answer's path. A kill -9 loses the shadowed decisions whose call is
 * still in flight: at most `SHADOW_BUDGET_PER_S` x `CLOUD_TIMEOUT_MS` / 1000 of them.
 *
 * @module
 */
import type { DecisionLog } from "../db/decision_log.ts";
import type { HybridClassifier } from "./classifier.ts";

/**
 * Wrap a classifier so that each answer waits for its decisions to be durable (shadowed ones excepted, see above).
 *
 * @param classifier the classifier
 * @param log the decision log (in durable mode)
 * @returns a classifier with the same signature
 */
export function answerWhenLogged(classifier: HybridClassifier, log: Pick<DecisionLog, "whenLogged">): HybridClassifier {
  return {
    ...classifier,
    async classify(items, options) {
      const answers = await classifier.classify(items, options);
      await log.whenLogged(answers.map((a) => a.decisionId));
      return answers;
    },
  };
}

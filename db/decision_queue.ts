/**
 * The decision queue: decisions accepted by the log and not yet in the database or the outbox, oldest first, with
 * the durable-mode acknowledgements and the rows recently moved to the outbox (so that a decision can be read back
 * while the database is down). Only the log's writer loop removes rows, always from the front.
 *
 * Pure state: no I/O, no timers.
 *
 * @module
 */
import type { DecisionRecord } from "./schema.ts";

/** Rows moved to the outbox that {@link DecisionQueue.find} still finds. */
const RECENT_MAX = 10_000;

interface Ack {
  promise: Promise<void>;
  resolve: () => void;
  reject: (e: unknown) => void;
}

/** The queue of accepted decisions. */
export interface DecisionQueue {
  /** Add a decision at the back. */
  push(record: DecisionRecord): void;
  /** @returns a copy of the first `n` rows (all when absent) */
  head(n?: number): DecisionRecord[];
  /** @returns rows queued */
  size(): number;
  /** @returns the `createdAt` (Unix ms) of the oldest queued row, or null */
  oldestCreatedAt(): number | null;
  /**
   * The first `n` rows are in the database, or fsynced in the outbox: forget them and acknowledge them.
   *
   * @param n how many
   * @param where where they went (rows in the outbox stay findable)
   */
  settle(n: number, where: "database" | "outbox"): void;
  /** Tell the callers waiting for queued rows that they are not durable yet; the rows stay queued. */
  nack(err: unknown): void;
  /**
   * The promise that a queued row becomes durable (made on first request); resolved at once when not queued.
   *
   * @param id the decision id
   */
  whenSettled(id: string): Promise<void>;
  /** @returns a decision still queued or recently moved to the outbox */
  find(id: string): DecisionRecord | undefined;
}

/**
 * Create an empty queue.
 *
 * @returns the queue
 */
export function createDecisionQueue(): DecisionQueue {
  const rows: DecisionRecord[] = [];
  const queued = new Map<string, DecisionRecord>();
  const acks = new Map<string, Ack>();
  const recent = new Map<string, DecisionRecord>();

  return {
    push(record) {
      rows.push(record);
      queued.set(record.id, record);
    },
    head: (n = rows.length) => rows.slice(0, n),
    size: () => rows.length,
    oldestCreatedAt: () => rows[0]?.createdAt ?? null,
    settle(n, where) {
      for (const r of rows.splice(0, n)) {
        queued.delete(r.id);
        if (where === "outbox") {
          recent.set(r.id, r);
          if (recent.size > RECENT_MAX) recent.delete(recent.keys().next().value!);
        }
        const ack = acks.get(r.id);
        if (ack) {
          acks.delete(r.id);
          ack.resolve();
        }
      }
    },
    nack(err) {
      for (const r of rows) {
        const ack = acks.get(r.id);
        if (ack) {
          acks.delete(r.id);
          ack.reject(err);
        }
      }
    },
    whenSettled(id) {
      if (!queued.has(id)) return Promise.resolve();
      let entry = acks.get(id);
      if (!entry) {
        let resolve!: () => void;
        let reject!: (e: unknown) => void;
        const promise = new Promise<void>((res, rej) => (resolve = res, reject = rej));
        // Handled here too, so that a caller that does not wait cannot cause an unhandled rejection.
        promise.catch(() => {});
        entry = { promise, resolve, reject };
        acks.set(id, entry);
      }
      return entry.promise;
    },
    find: (id) => queued.get(id) ?? recent.get(id),
  };
}

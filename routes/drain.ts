/**
 * Draining at shutdown: once draining starts, every new request (on a new connection or on a kept-alive one) is
 * answered 503 `SHUTTING_DOWN` with `Connection: close` and `Retry-After`, instead of the connection being reset
 * when the server stops; `/healthz` still answers, and `/readyz` is 503 like the rest, so that load balancers take
 * the app out. Requests already in flight carry on; {@link Drain.idle} resolves when none is left.
 *
 * Lifecycle: serving -> draining (start) -> idle (no request in flight) -> the server stops.
 *
 * @module
 */

/** The drain state of one server. */
export interface Drain {
  /**
   * Wrap the app's handler: count requests in flight, and answer new ones 503 once draining.
   *
   * @param handler the app's handler (`app.fetch`)
   * @returns the handler to serve
   */
  wrap<A extends unknown[]>(handler: (req: Request, ...rest: A) => Response | Promise<Response>): (
    req: Request,
    ...rest: A
  ) => Promise<Response>;
  /** Start draining. */
  start(): void;
  /** @returns whether draining started */
  draining(): boolean;
  /** @returns requests in flight (answers to refused ones excluded) */
  inFlight(): number;
  /** @returns a promise that resolves once no request is in flight */
  idle(): Promise<void>;
}

/**
 * Create the drain state (serving until `start`).
 *
 * @returns the drain
 */
export function createDrain(): Drain {
  let draining = false;
  let inFlight = 0;
  let waiters: (() => void)[] = [];

  function refuse(): Response {
    return Response.json({ code: "SHUTTING_DOWN", message: "Cannot serve: the service is shutting down" }, {
      status: 503,
      headers: { "connection": "close", "retry-after": "1" },
    });
  }

  return {
    wrap(handler) {
      return async (req, ...rest) => {
        if (draining && new URL(req.url).pathname !== "/healthz") return refuse();
        inFlight++;
        try {
          return await handler(req, ...rest);
        } finally {
          inFlight--;
          if (inFlight === 0) {
            const w = waiters;
            waiters = [];
            w.forEach((resolve) => resolve());
          }
        }
      };
    },
    start: () => void (draining = true),
    draining: () => draining,
    inFlight: () => inFlight,
    idle: () => inFlight === 0 ? Promise.resolve() : new Promise<void>((resolve) => waiters.push(resolve)),
  };
}

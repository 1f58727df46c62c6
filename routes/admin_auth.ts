/**
 * Bearer-token guard for the admin and analytics endpoints. The classify path is not guarded.
 *
 * The token is compared in constant time (on SHA-256 digests, so the length of the configured token does not leak
 * either). Without a configured token every guarded call is refused: an operator opts in by setting `ADMIN_TOKEN`.
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";
import { AppError } from "../errors.ts";

const encoder = new TextEncoder();

async function digest(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
}

/**
 * Whether two strings are equal, in time that does not depend on where they differ.
 *
 * @param a one string
 * @param b the other
 * @returns true when equal
 */
export async function constantTimeEqual(a: string, b: string): Promise<boolean> {
  const [x, y] = await Promise.all([digest(a), digest(b)]);
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x[i] ^ y[i];
  return diff === 0;
}

/**
 * Middleware that lets a request through only with `Authorization: Bearer <token>`.
 *
 * @param token the configured token; undefined refuses every request
 * @returns the middleware (401 `UNAUTHORIZED` otherwise)
 */
export function requireAdmin(token: string | undefined): MiddlewareHandler {
  return async (c, next) => {
    const header = c.req.header("authorization") ?? "";
    const match = /^Bearer\s+(.+)$/i.exec(header);
    if (!token) {
      throw new AppError("UNAUTHORIZED", "Cannot authorise: no ADMIN_TOKEN is configured on this service");
    }
    if (!match || !(await constantTimeEqual(match[1].trim(), token))) {
      throw new AppError("UNAUTHORIZED", "Cannot authorise: a valid bearer token is required");
    }
    await next();
  };
}

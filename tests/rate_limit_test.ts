/**
 * Per-client rate limits (routes/rate_limit.ts): a token bucket per client on a fake clock, 429 RATE_LIMITED with
 * Retry-After through the app, keys by header or address, a bounded number of tracked clients, and the settings.
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import { loadConfig } from "../config.ts";
import { onError } from "../errors.ts";
import { rateLimit, type RateLimitOptions } from "../routes/rate_limit.ts";
import { testApp } from "./reliability_app.ts";

function limited(options: RateLimitOptions) {
  const app = new Hono();
  app.use("*", rateLimit(options));
  app.get("/", (c) => c.text("ok"));
  app.onError(onError);
  return (client?: string) => app.request("/", { headers: client ? { "x-client-id": client } : {} });
}

Deno.test("rateLimit(): a burst passes, the next request is 429 with Retry-After, tokens come back at the rate", async () => {
  let t = 0;
  const get = limited({ ratePerS: 2, burst: 3, now: () => t });
  for (let i = 0; i < 3; i++) assert.equal((await get()).status, 200);
  const refused = await get();
  assert.equal(refused.status, 429);
  assert.equal(refused.headers.get("retry-after"), "1");
  assert.deepEqual(await refused.json(), {
    code: "RATE_LIMITED",
    message: "Cannot accept the request: over the limit of 2 per second",
  });
  t += 499;
  assert.equal((await get()).status, 429, "half a token is not a token");
  t += 1;
  assert.equal((await get()).status, 200);
  assert.equal((await get()).status, 429);
  t += 10_000;
  for (let i = 0; i < 3; i++) assert.equal((await get()).status, 200, "refilled up to the burst, no more");
  assert.equal((await get()).status, 429);
});

Deno.test("rateLimit(): Retry-After is the whole seconds until the next token at a slow rate", async () => {
  let t = 0;
  const get = limited({ ratePerS: 0.25, burst: 1, now: () => t });
  assert.equal((await get()).status, 200);
  assert.equal((await get()).headers.get("retry-after"), "4");
  t += 3000;
  assert.equal((await get()).headers.get("retry-after"), "1");
});

Deno.test("rateLimit(): clients are limited apart by header key; without the header, by address", async () => {
  const t = 0;
  const get = limited({ ratePerS: 1, burst: 1, key: "header:x-client-id", now: () => t });
  assert.equal((await get("a")).status, 200);
  assert.equal((await get("a")).status, 429);
  assert.equal((await get("b")).status, 200);
  // No header: keyed by the peer address ("unknown" in app.request, a shared bucket).
  assert.equal((await get()).status, 200);
  assert.equal((await get()).status, 429);
});

Deno.test("rateLimit(): at most maxClients buckets; the least recently seen is dropped first", async () => {
  const t = 0;
  const get = limited({ ratePerS: 1, burst: 1, key: "header:x-client-id", maxClients: 2, now: () => t });
  assert.equal((await get("a")).status, 200);
  assert.equal((await get("b")).status, 200);
  assert.equal((await get("a")).status, 429); // a is now the most recent
  assert.equal((await get("c")).status, 200); // drops b
  assert.equal((await get("a")).status, 429, "a kept its empty bucket");
  assert.equal((await get("b")).status, 200, "b was dropped and starts again full");
});

Deno.test("rateLimit(): refuses bad settings", () => {
  assert.throws(() => rateLimit({ ratePerS: 0 }), /ratePerS must be a positive number/);
  assert.throws(() => rateLimit({ ratePerS: 1, burst: 0.5 }), /burst must be at least 1/);
  assert.throws(() => rateLimit({ ratePerS: 1, key: "cookie:x" }), /key must be address or header:NAME/);
});

Deno.test("the app: /v1/* is rate limited when configured (before the body is read); health is not", async () => {
  const { app, rows } = testApp({ rateLimit: { ratePerS: 1, burst: 2, key: "header:x-client-id" } });
  const post = (client: string, body = '{"layout":"tiny","fps":10,"frames":[[[0,0,1],[0,0,1]]]}') =>
    app.request("/v1/classify", {
      method: "POST",
      headers: { "content-type": "application/json", "x-client-id": client },
      body,
    });
  assert.equal((await post("cam-1")).status, 200);
  assert.equal((await post("cam-1", "{broken")).status, 400);
  const res = await post("cam-1");
  assert.equal(res.status, 429);
  assert.equal((await res.json()).code, "RATE_LIMITED");
  assert.ok(Number(res.headers.get("retry-after")) >= 1);
  assert.equal(res.headers.get("x-content-type-options"), "nosniff");
  assert.equal((await post("cam-2")).status, 200);
  assert.equal(rows.length, 2);
  for (let i = 0; i < 5; i++) assert.equal((await app.request("/healthz")).status, 200);
});

Deno.test("loadConfig(): rate limits are off by default; RATE_LIMIT_* are checked", () => {
  const base = { DATABASE_URL: ":memory:" };
  const c = loadConfig(base);
  assert.deepEqual([c.rateLimitPerS, c.rateLimitBurst, c.rateLimitKey], [0, 1, "address"]);
  const on = loadConfig({ ...base, RATE_LIMIT_PER_S: "2.5", RATE_LIMIT_KEY: "header:X-Client-Id" });
  assert.deepEqual([on.rateLimitPerS, on.rateLimitBurst, on.rateLimitKey], [2.5, 3, "header:X-Client-Id"]);
  assert.throws(() => loadConfig({ ...base, RATE_LIMIT_PER_S: "-1" }), /Invalid RATE_LIMIT_PER_S/);
  assert.throws(() => loadConfig({ ...base, RATE_LIMIT_BURST: "0" }), /Invalid RATE_LIMIT_BURST/);
  assert.throws(() => loadConfig({ ...base, RATE_LIMIT_KEY: "header:" }), /Invalid RATE_LIMIT_KEY/);
  assert.throws(() => loadConfig({ ...base, RATE_LIMIT_KEY: "ip" }), /Invalid RATE_LIMIT_KEY/);
});

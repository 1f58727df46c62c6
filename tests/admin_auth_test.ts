import assert from "node:assert/strict";
import { Hono } from "hono";
import { loadConfig } from "../config.ts";
import { onError } from "../errors.ts";
import { constantTimeEqual, requireAdmin } from "../routes/admin_auth.ts";

function app(token: string | undefined) {
  const a = new Hono();
  a.use("/admin/*", requireAdmin(token));
  a.get("/admin/x", (c) => c.json({ ok: true }));
  a.onError(onError);
  return a;
}

Deno.test("constantTimeEqual() compares exactly, any lengths", async () => {
  assert.equal(await constantTimeEqual("abc", "abc"), true);
  assert.equal(await constantTimeEqual("abc", "abd"), false);
  assert.equal(await constantTimeEqual("abc", "abcd"), false);
  assert.equal(await constantTimeEqual("", ""), true);
});

Deno.test("requireAdmin(): the right bearer token passes; a wrong, missing or unconfigured one is 401", async () => {
  const token = "0123456789abcdef-token";
  const ok = await app(token).request("/admin/x", { headers: { authorization: `Bearer ${token}` } });
  assert.equal(ok.status, 200);
  assert.deepEqual(await ok.json(), { ok: true });
  const refused: Record<string, string>[] = [{}, { authorization: "Bearer nope" }, { authorization: token }];
  for (const headers of refused) {
    const res = await app(token).request("/admin/x", { headers });
    assert.equal(res.status, 401);
    assert.equal((await res.json()).code, "UNAUTHORIZED");
  }
  const none = await app(undefined).request("/admin/x", { headers: { authorization: "Bearer anything-at-all" } });
  assert.equal(none.status, 401);
  assert.match((await none.json()).message, /no ADMIN_TOKEN/);
});

Deno.test("loadConfig(): ADMIN_TOKEN is optional and at least 16 characters", () => {
  assert.equal(loadConfig({}).adminToken, undefined);
  assert.equal(loadConfig({ ADMIN_TOKEN: "0123456789abcdef" }).adminToken, "0123456789abcdef");
  assert.throws(() => loadConfig({ ADMIN_TOKEN: "short" }), /ADMIN_TOKEN/);
});

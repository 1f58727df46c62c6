/**
 * Security invariants checked on the source and the configuration: SQL only in `db/` and only with bound
 * parameters (no request value can reach SQL text), the cloud URL only from configuration, secrets never in
 * configuration error messages, and security headers on error responses too.
 */
import assert from "node:assert/strict";
import { loadConfig } from "../config.ts";
import { ROOT, sources as allSources } from "./fixtures/sources.ts";
import { testApp } from "./reliability_app.ts";

const SKIP = /^(node_modules|\.tools|build|dist|datasets|tests|\.git|dashboard\/vendor)(\/|$)/;
const sources = () => allSources(SKIP);

Deno.test("security: SQL is only in db/; raw SQL text there is built from constants, never from values", () => {
  const files = sources();
  assert.ok(files.length > 20);
  const sqlCall = /\.execute\(|\bsql`|sql\.raw\(|\.run\(\s*["'`]/;
  for (const file of files) {
    const text = Deno.readTextFileSync(`${ROOT}${file}`);
    if (file.startsWith("db/")) {
      // `execute` takes a literal, or a { sql, args } statement with bound args.
      for (const m of text.matchAll(/\.execute\(([^)]*)\)?/g)) {
        assert.match(m[1], /^\s*("[^"$]*"|'[^'$]*'|\{\s*sql:|$)/, `${file}: execute(${m[1]})`);
      }
      // sql.raw only on a constant, or on a column name taken from the schema.
      for (const m of text.matchAll(/sql\.raw\(([^;]*?)\)[;,]/g)) {
        const arg = m[1];
        const constant = /^`[^$]*`$|^"[^"]*"$|^'[^']*'$/.test(arg.trim());
        const schemaColumn = arg.includes("${column.name}");
        assert.ok(constant || schemaColumn, `${file}: sql.raw(${arg})`);
      }
      continue;
    }
    assert.ok(!sqlCall.test(text), `${file} runs SQL outside db/`);
  }
});

Deno.test("security: the cloud is reached only at the configured URL", () => {
  for (const file of sources().filter((f) => /^(routes|serve|loop|release|sequence|workers)\//.test(f))) {
    const text = Deno.readTextFileSync(`${ROOT}${file}`);
    assert.ok(!/\bfetch\(/.test(text), `${file} makes HTTP calls`);
    assert.ok(!/createOipClient\(/.test(text), `${file} builds a cloud client`);
  }
  const main = Deno.readTextFileSync(`${ROOT}main.ts`);
  assert.match(main, /const cloudUrl = config\.cloudUrl \?\? child!\.url;/);
  assert.throws(() => loadConfig({ CLOUD_URL: "file:///etc/passwd" }), /Invalid CLOUD_URL/);
  assert.throws(() => loadConfig({ CLOUD_URL: "javascript:alert(1)" }), /Invalid CLOUD_URL/);
});

Deno.test("security: configuration errors never print a secret", () => {
  const token = "short-secret";
  try {
    loadConfig({ ADMIN_TOKEN: token });
    assert.fail("a short ADMIN_TOKEN must be refused");
  } catch (err) {
    assert.ok(!(err as Error).message.includes(token));
  }
  const config = loadConfig({
    ADMIN_TOKEN: "a".repeat(32),
    DATABASE_AUTH_TOKEN: "db-token-xyz",
    DATABASE_URL: ":memory:",
  });
  assert.equal(config.adminToken, "a".repeat(32));
  assert.equal(config.databaseAuthToken, "db-token-xyz");
});

Deno.test("security: error responses carry the security headers too", async () => {
  const { app } = testApp();
  for (
    const res of [
      await app.request("/nope"),
      await app.request("/v1/classify", { method: "POST", headers: { "content-type": "text/plain" }, body: "x" }),
      await app.request("/v1/classify", { method: "POST", headers: { "content-type": "application/json" }, body: "{" }),
    ]
  ) {
    assert.ok(res.status >= 400);
    assert.equal(res.headers.get("x-content-type-options"), "nosniff");
    assert.equal(res.headers.get("x-frame-options"), "SAMEORIGIN");
    assert.ok(res.headers.get("strict-transport-security"));
    assert.equal(res.headers.get("referrer-policy"), "no-referrer");
    assert.ok(res.headers.get("x-request-id"));
    await res.body?.cancel();
  }
});

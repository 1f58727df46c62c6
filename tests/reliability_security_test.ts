/**
 * Security invariants checked on the source and the configuration: SQL only in `db/` and only with bound
 * parameters (no request value can reach SQL text), the cloud URL only from configuration, secrets never in
 * configuration error messages, and security headers on error responses too.
 */
import assert from "node:assert/strict";
import { createOipClient } from "../cloud/oip_client.ts";
import { loadConfig, redactUrl } from "../config.ts";
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
      // `execute` takes a literal, or a { sql, args } statement with bound args. The database process (db/host.ts)
      // runs the statements its caller's drizzle built, as they came (checked here, on the caller's side).
      for (const m of text.matchAll(/\.execute\(([^)]*)\)?/g)) {
        if (file === "db/host.ts" && /^req\.stmt$/.test(m[1])) continue;
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

Deno.test("security: CLOUD_URL credentials never reach a message or GET /v1/models; they become a header", async () => {
  const config = loadConfig({ CLOUD_URL: "http://user:s3cret@127.0.0.1:8001/" });
  assert.equal(config.cloudUrl, "http://127.0.0.1:8001");
  assert.deepEqual(config.cloudAuth, { header: "authorization", value: `Basic ${btoa("user:s3cret")}` });
  try {
    loadConfig({ CLOUD_URL: "ftp://user:s3cret@host/" });
    assert.fail("a non-http CLOUD_URL must be refused");
  } catch (err) {
    assert.match((err as Error).message, /^Invalid CLOUD_URL: expected an http\(s\) URL, got "ftp:\/\/\*\*\*@host"$/);
  }
  try {
    loadConfig({ CLOUD_URL: "http://user:s3cret@[bad" });
    assert.fail("an unparsable CLOUD_URL must be refused");
  } catch (err) {
    assert.ok(!(err as Error).message.includes("s3cret"), (err as Error).message);
  }
  assert.equal(redactUrl("https://a:b@h:1/p?key=k"), "https://***@h:1/p?***");
  const { app } = testApp({ cloudUrl: "http://user:s3cret@127.0.0.1:8001" });
  const text = await (await app.request("/v1/models")).text();
  assert.ok(!text.includes("s3cret") && !text.includes("user"), text);
  assert.match(text, /"url":"http:\/\/\*\*\*@127\.0\.0\.1:8001"/);
});

Deno.test("security: CLOUD_AUTH_TOKEN is sent as a bearer token, or raw in CLOUD_AUTH_HEADER", async () => {
  assert.deepEqual(loadConfig({ CLOUD_AUTH_TOKEN: "tok" }).cloudAuth, { header: "authorization", value: "Bearer tok" });
  const config = loadConfig({ CLOUD_AUTH_TOKEN: "tok", CLOUD_AUTH_HEADER: "X-Api-Key" });
  assert.deepEqual(config.cloudAuth, { header: "x-api-key", value: "tok" });
  assert.throws(() => loadConfig({ CLOUD_AUTH_HEADER: "bad header" }), /Invalid CLOUD_AUTH_HEADER/);
  const seen: (string | null)[] = [];
  const client = createOipClient({
    baseUrl: "http://127.0.0.1:1",
    modelName: "cloud",
    timeoutMs: 100,
    auth: config.cloudAuth,
    fetch: (_url, init) => {
      seen.push(new Headers(init?.headers).get("x-api-key"));
      return Promise.resolve(new Response(JSON.stringify({ ready: true })));
    },
  });
  assert.equal(await client.ready(), true);
  assert.deepEqual(seen, ["tok"]);
});

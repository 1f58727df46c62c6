/**
 * The served OpenAPI document: clean under Redocly's recommended rules (`deno task lint:openapi`), the same rules
 * checked here without the linter, and every example in it sent to the service gets a status the document lists.
 */
import assert from "node:assert/strict";
import { redoclyLint, withService } from "../scripts/lint_openapi.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const MODELS = `${ROOT}wasm-models`;

// deno-lint-ignore no-explicit-any
type Doc = any;
// deno-lint-ignore no-explicit-any
type Operation = any;

function operations(doc: Doc): { method: string; path: string; op: Operation }[] {
  return Object.entries(doc.paths as Record<string, Record<string, Operation>>).flatMap(([path, ops]) =>
    Object.entries(ops).map(([method, op]) => ({ method, path, op }))
  );
}

/** A `$ref`'d schema, or the schema itself. */
function resolve(doc: Doc, schema: Operation): Operation {
  const ref = schema?.$ref as string | undefined;
  return ref ? doc.components.schemas[ref.split("/").pop()!] : schema;
}

Deno.test({
  name: "openapi: the served document follows the recommended rules and every example gets a documented status",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    await withService(MODELS, async (url, adminToken) => {
      const doc: Doc = await (await fetch(`${url}/openapi.json`)).json();
      const ops = operations(doc);

      await t.step("operationIds, servers, security on every operation, 429 and 503 documented", () => {
        assert.ok(Array.isArray(doc.servers) && doc.servers.length > 0, "servers");
        const ids = ops.map((o) => o.op.operationId);
        assert.ok(ids.every((id) => typeof id === "string" && id.length > 0), JSON.stringify(ids));
        assert.equal(new Set(ids).size, ids.length, "operationIds are unique");
        for (const { method, path, op } of ops) {
          const at = `${method.toUpperCase()} ${path}`;
          assert.ok(Array.isArray(op.security), `${at}: security`);
          const open = op.security.length === 0 || op.security.some((r: object) => Object.keys(r).length === 0);
          const guarded = path.startsWith("/admin") || path === "/v1/stats";
          assert.equal(open, !guarded, `${at}: public exactly when not an admin route`);
          for (const r of op.security) {
            for (const name of Object.keys(r)) assert.ok(doc.components.securitySchemes[name]);
          }
          if (path.startsWith("/v1/")) assert.ok(op.responses["429"], `${at}: 429`);
          if (path.startsWith("/v1/classify")) {
            for (const s of ["400", "413", "415", "422", "503"]) assert.ok(op.responses[s], `${at}: ${s}`);
          }
          assert.ok(Object.keys(op.responses).some((s) => s.startsWith("4")) || /^\/(healthz|readyz)$/.test(path));
        }
      });

      await t.step("Decision is typed, and no component is unused", () => {
        const decision = doc.components.schemas.Decision;
        assert.equal(decision.type, "object");
        for (const field of ["id", "route", "label", "switcherScore", "switcherThreshold", "totalMs"]) {
          assert.ok(decision.properties[field]?.type, `Decision.${field}`);
          assert.ok(decision.required.includes(field), `Decision.${field} required`);
        }
        const text = JSON.stringify({ ...doc, components: { ...doc.components, schemas: undefined } }) +
          JSON.stringify(doc.components.schemas);
        for (const name of Object.keys(doc.components.schemas)) {
          assert.ok(text.includes(`"#/components/schemas/${name}"`), `${name} is used`);
        }
      });

      await t.step("every example, sent as written, gets a status the document lists", async () => {
        let sent = 0;
        for (const { method, path, op } of ops) {
          const params = (op.parameters ?? []) as { in: string; name: string; example?: unknown; schema?: Doc }[];
          let target = path;
          const query = new URLSearchParams();
          for (const p of params) {
            const example = p.example ?? p.schema?.example;
            if (p.in === "path") target = target.replace(`{${p.name}}`, String(example ?? "x"));
            else if (p.in === "query" && example !== undefined) query.set(p.name, String(example));
          }
          const bodySchema = op.requestBody?.content?.["application/json"]?.schema;
          const body = bodySchema ? resolve(doc, bodySchema).example : undefined;
          // The keypoint routes' examples are requests the default models answer.
          const mustAnswer = path === "/v1/classify" || path === "/v1/classify/batch";
          if (mustAnswer) assert.ok(body !== undefined, `${method} ${path}: the request body has an example`);
          // Rolling back would change the models folder: its example is the schema, not a call worth making here.
          if (path === "/admin/switcher/rollback") continue;
          const res = await fetch(`${url}${target}${query.size ? `?${query}` : ""}`, {
            method: method.toUpperCase(),
            headers: {
              authorization: `Bearer ${adminToken}`,
              ...(body !== undefined ? { "content-type": "application/json" } : {}),
            },
            body: body !== undefined ? JSON.stringify(body) : undefined,
          });
          const text = await res.text();
          assert.ok(op.responses[String(res.status)], `${method} ${target}: ${res.status} is not documented: ${text}`);
          if (mustAnswer) assert.equal(res.status, 200, `${method} ${path}: its example: ${text}`);
          sent++;
        }
        assert.ok(sent >= 10, `sent ${sent}`);
      });

      await t.step("Redocly's recommended rules: no problem but the ones kept with a reason", async () => {
        await Deno.mkdir(`${ROOT}build`, { recursive: true });
        await Deno.writeTextFile(`${ROOT}build/openapi.json`, JSON.stringify(doc, null, 2) + "\n");
        const lint = await redoclyLint("build/openapi.json", ROOT);
        assert.equal(lint.code, 0, lint.output);
        assert.match(lint.output, /Your API description is valid/);
        assert.doesNotMatch(lint.output, /warning|error/, lint.output);
      });
    });
  },
});

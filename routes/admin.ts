/**
 * Admin endpoints of the learning loop, behind the admin token (routes/admin_auth.ts):
 *
 * - `GET /admin/switcher`: the version serving here, the last check, a refused version and why, and every version
 *   in the database with its status, threshold, provenance and metrics (not its bytes);
 * - `POST /admin/switcher/reload`: check the database's active version now and load it if it changed (200 with
 *   `{ version, changed, refused? }`; a refused version leaves the old one serving and says why);
 * - `POST /admin/switcher/rollback`: roll back through the release registry (loop/registry.ts), as
 *   `deno task rollback` does — under the models folder's job lock (409 `CONFLICT` while a job holds it), the
 *   previous release made active in the database and in the manifest (the current one is marked rejected) — then
 *   load it here (404 `NOT_FOUND` when there is no earlier release).
 *
 * @module
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Db } from "../db/client.ts";
import { listReleases, rollbackRelease } from "../loop/registry.ts";
import type { ReleaseFollower } from "../serve/release_follower.ts";
import { requireAdmin } from "./admin_auth.ts";

/** What the admin routes need. */
export interface AdminDeps {
  adminToken: string | undefined;
  db: Db;
  follower: ReleaseFollower;
  /** The models folder whose manifest the registry keeps in step (and whose job lock it takes). */
  modelsDir: string;
}

const Refused = z.object({ version: z.string(), reason: z.string() });
const SyncSchema = z.object({
  version: z.string(),
  changed: z.boolean(),
  refused: Refused.optional(),
}).openapi("SwitcherSync");
const Error = z.object({ code: z.string(), message: z.string() }).openapi("AdminError");
const security = [{ bearer: [] as string[] }];
const unauthorised = { 401: { content: { "application/json": { schema: Error } }, description: "No valid token" } };

const statusRoute = createRoute({
  method: "get",
  path: "/switcher",
  operationId: "listSwitcherReleases",
  summary: "Switcher versions and the one serving here",
  security,
  responses: {
    200: {
      content: {
        "application/json": {
          schema: z.object({
            serving: z.object({
              version: z.string(),
              lastCheckAt: z.number().nullable(),
              refused: Refused.nullable(),
            }),
            versions: z.array(z.record(z.string(), z.unknown())),
          }),
        },
      },
      description: "Versions",
    },
    ...unauthorised,
  },
});

const reloadRoute = createRoute({
  method: "post",
  path: "/switcher/reload",
  operationId: "reloadSwitcher",
  summary: "Load the active switcher now",
  security,
  responses: {
    200: { content: { "application/json": { schema: SyncSchema } }, description: "Checked" },
    ...unauthorised,
  },
});

const rollbackRoute = createRoute({
  method: "post",
  path: "/switcher/rollback",
  operationId: "rollbackSwitcher",
  summary: "Restore the previous switcher version",
  security,
  responses: {
    200: {
      content: {
        "application/json": { schema: z.object({ from: z.string().nullable(), to: z.string(), serving: SyncSchema }) },
      },
      description: "Rolled back",
    },
    404: { content: { "application/json": { schema: Error } }, description: "No earlier version" },
    409: { content: { "application/json": { schema: Error } }, description: "Another job holds the lock" },
    ...unauthorised,
  },
});

/**
 * The admin sub-app, mounted at `/admin`.
 *
 * @param deps token, database, release follower, models folder
 * @returns the sub-app
 */
export function adminRoutes(deps: AdminDeps): OpenAPIHono {
  const app = new OpenAPIHono();
  app.use("*", requireAdmin(deps.adminToken));
  app.openapi(statusRoute, async (c) => {
    return c.json({ serving: deps.follower.status(), versions: await listReleases(deps.db) }, 200);
  });
  app.openapi(reloadRoute, async (c) => c.json(await deps.follower.check(), 200));
  app.openapi(rollbackRoute, async (c) => {
    const { from, to } = await rollbackRelease(deps.db, { modelsDir: deps.modelsDir });
    return c.json({ from, to: to.version, serving: await deps.follower.check() }, 200);
  });
  return app;
}

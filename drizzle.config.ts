/**
 * drizzle-kit configuration: `deno task db:generate` writes the SQL migrations for `db/schema.ts` to
 * `db/migrations/` (see `db/README.md`). The app applies them at start-up (`db/client.ts`).
 *
 * @module
 */
import { defineConfig } from "drizzle-kit";

export default defineConfig({
  dialect: "sqlite",
  schema: "./db/schema.ts",
  out: "./db/migrations",
  strict: true,
});

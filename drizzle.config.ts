/**
 * drizzle-kit configuration: `deno task db:generate` writes SQL migrations for `db/schema.ts` to `db/migrations/`.
 *
 * @module
 */
export default {
  dialect: "sqlite",
  schema: "./db/schema.ts",
  out: "./db/migrations",
};

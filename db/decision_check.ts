/**
 * The check of a decision record against the schema, made when the decision log accepts it: a row the database would
 * refuse is refused at once, with the field named, instead of failing a whole batch later.
 *
 * @module
 */
import { getTableColumns } from "drizzle-orm";
import type { SQLiteColumn } from "drizzle-orm/sqlite-core";
import { AppError } from "../errors.ts";
import { type DecisionRecord, decisions } from "./schema.ts";

const COLUMNS = Object.entries(getTableColumns(decisions)) as [keyof DecisionRecord, SQLiteColumn][];

/** What is wrong with one value for its column, or null. */
function valueProblem(column: SQLiteColumn, value: unknown): string | null {
  switch (column.dataType) {
    case "string": {
      if (typeof value !== "string") return "is not a string";
      const allowed = (column as SQLiteColumn & { enumValues?: string[] }).enumValues;
      return allowed && !allowed.includes(value) ? `is not one of ${allowed.join(", ")}` : null;
    }
    case "number":
      if (typeof value !== "number" || !Number.isFinite(value)) return "is not a finite number";
      return column.columnType === "SQLiteInteger" && !Number.isInteger(value) ? "is not an integer" : null;
    case "boolean":
      return typeof value === "boolean" ? null : "is not a boolean";
    default:
      if (column.getSQLType() === "blob") return value instanceof Float32Array ? null : "is not a Float32Array";
      return Array.isArray(value) && value.every((v) => typeof v === "number" && Number.isFinite(v))
        ? null
        : "is not an array of finite numbers";
  }
}

/**
 * Refuse a record the database would refuse later, while the caller is still on the stack: every column of the
 * schema is checked against its type (string and enum, finite number and integer, boolean, Float32Array, array of
 * finite numbers) and its nullability.
 *
 * @param record the decision
 * @throws AppError INTERNAL naming the first field that is missing or of the wrong type
 */
export function checkDecision(record: DecisionRecord): void {
  if (record === null || typeof record !== "object") {
    throw new AppError("INTERNAL", "Cannot log decision: expected a record");
  }
  for (const [key, column] of COLUMNS) {
    const value: unknown = record[key];
    if (value === null || value === undefined) {
      if (column.notNull && !column.hasDefault) {
        throw new AppError("INTERNAL", `Cannot log decision ${record.id}: ${key} is missing`);
      }
      continue;
    }
    const problem = valueProblem(column, value);
    if (problem) throw new AppError("INTERNAL", `Cannot log decision ${record.id}: ${key} ${problem}`);
  }
}

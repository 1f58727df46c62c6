/**
 * scripts/table.ts: values rounded by kind (text and CSV), aligned text with folded runs and blocks that fit the
 * width, CSV per RFC 4180.
 */
import assert from "node:assert/strict";
import { formatCsv, formatTable, formatValue, type Table } from "../scripts/table.ts";

Deno.test("formatValue() rounds by kind: rates as percentages, ms by size, scores to 3 decimals, UTC times", () => {
  assert.equal(formatValue(0.015379999997094274, "ms"), "0.02");
  assert.equal(formatValue(22.81858199999988, "ms"), "22.8");
  assert.equal(formatValue(119.83392600000025, "ms"), "120");
  assert.equal(formatValue(0, "ms"), "0");
  assert.equal(formatValue(0.0541, "rate"), "5.4%");
  assert.equal(formatValue(1, "rate"), "100.0%");
  assert.equal(formatValue(0.5993852615356445, "score"), "0.599");
  assert.equal(formatValue(1790000000000, "time"), "2026-09-21 14:13:20");
  assert.equal(formatValue(1790000000000, "shortTime"), "09-21 14:13:20");
  assert.equal(formatValue(12, "count"), "12");
  assert.equal(formatValue(null, "rate"), "-");
  assert.equal(formatValue(true), "true");
});

Deno.test("formatTable() aligns columns, right-aligns numbers and prints (none) for no rows", () => {
  const t: Table = {
    columns: [{ name: "name" }, { name: "n", kind: "count" }, { name: "rate", kind: "rate" }],
    rows: [["a,b", 1, 0.5], ['say "hi"', 22, null], [null, 3, 0.125]],
  };
  assert.equal(
    formatTable(t),
    [
      "name      n   rate",
      "--------  --  -----",
      "a,b        1  50.0%",
      'say "hi"  22      -',
      "-          3  12.5%",
    ].join("\n"),
  );
  assert.equal(formatTable({ ...t, rows: [] }), "name  n  rate\n(none)");
});

Deno.test("formatTable() folds runs of rows into one line and keeps single rows", () => {
  const t: Table = {
    columns: [{ name: "start", kind: "count" }, { name: "n", kind: "count" }],
    rows: [[1, 0], [2, 5], [3, 0], [4, 0], [5, 0], [6, 7], [7, 0]],
    fold: { when: (r) => r[1] === 0, describe: (a, b, n) => `${a[0]}..${b[0]}: ${n} empty` },
  };
  assert.equal(
    formatTable(t),
    ["start  n", "-----  -", "    1  0", "    2  5", "3..5: 3 empty", "    6  7", "    7  0"].join("\n"),
  );
  // CSV keeps every row.
  assert.equal(formatCsv(t).split("\n").length, 8);
});

Deno.test("formatTable() splits a table wider than the limit into blocks that repeat the first column", () => {
  const t: Table = {
    columns: [{ name: "key" }, ...["a", "b", "c"].map((name) => ({ name, kind: "count" as const }))],
    rows: [["k1", 111111, 222222, 333333]],
  };
  const text = formatTable(t, { maxWidth: 20 });
  assert.equal(
    text,
    ["key  a       b", "---  ------  ------", "k1   111111  222222", "", "key  c", "---  ------", "k1   333333"]
      .join("\n"),
  );
  assert.ok(text.split("\n").every((l) => l.length <= 20));
  // A column left out of text output is still in CSV.
  const hidden: Table = { ...t, columns: t.columns.map((c) => (c.name === "b" ? { ...c, textName: false } : c)) };
  assert.equal(formatTable(hidden).split("\n")[0], "key  a       c");
  assert.equal(formatCsv(hidden).split("\n")[0], "key,a,b,c");
});

Deno.test("formatCsv() quotes per RFC 4180 and rounds by kind", () => {
  const t: Table = {
    columns: [{ name: "name" }, { name: "ms", kind: "ms" }, { name: "rate", kind: "rate" }, {
      name: "t",
      kind: "time",
    }],
    rows: [["a,b", 0.015379999997094274, 0.123456, 0], ['say "hi"', 1, null, 1790000000000]],
  };
  assert.equal(
    formatCsv(t),
    [
      "name,ms,rate,t",
      '"a,b",0.015,0.1235,1970-01-01T00:00:00.000Z',
      '"say ""hi""",1,,2026-09-21T14:13:20.000Z',
    ].join("\n"),
  );
});

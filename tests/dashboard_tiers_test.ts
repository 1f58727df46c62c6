/**
 * The dashboard's tiers panel in headless Chromium: hidden while only two tiers served, and with decisions that
 * climbed past tier 1 in the window, one row per tier with its calls, share, agreement and price (from
 * `GET /v1/stats`'s `tiers`). Ignored, with the reason, where no Chromium runs.
 */
import assert from "node:assert/strict";
import { insertDecisions } from "../db/queries.ts";
import type { DecisionTierRecord } from "../db/schema.ts";
import { testApp, TOKEN } from "./analytics_app.ts";
import { sleep } from "./fixtures/wait.ts";
import { decision } from "./fixtures/db_records.ts";
import { tierRecord } from "./fixtures/tier_records.ts";

const CHROMIUM = "/usr/bin/chromium";
let reason = "";
try {
  Deno.statSync(CHROMIUM);
} catch {
  reason = `no Chromium at ${CHROMIUM}`;
}
if (reason) console.warn(`dashboard tiers test ignored: ${reason}`);

/** A row of tier `index` named `name` answering `label` (a: 0.9), a minute ago. */
function tier(id: string, index: number, name: string, label: "a" | "b", extra: Partial<DecisionTierRecord> = {}) {
  return tierRecord(id, index, label === "a" ? [0.9, 0.05, 0.05] : [0.05, 0.9, 0.05], {
    tierName: name,
    createdAt: Date.now() - 60_000,
    price: name === "vlm" ? 0.5 : null,
    ...extra,
  });
}

Deno.test({
  name: "dashboard: the tiers panel shows each tier past the edge, and hides with two tiers",
  ignore: reason !== "",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const t = await testApp();
    const { chromium } = await import("playwright-core");
    const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, t.app.fetch);
    const login = async () => {
      const page = await browser.newPage();
      await page.goto(`http://127.0.0.1:${server.addr.port}/dashboard`);
      await page.fill("#token", TOKEN);
      await page.click("#login button[type=submit]");
      await page.waitForFunction(
        () =>
          (globalThis as unknown as Window & { dmdDashboard: { refreshes: number } })
            .dmdDashboard.refreshes >= 1,
        undefined,
        { timeout: 15_000 },
      );
      return page;
    };
    try {
      const two = await login();
      assert.equal(await two.isVisible("#tiers-panel"), false, "two tiers: no panel");
      await two.close();

      const createdAt = Date.now() - 60_000;
      const a = decision({ createdAt, route: "cloud" });
      const b = decision({ createdAt, route: "cloud" });
      await insertDecisions(t.database.db, [
        {
          ...a,
          tiers: [
            tier(a.id, 1, "cloud", "a", { next: "escalated" }),
            tier(a.id, 2, "vlm", "a", { answered: true }),
          ],
        },
        { ...b, tiers: [tier(b.id, 1, "cloud", "b", { answered: true, next: "kept" })] },
      ]);
      // GET /v1/stats reuses a report for 2 s.
      await sleep(2500);
      const three = await login();
      assert.equal(await three.isVisible("#tiers-panel"), true);
      const rows = await three.$$eval(
        "#tiers tbody tr",
        (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)),
      );
      assert.deepEqual(rows.map((r) => [r[0], r[1], r[3], r[4], r[5], r[9]]), [
        ["1: cloud", "2", "1", "50.0%", "–", "0"],
        ["2: vlm", "1", "1", "50.0%", "100.0%", "0.5"],
      ]);
      await three.close();
    } finally {
      await server.shutdown();
      await browser.close();
      t.close();
    }
  },
});

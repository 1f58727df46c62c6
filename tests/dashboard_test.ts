/**
 * `GET /dashboard` in headless Chromium (Debian's `chromium`, driven by `playwright-core`): on a seeded database
 * the page asks for the token, draws its four charts with data, fills the tables, refreshes on its own, refuses a
 * wrong token, and raises no script or CSP error; a screenshot goes to `build/screenshots/dashboard.png`.
 *
 * When no Chromium is installed or it cannot start, the browser test is ignored with the reason printed (CI
 * installs it: `.ci/run`). The static-file checks run everywhere.
 */
import assert from "node:assert/strict";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { insertDecisions } from "../db/queries.ts";
import { syntheticDecisions } from "../scripts/seed_decisions.ts";
import { testApp, TOKEN } from "./analytics_app.ts";

const CANDIDATES = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome", "/usr/bin/chrome"];
const SCREENSHOT = fileURLToPath(new URL("../build/screenshots/dashboard.png", import.meta.url));

/** The Chromium to drive, or why there is none. */
async function findChromium(): Promise<{ path: string } | { reason: string }> {
  const path = CANDIDATES.find((p) => {
    try {
      return Deno.statSync(p).isFile;
    } catch {
      return false;
    }
  });
  if (!path) return { reason: `no Chromium at ${CANDIDATES.join(", ")} (apt-get install chromium)` };
  try {
    const { chromium } = await import("playwright-core");
    const browser = await chromium.launch({ executablePath: path, headless: true, timeout: 30_000 });
    await browser.close();
    return { path };
  } catch (err) {
    return { reason: `Chromium at ${path} did not start: ${(err as Error).message.split("\n")[0]}` };
  }
}

/** The little of the DOM the browser-side callbacks use (this module is type-checked without the DOM library). */
interface Page {
  document: {
    getElementById(id: string): {
      textContent: string | null;
      dataset: Record<string, string>;
      querySelector(selector: string): {
        width: number;
        height: number;
        getContext(
          kind: "2d",
        ): { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } };
      } | null;
    };
  };
  dmdDashboard: { refreshes: number; report: { summary: { decisions: number } } };
}

const found = await findChromium();
if ("reason" in found) console.warn(`dashboard browser test ignored: ${found.reason}`);

Deno.test("GET /dashboard serves the page, its assets and uPlot with a strict CSP, without the token", async () => {
  const t = await testApp();
  try {
    const page = await t.app.request("/dashboard");
    assert.equal(page.status, 200);
    assert.equal(page.headers.get("content-type"), "text/html; charset=utf-8");
    assert.match(page.headers.get("content-security-policy") ?? "", /script-src 'self';/);
    const html = await page.text();
    assert.match(html, /<script src="\/dashboard\/assets\/uPlot\.iife\.min\.js" defer><\/script>/);
    for (
      const [path, type, size] of [
        ["/dashboard/assets/app.js", "text/javascript; charset=utf-8", 1000],
        ["/dashboard/assets/app.css", "text/css; charset=utf-8", 500],
        ["/dashboard/assets/uPlot.iife.min.js", "text/javascript; charset=utf-8", 50_000],
        ["/dashboard/assets/uPlot.min.css", "text/css; charset=utf-8", 1000],
      ] as const
    ) {
      const res = await t.app.request(path);
      assert.equal(res.status, 200, path);
      assert.equal(res.headers.get("content-type"), type, path);
      assert.ok((await res.arrayBuffer()).byteLength > size, path);
    }
    assert.equal((await t.app.request("/dashboard/assets/../main.ts")).status, 404);
    assert.equal((await t.app.request("/dashboard/assets/secret.js")).status, 404);
  } finally {
    t.close();
  }
});

Deno.test({
  name: "dashboard in headless Chromium: charts drawn with data from a seeded database, tables, refresh, screenshot",
  ignore: "reason" in found,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const { chromium } = await import("playwright-core");
    const dir = await Deno.makeTempDir({ prefix: "dmd_edge_dashboard_" });
    const t = await testApp({ databaseUrl: `file:${dir}/decisions.db` });
    const rows = [...syntheticDecisions({ rows: 3000, endMs: Date.now(), spanMs: 6 * 3600_000, seed: 7 })];
    await insertDecisions(t.database.db, rows);
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, t.app.fetch);
    const url = `http://127.0.0.1:${server.addr.port}`;
    const browser = await chromium.launch({ executablePath: (found as { path: string }).path, headless: true });
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 1700 } });
      const problems: string[] = [];
      page.on("pageerror", (err) => problems.push(`pageerror: ${err.message}`));
      page.on("console", (msg) => {
        if (msg.type() === "error") problems.push(`console: ${msg.text()}`);
      });

      await page.goto(`${url}/dashboard`);
      // A wrong token is refused and the form says so.
      await page.fill("#token", "wrong-token-wrong-token");
      await page.click("#login button[type=submit]");
      // Callbacks, not strings: the page's CSP forbids eval, as it should.
      await page.waitForFunction(() =>
        (globalThis as unknown as Page).document.getElementById("loginError").textContent !== ""
      );
      assert.match(await page.textContent("#loginError") ?? "", /refused/);
      // 401 from the failed attempt is an expected console error of the browser; forget it.
      problems.length = 0;

      await page.fill("#token", TOKEN);
      await page.click("#login button[type=submit]");
      await page.waitForFunction(
        () => {
          const g = globalThis as unknown as Page;
          return g.dmdDashboard.refreshes >= 1 && Number(g.document.getElementById("chart-rates").dataset.points) > 0;
        },
        undefined,
        { timeout: 15_000 },
      );

      for (const name of ["rates", "agreement", "latency", "savings"]) {
        const chart = await page.evaluate((id) => {
          const el = (globalThis as unknown as Page).document.getElementById(`chart-${id}`);
          const canvas = el.querySelector("canvas");
          if (!canvas) return null;
          const { data } = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
          let painted = 0;
          for (let i = 3; i < data.length; i += 4) if (data[i] > 0) painted++;
          return { points: Number(el.dataset.points), width: canvas.width, height: canvas.height, painted };
        }, name);
        assert.ok(chart, `chart ${name} has a canvas`);
        assert.ok(chart.points > 0, `chart ${name} has data points`);
        assert.ok(chart.width > 200 && chart.height > 100, `chart ${name} has a size`);
        assert.ok(chart.painted > 500, `chart ${name} painted ${chart.painted} pixels`);
      }
      // The page shows what the database holds: the seeded versions, locations and recent decisions.
      const active = await page.textContent("#active") ?? "";
      assert.match(active, /switcher-test/);
      assert.match(active, /edge-test/);
      assert.equal(await page.getAttribute("#recent", "data-rows"), "25");
      assert.equal(await page.getAttribute("#locations", "data-rows"), "3");
      assert.equal(await page.getAttribute("#latency", "data-rows"), "16");
      const decisions = await page.textContent("#cards .card:first-child .v");
      const report = await page.evaluate(() => (globalThis as unknown as Page).dmdDashboard.report.summary.decisions);
      assert.ok(report > 0 && report <= rows.length);
      assert.equal(decisions, report.toLocaleString("en-US"));
      assert.deepEqual(problems, []);

      // Refreshing on its own: a new decision shows up without a reload.
      await page.selectOption("#refresh", "5");
      const [newest] = [...syntheticDecisions({ rows: 1, endMs: Date.now(), spanMs: 1000, seed: 99 })];
      await insertDecisions(t.database.db, [{ ...newest, requestId: "fresh-request-42" }]);
      await page.waitForFunction(
        () =>
          ((globalThis as unknown as Page).document.getElementById("recent").textContent ?? "").includes(
            "fresh-request-42",
          ),
        undefined,
        { timeout: 15_000 },
      );

      await Deno.mkdir(dirname(SCREENSHOT), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      const shot = await Deno.stat(SCREENSHOT);
      assert.ok(shot.size > 20_000, `screenshot of ${shot.size} bytes`);
      console.log(`dashboard screenshot: ${SCREENSHOT}`);
      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
      await server.shutdown();
      t.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

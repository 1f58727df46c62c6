/**
 * `GET /dashboard` in headless Chromium (Debian's `chromium`, driven by `playwright-core`), at a desktop (1440 px)
 * and a phone (390 px) width, on the decisions of a real burst of requests through the app: before the token
 * nothing but the form shows, a wrong token is refused, the four charts show the burst in the default 24 h view (in
 * the series' own colours, not just axes), the page points to a shorter window and switches to it, the tables fit
 * their boxes and the page fits the screen, it refreshes on its own and raises no script, CSP or 404 error. A
 * service with no `ADMIN_TOKEN` gets a page that says so. Screenshots go to `build/screenshots/`.
 *
 * When no Chromium is installed or it cannot start, the browser tests are ignored with the reason printed (CI
 * installs it: `.ci/run`). The static-file checks run everywhere.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { insertDecisions } from "../db/queries.ts";
import { syntheticDecisions } from "../scripts/seed_decisions.ts";
import { classifyBody, type TestApp, testApp, TOKEN } from "./analytics_app.ts";
import { sleep, until } from "./fixtures/wait.ts";

const CANDIDATES = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome", "/usr/bin/chrome"];
const SCREENSHOTS = fileURLToPath(new URL("../build/screenshots/", import.meta.url));
const VIEWPORTS = { desktop: { width: 1440, height: 900 }, phone: { width: 390, height: 844 } } as const;
/** Each chart and the colour its data is drawn in (RGB): a chart with only axes and grid has none of it. */
const CHART_COLOURS: Record<string, [number, number, number]> = {
  rates: [0x25, 0x63, 0xeb],
  agreement: [0x15, 0x80, 0x3d],
  latency: [0xea, 0x58, 0x0c],
  savings: [0x67, 0xc5, 0xd9],
};

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
interface Canvas {
  width: number;
  height: number;
  getContext(kind: "2d"): { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } };
}
interface Element {
  textContent: string | null;
  dataset: Record<string, string>;
  scrollWidth: number;
  clientWidth: number;
  firstElementChild: { id: string } | null;
  querySelector(selector: string): Canvas | null;
}
interface Window {
  document: {
    getElementById(id: string): Element;
    querySelectorAll(selector: string): ArrayLike<Element>;
    documentElement: { scrollWidth: number; clientWidth: number };
  };
  dmdDashboard: { refreshes: number; report: { summary: { decisions: number }; query: { bucketMs: number } } };
}

type Browser = Awaited<ReturnType<typeof import("playwright-core").chromium.launch>>;
type Page = Awaited<ReturnType<Browser["newPage"]>>;

/** A page that collects script errors, console errors and failed requests into `problems`. */
async function openPage(browser: Browser, viewport: { width: number; height: number }, problems: string[]) {
  const page = await browser.newPage({ viewport, isMobile: viewport.width < 600 });
  page.on("pageerror", (err) => problems.push(`pageerror: ${err.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error") problems.push(`console: ${msg.text()}`);
  });
  page.on("response", (res) => {
    if (res.status() >= 400) problems.push(`${res.status()} ${new URL(res.url()).pathname}`);
  });
  return page;
}

/** Each chart's number of values and how many canvas pixels have its data colour. */
function measureCharts(page: Page) {
  return page.evaluate((colours) => {
    const out: Record<string, { points: number; dataPixels: number }> = {};
    for (const [name, [r, g, b]] of Object.entries(colours)) {
      const el = (globalThis as unknown as Window).document.getElementById(`chart-${name}`);
      const canvas = el.querySelector("canvas");
      let dataPixels = 0;
      if (canvas) {
        const { data } = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
        for (let i = 0; i < data.length; i += 4) {
          const near = Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b) < 60;
          if (near && data[i + 3] > 200) dataPixels++;
        }
      }
      out[name] = { points: Number(el.dataset.points), dataPixels };
    }
    return out;
  }, CHART_COLOURS);
}

/** The page's width against the viewport's, and every table box whose table is wider than the box. */
function layout(page: Page) {
  return page.evaluate(() => {
    const d = (globalThis as unknown as Window).document;
    const clipped = Array.from(d.querySelectorAll(".scroll"))
      .filter((box) => box.scrollWidth > box.clientWidth + 1)
      .map((box) => box.firstElementChild?.id ?? "?");
    return { pageWidth: d.documentElement.scrollWidth, viewWidth: d.documentElement.clientWidth, clipped };
  });
}

/** A burst of classify requests over HTTP, a fifth of them with the cloud route forced; waits until all are stored. */
async function burst(t: TestApp, url: string, requests: number): Promise<void> {
  const before = t.rows.length;
  for (let wave = 0; wave < requests / 10; wave++) {
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) =>
      fetch(`${url}/v1/classify`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: classifyBody(i % 5 === 0 ? { route: "cloud" } : {}),
      }).then(async (res) => {
        await res.body?.cancel();
        return res.status;
      })));
    assert.deepEqual(new Set(answers), new Set([200]));
    await sleep(50);
  }
  await until(async () => {
    const res = await t.app.request("/v1/stats?from=1h&bucket=1m", { headers: { authorization: `Bearer ${TOKEN}` } });
    return res.ok && (await res.json()).summary.decisions === before + requests;
  });
}

async function shoot(page: Page, name: string): Promise<void> {
  await Deno.mkdir(SCREENSHOTS, { recursive: true });
  const path = `${SCREENSHOTS}${name}.png`;
  await page.screenshot({ path, fullPage: true });
  const shot = await Deno.stat(path);
  assert.ok(shot.size > 5_000, `screenshot ${name} of ${shot.size} bytes`);
  console.log(`dashboard screenshot: ${path}`);
}

/** Serve the app on a loopback port, launch Chromium, run `fn`, and close both. */
async function inBrowser(t: TestApp, fn: (browser: Browser, url: string) => Promise<void>): Promise<void> {
  const { chromium } = await import("playwright-core");
  const browser = await chromium.launch({ executablePath: (found as { path: string }).path, headless: true });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, t.app.fetch);
  try {
    await fn(browser, `http://127.0.0.1:${server.addr.port}`);
  } finally {
    await server.shutdown();
    await browser.close();
  }
}

/** Open the dashboard and wait for `view` to show; the other views must be hidden (not just empty). */
async function openDashboard(page: Page, url: string, view: "#login" | "#noToken"): Promise<void> {
  await page.goto(`${url}/dashboard`);
  await page.waitForSelector(view, { state: "visible" });
  for (const other of ["#login", "#noToken", "#controls", "#main"].filter((id) => id !== view)) {
    assert.equal(await page.isVisible(other), false, `${other} shows beside ${view}`);
  }
}

const found = await findChromium();
if ("reason" in found) console.warn(`dashboard browser test ignored: ${found.reason}`);

Deno.test("GET /dashboard serves the page, its assets, uPlot and /favicon.ico with a strict CSP, without the token", async () => {
  const t = await testApp();
  try {
    const page = await t.app.request("/dashboard");
    assert.equal(page.status, 200);
    assert.equal(page.headers.get("content-type"), "text/html; charset=utf-8");
    assert.match(page.headers.get("content-security-policy") ?? "", /script-src 'self';/);
    const html = await page.text();
    assert.match(html, /<script src="\/dashboard\/assets\/uPlot\.iife\.min\.js" defer><\/script>/);
    assert.match(html, /<body>/, "a service with a token gets the login form");
    for (
      const [path, type, size] of [
        ["/dashboard/assets/app.js", "text/javascript; charset=utf-8", 1000],
        ["/dashboard/assets/app.css", "text/css; charset=utf-8", 500],
        ["/dashboard/assets/uPlot.iife.min.js", "text/javascript; charset=utf-8", 50_000],
        ["/dashboard/assets/uPlot.min.css", "text/css; charset=utf-8", 1000],
        ["/favicon.ico", "image/x-icon", 100],
      ] as const
    ) {
      const res = await t.app.request(path);
      assert.equal(res.status, 200, path);
      assert.equal(res.headers.get("content-type"), type, path);
      const bytes = new Uint8Array(await res.arrayBuffer());
      assert.ok(bytes.byteLength > size, path);
      // An ICO header: reserved 0, type 1 (icon).
      if (path === "/favicon.ico") assert.deepEqual([...bytes.subarray(0, 4)], [0, 0, 1, 0]);
    }
    assert.equal((await t.app.request("/dashboard/assets/../main.ts")).status, 404);
    assert.equal((await t.app.request("/dashboard/assets/secret.js")).status, 404);
  } finally {
    t.close();
  }
  const open = await testApp({ adminToken: null });
  try {
    assert.match(await (await open.app.request("/dashboard")).text(), /<body data-admin-token="none">/);
  } finally {
    open.close();
  }
});

Deno.test({
  name: "dashboard in headless Chromium at 1440 and 390 px: a first burst of requests shows in every chart, " +
    "nothing shows before the token, tables and page fit, refresh, screenshots",
  ignore: "reason" in found,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "dmd_edge_dashboard_" });
    const t = await testApp({ databaseUrl: `file:${dir}/decisions.db` });
    try {
      await inBrowser(t, async (browser, url) => {
        await burst(t, url, 60);
        for (const [name, viewport] of Object.entries(VIEWPORTS)) {
          const problems: string[] = [];
          const page = await openPage(browser, viewport, problems);
          // Before the token: the form, and no controls, charts or empty frames.
          await openDashboard(page, url, "#login");
          await shoot(page, `dashboard-${name}-login`);

          // A wrong token is refused and the form says so.
          await page.fill("#token", "wrong-token-wrong-token");
          await page.click("#login button[type=submit]");
          // Callbacks, not strings: the page's CSP forbids eval, as it should.
          await page.waitForFunction(() =>
            (globalThis as unknown as Window).document.getElementById("loginError").textContent !== ""
          );
          assert.match(await page.textContent("#loginError") ?? "", /refused this token/);
          // The 401 of that attempt is expected: forget it and what the browser logged about it.
          problems.length = 0;

          await page.fill("#token", TOKEN);
          await page.click("#login button[type=submit]");
          await page.waitForFunction(() => (globalThis as unknown as Window).dmdDashboard.refreshes >= 1, undefined, {
            timeout: 15_000,
          });
          assert.equal(await page.isVisible("#controls"), true);
          assert.equal(await page.inputValue("#window"), "24h");

          // The default 24 h view: the burst is in one or two of ~96 buckets, and every chart shows it.
          const charts = await measureCharts(page);
          for (const [chart, m] of Object.entries(charts)) {
            assert.ok(m.points > 0, `${name} 24h: chart ${chart} has values`);
            assert.ok(m.dataPixels >= 20, `${name} 24h: chart ${chart} shows its data (${m.dataPixels} pixels)`);
          }
          const decisions = await page.textContent("#cards .card:first-child .v");
          assert.equal(decisions, "60");
          assert.match(await page.textContent("#active") ?? "", /switcher-test/);
          assert.equal(await page.getAttribute("#recent", "data-rows"), "25");
          await shoot(page, `dashboard-${name}-24h`);
          assert.deepEqual(await layout(page), { pageWidth: viewport.width, viewWidth: viewport.width, clipped: [] });
          // The page says the burst is crowded into a few buckets and offers a shorter window.
          const note = await page.textContent("#note") ?? "";
          assert.match(note, /All 60 decisions of this window fall in [12] of its \d+ buckets of 15 min/);

          const refreshes = await page.evaluate(() => (globalThis as unknown as Window).dmdDashboard.refreshes);
          await page.click("#note button");
          await page.waitForFunction((n) => (globalThis as unknown as Window).dmdDashboard.refreshes > n, refreshes);
          assert.ok(["15m", "1h"].includes(await page.inputValue("#window")));
          assert.ok(
            await page.evaluate(() => (globalThis as unknown as Window).dmdDashboard.report.query.bucketMs) <= 60_000,
          );
          for (const [chart, m] of Object.entries(await measureCharts(page))) {
            assert.ok(m.dataPixels >= 20, `${name} short window: chart ${chart} shows its data (${m.dataPixels})`);
          }
          await shoot(page, `dashboard-${name}-short`);
          assert.deepEqual((await layout(page)).clipped, []);
          assert.deepEqual(problems, []);
          await page.close();
        }

        // Refreshing on its own: a new decision shows up without a reload.
        const problems: string[] = [];
        const page = await openPage(browser, VIEWPORTS.desktop, problems);
        await page.goto(`${url}/dashboard`);
        await page.fill("#token", TOKEN);
        await page.click("#login button[type=submit]");
        await page.waitForFunction(() => (globalThis as unknown as Window).dmdDashboard.refreshes >= 1);
        await page.selectOption("#refresh", "5");
        const [newest] = [...syntheticDecisions({ rows: 1, endMs: Date.now(), spanMs: 1000, seed: 99 })];
        await insertDecisions(t.database.db, [{ ...newest, requestId: "fresh-request-42" }]);
        // The table shows the start of long request ids and the whole id as the cell's tooltip.
        await page.waitForSelector('#recent td[title="fresh-request-42"]', { timeout: 15_000 });

        // A busy day: six hours of logged traffic from three switcher versions and edge locations draw lines.
        const rows = [...syntheticDecisions({ rows: 3000, endMs: Date.now(), spanMs: 6 * 3600_000, seed: 7 })];
        await insertDecisions(t.database.db, rows);
        await page.selectOption("#window", "6h");
        await page.waitForFunction(() =>
          (globalThis as unknown as Window).dmdDashboard.report.summary.decisions > 3000
        );
        for (const [chart, m] of Object.entries(await measureCharts(page))) {
          assert.ok(m.points > 60, `6h: chart ${chart} has values`);
          assert.ok(m.dataPixels >= 200, `6h: chart ${chart} shows its data (${m.dataPixels} pixels)`);
        }
        assert.equal(await page.isVisible("#note"), false);
        assert.equal(await page.getAttribute("#locations", "data-rows"), "4");
        await shoot(page, "dashboard-desktop-6h-seeded");
        assert.deepEqual(await layout(page), { pageWidth: 1440, viewWidth: 1440, clipped: [] });
        assert.deepEqual(problems, []);
      });
    } finally {
      t.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "dashboard in headless Chromium: a service with no ADMIN_TOKEN says so instead of asking for a token",
  ignore: "reason" in found,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const t = await testApp({ adminToken: null });
    try {
      await inBrowser(t, async (browser, url) => {
        for (const [name, viewport] of Object.entries(VIEWPORTS)) {
          const problems: string[] = [];
          const page = await openPage(browser, viewport, problems);
          await openDashboard(page, url, "#noToken");
          assert.match(await page.textContent("#noToken") ?? "", /started without ADMIN_TOKEN/);
          assert.match(await page.textContent("#status") ?? "", /no ADMIN_TOKEN/);
          assert.equal((await layout(page)).pageWidth, viewport.width);
          await shoot(page, `dashboard-${name}-no-token`);
          assert.deepEqual(problems, []);
          await page.close();
        }
      });
    } finally {
      t.close();
    }
  },
});

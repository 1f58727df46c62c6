/**
 * `GET /dashboard`: the operators' dashboard, static files from `dashboard/` served as they are (no build step):
 * the page, its script and stylesheet, and uPlot (vendored in `dashboard/vendor/`, MIT licence beside it).
 *
 * The page holds no data: it asks for the admin token, keeps it in the tab's `sessionStorage` (not in the URL, so
 * it never reaches logs, history or `Referer`), and calls `GET /v1/stats` with it as a bearer header. A strict
 * Content-Security-Policy allows scripts from this origin only.
 *
 * @module
 */
import { Hono } from "hono";
import { AppError } from "../errors.ts";

/** The files served, by URL path under `/dashboard`: file under `dashboard/` and content type. */
const FILES: Record<string, { file: string; type: string }> = {
  "/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/assets/app.js": { file: "app.js", type: "text/javascript; charset=utf-8" },
  "/assets/app.css": { file: "app.css", type: "text/css; charset=utf-8" },
  "/assets/uPlot.iife.min.js": { file: "vendor/uPlot.iife.min.js", type: "text/javascript; charset=utf-8" },
  "/assets/uPlot.min.css": { file: "vendor/uPlot.min.css", type: "text/css; charset=utf-8" },
};

/** uPlot sets element styles from script, hence `'unsafe-inline'` for styles only. */
const CSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
  "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** The folder beside the source tree's `routes/`, or beside the bundle in `dist/`. */
function defaultRoot(): URL {
  return new URL(import.meta.url.endsWith(".js") ? "./dashboard/" : "../dashboard/", import.meta.url);
}

/**
 * The dashboard sub-app, mounted at `/dashboard`.
 *
 * @param options `root`, the folder holding the files (default: `dashboard/` beside the sources)
 * @returns the sub-app
 */
export function dashboardRoutes(options: { root?: URL } = {}): Hono {
  const root = options.root ?? defaultRoot();
  const cache = new Map<string, Uint8Array>();
  const app = new Hono();
  const serve = (path: string) => async (c: import("hono").Context) => {
    const entry = FILES[path];
    let bytes = cache.get(path);
    if (!bytes) {
      try {
        bytes = await Deno.readFile(new URL(entry.file, root));
      } catch (err) {
        throw new AppError("NOT_FOUND", `Cannot serve the dashboard: ${entry.file} is missing`, { cause: err });
      }
      cache.set(path, bytes);
    }
    return c.body(bytes as Uint8Array<ArrayBuffer>, 200, {
      "Content-Type": entry.type,
      "Content-Security-Policy": CSP,
      "Cache-Control": "no-cache",
    });
  };
  for (const path of Object.keys(FILES)) app.get(path, serve(path));
  return app;
}

/**
 * `GET /dashboard`: the operators' dashboard, static files from `dashboard/` served as they are (no build step):
 * the page, its script and stylesheet, uPlot (vendored in `dashboard/vendor/`, MIT licence beside it), and the
 * service's icon at `GET /favicon.ico` (a 32 x 32 PNG in an ICO container, so that browsers asking for it on any
 * page get an answer instead of a 404).
 *
 * The page holds no data: it asks for the admin token, keeps it in the tab's `sessionStorage` (not in the URL, so
 * it never reaches logs, history or `Referer`), and calls `GET /v1/stats` with it as a bearer header. When the
 * service has no `ADMIN_TOKEN`, the page is served with `data-admin-token="none"` on `<body>` and says so instead of
 * asking for a token that nothing could accept. A strict Content-Security-Policy allows scripts from this origin only.
 *
 * @module
 */
import { type Context, Hono } from "hono";
import { AppError } from "../errors.ts";

/** The files served, by URL path: file under `dashboard/` and content type. */
const FILES: Record<string, { file: string; type: string }> = {
  "/dashboard": { file: "index.html", type: "text/html; charset=utf-8" },
  "/dashboard/assets/app.js": { file: "app.js", type: "text/javascript; charset=utf-8" },
  "/dashboard/assets/app.css": { file: "app.css", type: "text/css; charset=utf-8" },
  "/dashboard/assets/uPlot.iife.min.js": { file: "vendor/uPlot.iife.min.js", type: "text/javascript; charset=utf-8" },
  "/dashboard/assets/uPlot.min.css": { file: "vendor/uPlot.min.css", type: "text/css; charset=utf-8" },
  "/favicon.ico": { file: "favicon.ico", type: "image/x-icon" },
};

/** uPlot sets element styles from script, hence `'unsafe-inline'` for styles only. */
const CSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
  "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** The folder beside the source tree's `routes/`, or beside the bundle in `dist/`. */
function defaultRoot(): URL {
  return new URL(import.meta.url.endsWith(".js") ? "./dashboard/" : "../dashboard/", import.meta.url);
}

/** Options of {@link dashboardRoutes}. */
export interface DashboardOptions {
  /** The folder holding the files. @default `dashboard/` beside the sources (or the bundle) */
  root?: URL;
  /** Whether the service has an `ADMIN_TOKEN`; without one the page explains how to set it. @default true */
  adminTokenSet?: boolean;
}

/**
 * The dashboard sub-app, mounted at the root: it answers `/dashboard`, `/dashboard/assets/*` and `/favicon.ico`.
 *
 * @param options the files' folder and whether an admin token is configured
 * @returns the sub-app
 * @example
 * app.route("/", dashboardRoutes({ adminTokenSet: config.adminToken !== undefined }));
 */
export function dashboardRoutes(options: DashboardOptions = {}): Hono {
  const root = options.root ?? defaultRoot();
  const adminTokenSet = options.adminTokenSet ?? true;
  const cache = new Map<string, Uint8Array>();
  const app = new Hono();
  const load = async (path: string): Promise<Uint8Array> => {
    const cached = cache.get(path);
    if (cached) return cached;
    const { file } = FILES[path];
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(new URL(file, root));
    } catch (err) {
      throw new AppError("NOT_FOUND", `Cannot serve the dashboard: ${file} is missing`, { cause: err });
    }
    if (file === "index.html" && !adminTokenSet) {
      const html = new TextDecoder().decode(bytes).replace("<body>", '<body data-admin-token="none">');
      bytes = new TextEncoder().encode(html);
    }
    cache.set(path, bytes);
    return bytes;
  };
  const serve = (path: string) => async (c: Context) => {
    const bytes = await load(path);
    return c.body(bytes as Uint8Array<ArrayBuffer>, 200, {
      "Content-Type": FILES[path].type,
      "Content-Security-Policy": CSP,
      "Cache-Control": path === "/favicon.ico" ? "public, max-age=86400" : "no-cache",
    });
  };
  for (const path of Object.keys(FILES)) app.get(path, serve(path));
  return app;
}

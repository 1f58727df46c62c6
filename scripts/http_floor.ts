/**
 * The HTTP floor for `deno task bench`: a bare `Deno.serve` on loopback that reads the request body, parses it as JSON
 * and answers a small JSON object. It does the least any JSON endpoint must do in this runtime, so the bench can set
 * the service's HTTP thread against it: what is Deno's own, what is the service's (routing, checks, the answer, the
 * decision log's hand-off, metrics, the connection guard's relay). Nothing in the service uses it.
 *
 *     deno run --allow-net --allow-env scripts/http_floor.ts
 *     # prints {"msg":"http floor listening","url":"http://127.0.0.1:PORT"}; PORT picks the port (default: any free)
 *
 * @module
 */
const ANSWER = JSON.stringify({ label: "floor", confidence: 1, route: "edge" });

const server = Deno.serve({
  hostname: "127.0.0.1",
  port: Number(Deno.env.get("PORT") ?? 0),
  onListen: ({ port }) => console.log(JSON.stringify({ msg: "http floor listening", url: `http://127.0.0.1:${port}` })),
}, async (req) => {
  if (req.method === "POST") {
    try {
      JSON.parse(await req.text());
    } catch {
      return Response.json({ code: "INVALID_INPUT", message: "Cannot parse request body: malformed JSON" }, {
        status: 400,
      });
    }
  }
  return new Response(ANSWER, { headers: { "content-type": "application/json" } });
});

Deno.addSignalListener("SIGTERM", () => server.shutdown());
await server.finished;

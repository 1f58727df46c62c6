/**
 * A lean HTTP/1.1 client for the benchmark's load generator: one keep-alive TCP connection, a request written from
 * bytes built once, the response read into a reused buffer. `fetch` spends about a quarter of a millisecond of CPU per
 * request (headers objects, streams, promises); on a machine whose cores the load generator shares with the service
 * it measures, that CPU is taken from the service. This client spends a small fraction of it (see
 * `deno task bench`'s "load generator" row, and `--client fetch` for the comparison).
 *
 * Plain `http:` only; the response may carry Content-Length or chunked transfer coding; a connection the server
 * closes (`Connection: close`, or closed between requests) is reopened for the next request.
 *
 * @module
 */

const CRLF2 = [13, 10, 13, 10];
const latin1 = new TextDecoder("latin1");
const utf8 = new TextEncoder();

/** A response: its status, the raw header block (lower-cased names) and its body. */
export interface Http1Response {
  status: number;
  headers: Map<string, string>;
  body: Uint8Array;
}

/**
 * The bytes of one request, built once and sent as often as asked.
 *
 * @param url the target (http: only)
 * @param options method, headers and body
 * @returns the request bytes
 */
export function buildRequest(
  url: URL,
  options: { method?: string; headers?: Record<string, string>; body?: Uint8Array | string | null } = {},
): Uint8Array {
  if (url.protocol !== "http:") throw new Error(`Cannot build a request: only http: URLs, got ${url.protocol}`);
  const body = typeof options.body === "string" ? utf8.encode(options.body) : options.body ?? null;
  const method = options.method ?? (body === null ? "GET" : "POST");
  let head = `${method} ${url.pathname}${url.search} HTTP/1.1\r\nhost: ${url.host}\r\nconnection: keep-alive\r\n`;
  for (const [k, v] of Object.entries(options.headers ?? {})) {
    if (/[\r\n]/.test(k + v)) throw new Error(`Cannot build a request: header ${k} holds a line break`);
    head += `${k}: ${v}\r\n`;
  }
  if (body !== null) head += `content-length: ${body.byteLength}\r\n`;
  const headBytes = utf8.encode(`${head}\r\n`);
  const out = new Uint8Array(headBytes.byteLength + (body?.byteLength ?? 0));
  out.set(headBytes);
  if (body !== null) out.set(body, headBytes.byteLength);
  return out;
}

/** One keep-alive connection to one host. Not for concurrent use: one request at a time. */
export class Http1Connection {
  #conn: Deno.TcpConn | null = null;
  #buf = new Uint8Array(64 * 1024);
  /** Unread bytes are #buf[#start, #end). */
  #start = 0;
  #end = 0;

  constructor(readonly hostname: string, readonly port: number) {}

  /**
   * Send one request and read its whole response. A kept-alive connection found closed before any byte of the
   * response (end of stream, broken pipe, reset: the server closed it between requests) is reopened and the request
   * sent once more.
   *
   * @param request bytes from {@link buildRequest}
   * @returns the response
   */
  async request(request: Uint8Array): Promise<Http1Response> {
    const reused = this.#conn !== null;
    try {
      return await this.#exchange(request);
    } catch (err) {
      this.close();
      const stale = err instanceof ClosedBeforeResponse || err instanceof Deno.errors.BrokenPipe ||
        err instanceof Deno.errors.ConnectionReset;
      if (reused && stale) return await this.#exchange(request);
      throw err;
    }
  }

  /** Close the connection (the next request opens a new one). */
  close(): void {
    try {
      this.#conn?.close();
    } catch { /* already closed */ }
    this.#conn = null;
    this.#start = this.#end = 0;
  }

  async #exchange(request: Uint8Array): Promise<Http1Response> {
    this.#conn ??= await Deno.connect({ hostname: this.hostname, port: this.port });
    for (let off = 0; off < request.byteLength;) off += await this.#conn.write(request.subarray(off));
    const headEnd = await this.#readUntilHeadEnd();
    const head = latin1.decode(this.#buf.subarray(this.#start, headEnd));
    this.#start = headEnd + 4;
    const lines = head.split("\r\n");
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
    if (!status) throw new Error(`Cannot read the response: bad status line ${JSON.stringify(lines[0])}`);
    const headers = new Map<string, string>();
    for (const line of lines.slice(1)) {
      const at = line.indexOf(":");
      if (at > 0) headers.set(line.slice(0, at).trim().toLowerCase(), line.slice(at + 1).trim());
    }
    let body: Uint8Array;
    if (/chunked/i.test(headers.get("transfer-encoding") ?? "")) body = await this.#readChunked();
    else body = await this.#readExactly(Number(headers.get("content-length") ?? "0"));
    if (/close/i.test(headers.get("connection") ?? "")) this.close();
    return { status: Number(status[1]), headers, body };
  }

  /** Read more bytes into the buffer (compacting or growing it first); false at the end of the stream. */
  async #fill(): Promise<boolean> {
    if (this.#end === this.#buf.byteLength) {
      const live = this.#end - this.#start;
      if (live > this.#buf.byteLength / 2) {
        const next = new Uint8Array(this.#buf.byteLength * 2);
        next.set(this.#buf.subarray(this.#start, this.#end));
        this.#buf = next;
      } else this.#buf.copyWithin(0, this.#start, this.#end);
      this.#start = 0;
      this.#end = live;
    }
    const n = await this.#conn!.read(this.#buf.subarray(this.#end));
    if (n === null) return false;
    this.#end += n;
    return true;
  }

  /** The index of the CRLFCRLF that ends the response head, reading as needed. */
  async #readUntilHeadEnd(): Promise<number> {
    let scanned = 0; // bytes after #start already searched
    for (;;) {
      for (let i = this.#start + scanned; i + 3 < this.#end; i++) {
        if (
          this.#buf[i] === CRLF2[0] && this.#buf[i + 1] === CRLF2[1] && this.#buf[i + 2] === CRLF2[2] &&
          this.#buf[i + 3] === CRLF2[3]
        ) return i;
      }
      const live = this.#end - this.#start;
      scanned = Math.max(0, live - 3);
      if (!(await this.#fill())) {
        if (live === 0) throw new ClosedBeforeResponse();
        throw new Error("Cannot read the response: the connection closed inside its header");
      }
    }
  }

  async #readExactly(n: number): Promise<Uint8Array> {
    if (!(Number.isInteger(n) && n >= 0)) throw new Error(`Cannot read the response: bad content-length ${n}`);
    while (this.#end - this.#start < n) {
      if (!(await this.#fill())) throw new Error("Cannot read the response: the connection closed inside its body");
    }
    const out = this.#buf.slice(this.#start, this.#start + n);
    this.#start += n;
    return out;
  }

  async #readLine(): Promise<string> {
    for (;;) {
      for (let i = this.#start; i + 1 < this.#end; i++) {
        if (this.#buf[i] === 13 && this.#buf[i + 1] === 10) {
          const line = latin1.decode(this.#buf.subarray(this.#start, i));
          this.#start = i + 2;
          return line;
        }
      }
      if (!(await this.#fill())) throw new Error("Cannot read the response: the connection closed inside a chunk");
    }
  }

  async #readChunked(): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const size = parseInt((await this.#readLine()).split(";")[0], 16);
      if (!(size >= 0)) throw new Error("Cannot read the response: bad chunk size");
      if (size === 0) {
        while ((await this.#readLine()) !== "") { /* trailers */ }
        break;
      }
      parts.push(await this.#readExactly(size));
      total += size;
      await this.#readExactly(2); // the chunk's CRLF
    }
    const out = new Uint8Array(total);
    let off = 0;
    for (const p of parts) out.set(p, (off += p.byteLength) - p.byteLength);
    return out;
  }
}

/** The server closed a reused connection before answering: the request may be sent again. */
class ClosedBeforeResponse extends Error {
  constructor() {
    super("the connection closed before the response");
  }
}

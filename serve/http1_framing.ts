/**
 * HTTP/1.1 message framing (RFC 9112 §2, §6, §7), tracked byte by byte on a stream: where each message's head ends,
 * how long its body is (`Content-Length`, or chunked with chunk-size lines and trailers), where the next message
 * starts. Bodies pass through untouched and are never buffered; only a head is held until its blank line arrives.
 * Pure: bytes in, bytes and counts out (the connection guard, serve/conn_guard.ts, does the I/O and the timers).
 *
 * States of a stream: idle (between messages) -> head (a head's bytes arrive, up to a size limit) -> body (by
 * length, or chunk-size -> chunk-data -> chunk-end ... -> trailers) -> idle; `opaque` once the stream stops being
 * HTTP/1 messages (a `101` switch, a close-delimited response); `failed` after a rejected request (nothing more is
 * read).
 *
 * @module
 */

/** Where a stream is. */
export type FramingPhase =
  | "idle"
  | "head"
  | "length"
  | "chunk-size"
  | "chunk-data"
  | "chunk-end"
  | "trailers"
  | "opaque"
  | "failed";

/** A request the guard answers itself, then closes: bad framing (400), a head too large (431), HTTP/2 or 0.9 (505). */
export interface FramingRejection {
  status: 400 | 431 | 505;
  message: string;
}

/** A header field of a head, with its byte offsets in the head (its line, line ending included). */
interface Field {
  name: string;
  value: string;
  start: number;
  end: number;
}

const LF = 10;
const CR = 13;
/** RFC 9110 §5.6.2 token. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) ([^ ]+) HTTP\/(\d)\.(\d)$/;
const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/;
/** 13 hex digits: every chunk size stays an exact number. */
const CHUNK_SIZE = /^[0-9A-Fa-f]{1,13}$/;
const MAX_CHUNK_LINE_BYTES = 4096;
/**
 * Bytes as a string, one char per byte (ISO-8859-1), so that string offsets are byte offsets (the parsing itself needs
 * ASCII only). `String.fromCharCode` on slices: a `TextDecoder` call costs more on heads this small.
 */
function latin1(bytes: Uint8Array): string {
  let text = "";
  for (let at = 0; at < bytes.length; at += 4096) {
    text += String.fromCharCode.apply(null, bytes.subarray(at, at + 4096) as unknown as number[]);
  }
  return text;
}

/** A parsed head: its start line and fields, or why it is not one. */
function parseHead(head: Uint8Array): { startLine: string; fields: Field[] } | string {
  const text = latin1(head);
  const fields: Field[] = [];
  let startLine = "";
  let at = 0;
  for (let first = true;; first = false) {
    const lf = text.indexOf("\n", at);
    let line = text.slice(at, lf);
    if (line.endsWith("\r")) line = line.slice(0, -1);
    if (line.includes("\r")) return "a bare CR in the head";
    if (first) startLine = line;
    else if (line === "") return { startLine, fields };
    else if (line.charCodeAt(0) === 32 || line.charCodeAt(0) === 9) return "a folded header line (obs-fold)";
    else {
      const colon = line.indexOf(":");
      const name = colon > 0 ? line.slice(0, colon) : "";
      if (!TOKEN.test(name)) return `a malformed header line "${line.slice(0, 40)}"`;
      fields.push({ name: name.toLowerCase(), value: line.slice(colon + 1).trim(), start: at, end: lf + 1 });
    }
    at = lf + 1;
  }
}

/** The body of a message by its fields: a length, chunked, or why neither holds (RFC 9112 §6.3). */
function bodyFraming(fields: Field[]): { chunked: boolean; length: number } | string {
  let length = -1;
  let te: string | null = null;
  for (const f of fields) {
    if (f.name === "transfer-encoding") te = te === null ? f.value : `${te}, ${f.value}`;
    else if (f.name === "content-length") {
      for (const v of f.value.split(",")) {
        const s = v.trim();
        const n = /^\d{1,15}$/.test(s) ? Number(s) : NaN;
        if (Number.isNaN(n)) return `an invalid Content-Length "${f.value.slice(0, 40)}"`;
        if (length !== -1 && n !== length) return "conflicting Content-Length values";
        length = n;
      }
    }
  }
  if (te !== null) {
    // Both: a smuggling attempt or a broken proxy; refused (RFC 9112 §6.1 allows it, §11.2 advises it).
    if (length !== -1) return "both Transfer-Encoding and Content-Length";
    const codings = te.split(",").map((c) => c.trim().toLowerCase());
    if (codings.at(-1) !== "chunked" || codings.indexOf("chunked") !== codings.length - 1) {
      return `a Transfer-Encoding that does not end in chunked ("${te.slice(0, 40)}")`;
    }
    return { chunked: true, length: 0 };
  }
  return { chunked: false, length: Math.max(0, length) };
}

/** Index just past a head's blank line in `buf[from, to)` (a LF followed by LF or CR LF), or -1. */
function headEnd(buf: Uint8Array, from: number, to: number): number {
  for (let i = buf.indexOf(LF, from); i !== -1 && i < to; i = buf.indexOf(LF, i + 1)) {
    if (i + 1 < to && buf[i + 1] === LF) return i + 2;
    if (i + 2 < to && buf[i + 1] === CR && buf[i + 2] === LF) return i + 3;
  }
  return -1;
}

/** Options of {@link Http1Framer}. */
export interface FramerOptions {
  /** `request`: a client's stream (validated, heads rewritten); `response`: a server's (trusted, observed). */
  side: "request" | "response";
  /** Largest head (request line and fields), and largest trailer section, in bytes. @default 16384 */
  maxHeadBytes?: number;
  /**
   * Requests only: the field lines to put after the request line of each head, e.g. the peer's address; any field
   * of the same names the client sent is dropped, so that only this side can set them. @default none
   */
  extraFields?: { names: readonly string[]; lines: Uint8Array };
}

/**
 * The framing of one direction of an HTTP/1.1 connection.
 *
 * Requests: each head is checked (request line, field syntax, no obs-fold or bare CR, one body framing) and
 * forwarded once complete, with `extraFields` put in; a bad one makes {@link push} return a rejection and the stream
 * `failed`. Responses: observed only (the server is trusted); a response to HEAD, a 1xx, 204 and 304 have no body,
 * a 1xx (other than 101) is followed by the final response, and a 101, a 2xx to CONNECT or a response without
 * length make the stream `opaque`. {@link Http1Framer.expect} tells the response side which request each answers.
 */
export class Http1Framer {
  /** The state of the stream. */
  phase: FramingPhase = "idle";
  /** Heads begun: the first byte of a message (or the blank lines before one) has arrived. */
  headsStarted = 0;
  /** Heads complete (forwarded, for requests). Responses: final (non-1xx) heads. */
  headsCompleted = 0;
  /** Messages complete, body included. */
  messagesCompleted = 0;
  readonly #side: "request" | "response";
  readonly #maxHeadBytes: number;
  readonly #extra: { names: readonly string[]; lines: Uint8Array } | undefined;
  /** Requests: why the stream failed (the guard answers it and closes); null while it has not. */
  rejection: FramingRejection | null = null;
  /** Request side: the methods of heads complete, for the response side to match (HEAD and CONNECT). */
  readonly methods: string[] = [];
  #expected: string[] = [];
  #head: Uint8Array | null = null;
  #headLength = 0;
  #remaining = 0;
  #line = "";
  #trailerBytes = 0;
  #sawCr = false;

  /** @param options which side, limits, fields to add */
  constructor(options: FramerOptions) {
    this.#side = options.side;
    this.#maxHeadBytes = options.maxHeadBytes ?? 16384;
    this.#extra = options.extraFields;
  }

  /**
   * Response side: the next response answers a request with this method (a response to HEAD has no body).
   *
   * @param method the request's method
   */
  expect(method: string): void {
    this.#expected.push(method);
  }

  /** @returns whether a message has begun and not ended (a head or a body in progress) */
  busy(): boolean {
    return this.phase !== "idle" && this.phase !== "opaque" && this.phase !== "failed";
  }

  /**
   * Read the next bytes of the stream.
   *
   * @param chunk the bytes, in order; not kept (a head's bytes are copied), except as the returned views
   * @returns the bytes to pass on, in order (views of `chunk` and rewritten heads); when the stream fails on the way
   *   (see {@link rejection}), those before the failure
   */
  push(chunk: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    let i = 0;
    /** Start of the bytes of `chunk` passed on as they are. */
    let from = 0;
    while (i < chunk.length) {
      switch (this.phase) {
        case "opaque":
          i = chunk.length;
          break;
        case "failed":
          return out;
        case "idle":
          this.phase = "head";
          this.headsStarted++;
          this.#headLength = 0;
          this.#trailerBytes = 0;
          break;
        case "head": {
          if (from < i) out.push(chunk.subarray(from, i));
          // Blank lines before a request line are skipped (RFC 9112 §2.2); they still count towards the limit.
          if (this.#headLength === 0 && this.#side === "request") {
            const start = i;
            while (i < chunk.length && (chunk[i] === CR || chunk[i] === LF)) i++;
            this.#trailerBytes += i - start;
            if (this.#trailerBytes > this.#maxHeadBytes) {
              this.#fail(431, "blank lines before the request");
              return out;
            }
          }
          from = i;
          if (i === chunk.length) break;
          const read = this.#readHead(chunk, i, out);
          if (!Array.isArray(read)) return out;
          i = from = read[0];
          break;
        }
        case "length": {
          const n = Math.min(this.#remaining, chunk.length - i);
          this.#remaining -= n;
          i += n;
          if (this.#remaining === 0) this.#endMessage();
          break;
        }
        case "chunk-size":
        case "trailers": {
          const lf = chunk.indexOf(LF, i);
          const end = lf === -1 ? chunk.length : lf;
          this.#line += latin1(chunk.subarray(i, end));
          if (this.phase === "trailers") this.#trailerBytes += end - i + 1;
          i = lf === -1 ? chunk.length : lf + 1;
          if (
            this.phase === "chunk-size"
              ? this.#line.length > MAX_CHUNK_LINE_BYTES
              : this.#trailerBytes > this.#maxHeadBytes
          ) {
            this.#fail(this.phase === "trailers" ? 431 : 400, "a chunk line or trailer section over the limit");
            return out;
          }
          if (lf === -1) break;
          const line = this.#line.endsWith("\r") ? this.#line.slice(0, -1) : this.#line;
          this.#line = "";
          if (this.phase === "trailers") {
            if (line === "") this.#endMessage();
            continue;
          }
          const size = line.split(";")[0].trim();
          if (!CHUNK_SIZE.test(size)) {
            this.#fail(400, `a malformed chunk size "${line.slice(0, 40)}"`);
            return out;
          }
          this.#remaining = parseInt(size, 16);
          this.phase = this.#remaining > 0 ? "chunk-data" : "trailers";
          this.#trailerBytes = 0;
          break;
        }
        case "chunk-data": {
          const n = Math.min(this.#remaining, chunk.length - i);
          this.#remaining -= n;
          i += n;
          if (this.#remaining === 0) {
            this.phase = "chunk-end";
            this.#sawCr = false;
          }
          break;
        }
        case "chunk-end": {
          const b = chunk[i++];
          if (b === CR && !this.#sawCr) this.#sawCr = true;
          else if (b === LF) this.phase = "chunk-size";
          else {
            this.#fail(400, "chunk data longer than its size");
            return out;
          }
          break;
        }
      }
    }
    if (from < chunk.length) out.push(from === 0 ? chunk : chunk.subarray(from));
    return out;
  }

  /** The stream is no longer HTTP/1 messages (after a protocol switch); everything passes as it is. */
  goOpaque(): void {
    this.phase = "opaque";
  }

  #fail(status: FramingRejection["status"], what: string): FramingRejection {
    if (this.#side === "response") {
      // A server's stream the framing cannot follow: stop tracking it, pass it on.
      this.phase = "opaque";
      return { status, message: what };
    }
    this.phase = "failed";
    this.rejection = { status, message: `Cannot read request: ${what}` };
    return this.rejection;
  }

  /**
   * Read head bytes from `chunk[i..]`: once the head is complete, pass on the bytes before it and the (rewritten)
   * head, and choose the body's framing.
   *
   * @returns the new read position, or a rejection
   */
  #readHead(chunk: Uint8Array, i: number, out: Uint8Array[]): [number] | FramingRejection {
    let head: Uint8Array;
    let next: number;
    const held = this.#headLength > 0;
    if (!held) {
      const end = headEnd(chunk, i, chunk.length);
      if (end === -1) {
        this.#hold(chunk.subarray(i));
        if (this.#headLength > this.#maxHeadBytes) return this.#fail(431, "a head over the limit");
        return [chunk.length];
      }
      head = chunk.subarray(i, end);
      next = end;
    } else {
      const before = this.#headLength;
      this.#hold(chunk.subarray(i, i + this.#maxHeadBytes + 1 - before));
      const end = headEnd(this.#head!, Math.max(0, before - 2), this.#headLength);
      if (end === -1) {
        if (this.#headLength > this.#maxHeadBytes) return this.#fail(431, "a head over the limit");
        return [chunk.length];
      }
      head = this.#head!.subarray(0, end);
      next = i + end - before;
    }
    this.#headLength = 0;
    if (head.length > this.#maxHeadBytes) return this.#fail(431, "a head over the limit");
    const parsed = parseHead(head);
    if (typeof parsed === "string") return this.#fail(400, parsed);
    const framing = this.#side === "request" ? this.#requestHead(parsed) : this.#responseHead(parsed);
    if (framing) return framing;
    // A held head is copied out: its buffer takes the next head.
    out.push(this.#side === "request" && this.#extra ? this.#rewrite(head, parsed.fields) : held ? head.slice() : head);
    return [next];
  }

  /** Copy head bytes aside until the head is complete (at most the limit, plus one byte to tell it was passed). */
  #hold(bytes: Uint8Array): void {
    const cap = this.#maxHeadBytes + 1;
    this.#head ??= new Uint8Array(cap);
    const n = Math.min(bytes.length, cap - this.#headLength);
    this.#head.set(bytes.subarray(0, n), this.#headLength);
    this.#headLength += n;
  }

  /** A request head: its version and framing. @returns nothing, or a rejection */
  #requestHead(head: { startLine: string; fields: Field[] }): FramingRejection | void {
    const m = REQUEST_LINE.exec(head.startLine);
    if (!m) {
      if (/ HTTP\/2\.0$/.test(head.startLine)) return this.#fail(505, "HTTP/2 is not served on this port");
      return this.#fail(400, `a malformed request line "${head.startLine.slice(0, 60)}"`);
    }
    if (m[3] !== "1") return this.#fail(505, `HTTP/${m[3]}.${m[4]} is not served`);
    const body = bodyFraming(head.fields);
    if (typeof body === "string") return this.#fail(400, body);
    this.headsCompleted++;
    this.methods.push(m[1]);
    this.#startBody(body);
  }

  /** A response head: which request it answers, and its framing. @returns nothing, or a stop of tracking */
  #responseHead(head: { startLine: string; fields: Field[] }): FramingRejection | void {
    const m = STATUS_LINE.exec(head.startLine);
    if (!m) return this.#fail(400, "a malformed status line");
    const status = Number(m[1]);
    if (status === 101) return void this.goOpaque();
    if (status < 200) {
      // 100 Continue and the like: the final response follows.
      this.phase = "idle";
      return;
    }
    const method = this.#expected.shift() ?? "GET";
    this.headsCompleted++;
    if (method === "CONNECT" && status < 300) return void this.goOpaque();
    if (method === "HEAD" || status === 204 || status === 304) return this.#startBody({ chunked: false, length: 0 });
    const body = bodyFraming(head.fields);
    if (typeof body === "string") return this.#fail(400, body);
    if (!body.chunked && !head.fields.some((f) => f.name === "content-length")) {
      // Delimited by the end of the connection.
      return void this.goOpaque();
    }
    this.#startBody(body);
  }

  #startBody(body: { chunked: boolean; length: number }): void {
    if (body.chunked) this.phase = "chunk-size";
    else if (body.length > 0) {
      this.phase = "length";
      this.#remaining = body.length;
    } else this.#endMessage();
    this.#line = "";
  }

  #endMessage(): void {
    this.messagesCompleted++;
    this.phase = "idle";
  }

  /** The head with `extraFields` after the request line, and the client's fields of those names left out. */
  #rewrite(head: Uint8Array, fields: Field[]): Uint8Array {
    const extra = this.#extra!;
    const lineEnd = head.indexOf(LF) + 1;
    const dropped = fields.filter((f) => extra.names.includes(f.name));
    const droppedBytes = dropped.reduce((n, f) => n + f.end - f.start, 0);
    const out = new Uint8Array(head.length + extra.lines.length - droppedBytes);
    out.set(head.subarray(0, lineEnd), 0);
    out.set(extra.lines, lineEnd);
    let at = lineEnd + extra.lines.length;
    let copied = lineEnd;
    for (const f of dropped) {
      out.set(head.subarray(copied, f.start), at);
      at += f.start - copied;
      copied = f.end;
    }
    out.set(head.subarray(copied), at);
    return out;
  }
}

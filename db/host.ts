/**
 * The service's database process: every libSQL call the service makes on a local file runs here, started by
 * `db/hosted_client.ts`. SQLite maps a WAL database's `-shm` into memory, and a write to that mapping
 * after the file became unwritable underneath (e.g. `chattr +i`) ends the process with SIGBUS, which nothing in a
 * process can catch. Here it ends this process only: the service sees the pipe close, fails the calls in flight
 * (the decision log keeps their rows in its outbox), and starts a new database process for the next call.
 *
 * Requests arrive on stdin and replies leave on stdout as frames of `db/host_protocol.ts`; log lines go to stderr.
 * The process lives as long as its stdin is open: it exits when the service closes the pipe or dies (kill -9
 * included), and ignores SIGINT and SIGTERM, so that a Ctrl-C to the process group leaves it to finish the
 * service's last flush.
 *
 * @module
 */
import type { Client, Transaction } from "@libsql/client";
import { openDirectClient } from "./direct_client.ts";
import {
  encodeFrame,
  errorToWire,
  type HostReply,
  type HostRequest,
  readFrames,
  resultToWire,
} from "./host_protocol.ts";

const clients = new Map<number, Client>();
const transactions = new Map<number, Transaction>();
let nextId = 1;
const stdout = Deno.stdout.writable.getWriter();

/** Replies leave in the order they are written; a write waits for the one before. */
let writing: Promise<void> = Promise.resolve();
function reply(message: HostReply): void {
  const frame = encodeFrame(message);
  writing = writing.then(() => stdout.write(frame)).catch(() => Deno.exit(0));
}

function client(cid: number): Client {
  const c = clients.get(cid);
  if (!c) throw new RangeError(`No database connection ${cid} in this process`);
  return c;
}

function transaction(tid: number): Transaction {
  const t = transactions.get(tid);
  if (!t) throw new RangeError(`No transaction ${tid} in this process`);
  return t;
}

async function handle(req: HostRequest): Promise<unknown> {
  switch (req.op) {
    case "open": {
      const c = openDirectClient(req.url, { authToken: req.authToken, busyTimeoutMs: req.busyTimeoutMs });
      const cid = nextId++;
      clients.set(cid, c);
      return cid;
    }
    case "execute":
      return resultToWire(await client(req.cid).execute(req.stmt));
    case "batch":
      return (await client(req.cid).batch(req.stmts, req.mode)).map(resultToWire);
    case "migrate":
      return (await client(req.cid).migrate(req.stmts)).map(resultToWire);
    case "executeMultiple":
      await client(req.cid).executeMultiple(req.sql);
      return null;
    case "close":
      clients.get(req.cid)?.close();
      clients.delete(req.cid);
      return null;
    case "begin": {
      const t = await client(req.cid).transaction(req.mode);
      const tid = nextId++;
      transactions.set(tid, t);
      return tid;
    }
    case "txExecute":
      return resultToWire(await transaction(req.tid).execute(req.stmt));
    case "txBatch":
      return (await transaction(req.tid).batch(req.stmts)).map(resultToWire);
    case "txExecuteMultiple":
      await transaction(req.tid).executeMultiple(req.sql);
      return null;
    case "commit":
      await transaction(req.tid).commit();
      transactions.delete(req.tid);
      return null;
    case "rollback":
      await transaction(req.tid).rollback();
      transactions.delete(req.tid);
      return null;
    case "txClose":
      transactions.get(req.tid)?.close();
      transactions.delete(req.tid);
      return null;
  }
}

for (const signal of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(signal, () => {});

try {
  for await (const message of readFrames(Deno.stdin.readable)) {
    const req = message as HostRequest;
    handle(req).then(
      (value) => reply({ id: req.id, ok: true, value }),
      (err) => reply({ id: req.id, ok: false, error: errorToWire(err) }),
    );
  }
} catch (err) {
  console.error(JSON.stringify({ level: "error", msg: "database process", error: String(err) }));
}
// The service closed the pipe (or ended): close what is open, unless a file is unwritable (closing then would write
// into the mapping), and leave.
for (const t of transactions.values()) t.close();
for (const c of clients.values()) c.close();
Deno.exit(0);

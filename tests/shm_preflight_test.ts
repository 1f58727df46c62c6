/**
 * An unwritable `-shm` beside a local database (issue 11): SQLite maps that file, and a write to the mapping of a file
 * made immutable ends the process with SIGBUS. The pre-flight check (`db/preflight.ts`) refuses such a file before
 * a connection opens and before each call, so the service keeps running, keeps the decisions in its outbox, reports
 * not-ready, and writes them once the file is writable again; a fresh start exits with one line.
 *
 * The files are made unwritable with `chattr +i` (refused even to root on ext4 and most Linux file systems). Where
 * that cannot be done (not root, or a file system without the flag) the tests are ignored, saying why.
 */
import assert from "node:assert/strict";
import { AppError } from "../errors.ts";
import { openDatabase, type WriteConnection } from "../db/client.ts";
import { createDecisionWriter } from "../db/decision_writer.ts";
import { DatabaseFileError, DB_FILE_UNWRITABLE, unwritableDatabaseFile } from "../db/preflight.ts";
import { decision } from "./fixtures/db_records.ts";
import { classify, loggedIds, readyz, spawnService, waitFor } from "./reliability_helpers.ts";

function chattr(flag: "+i" | "-i", path: string): boolean {
  try {
    return new Deno.Command("chattr", { args: [flag, path], stdout: "null", stderr: "null" }).outputSync().success;
  } catch {
    return false;
  }
}

/** Why `chattr +i` cannot make a file unwritable here, or null when it can. */
function chattrUnusable(): string | null {
  if (Deno.build.os !== "linux") return "chattr is Linux-only";
  const dir = Deno.makeTempDirSync();
  const file = `${dir}/probe`;
  try {
    Deno.writeTextFileSync(file, "");
    if (!chattr("+i", file)) return "chattr +i failed (not root, no chattr, or a file system without the flag)";
    try {
      Deno.openSync(file, { write: true }).close();
      return "chattr +i did not make the file unwritable";
    } catch {
      return null;
    }
  } finally {
    chattr("-i", file);
    Deno.removeSync(dir, { recursive: true });
  }
}

const unusable = chattrUnusable();
if (unusable) console.warn(`shm_preflight_test: ignored: ${unusable}`);

/** Run `fn` with a temporary folder whose files lose their immutable flag afterwards, whatever happens. */
async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "shm_preflight_" });
  try {
    await fn(dir);
  } finally {
    chattr("-i", dir);
    for (const e of Deno.readDirSync(dir)) chattr("-i", `${dir}/${e.name}`);
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("the writer is blocked while a database file cannot be written, and unblocked by the next commit", async () => {
  const problem = new DatabaseFileError("/x/d.db-shm", "EPERM", "/x/d.db-shm cannot be opened read-write");
  const memory = await openDatabase(":memory:");
  let fixed = false;
  const writer = createDecisionWriter({
    connect: () =>
      fixed
        ? Promise.resolve<WriteConnection>({ db: memory.db, moved: () => Promise.resolve(null), close() {} })
        : Promise.reject(new AppError("DB_UNAVAILABLE", `Cannot connect: ${problem.message}`, { cause: problem })),
  });
  const row = decision();
  await assert.rejects(writer.write([row]), /Cannot connect: \/x\/d\.db-shm cannot be opened read-write/);
  assert.equal(writer.state(), "failing");
  assert.equal(writer.blocked?.(), "Cannot connect: /x/d.db-shm cannot be opened read-write");
  fixed = true;
  await writer.write([row]);
  assert.equal(writer.state(), "ready");
  assert.equal(writer.blocked?.(), null);
  writer.close();
  memory.close();
});

Deno.test({
  name: "unwritableDatabaseFile() names an immutable -shm, an immutable -wal and a folder that cannot take them",
  ignore: unusable !== null,
  fn: () =>
    withDir(async (dir) => {
      const path = `${dir}/d.db`;
      assert.equal(unwritableDatabaseFile(path), null, "a folder without the files is fine");
      chattr("+i", dir);
      const folder = unwritableDatabaseFile(path);
      assert.ok(folder instanceof DatabaseFileError);
      assert.equal(folder.code, DB_FILE_UNWRITABLE);
      assert.equal(folder.file, dir);
      assert.equal(folder.errno, "EPERM");
      chattr("-i", dir);
      for (const suffix of ["-shm", "-wal"]) {
        await Deno.writeTextFile(`${path}${suffix}`, "");
        chattr("+i", `${path}${suffix}`);
        const err = unwritableDatabaseFile(path);
        assert.ok(err instanceof DatabaseFileError);
        assert.equal(err.file, `${path}${suffix}`);
        assert.match(err.message, /cannot be opened read-write by this process \(EPERM/);
        chattr("-i", `${path}${suffix}`);
        assert.equal(unwritableDatabaseFile(path), null);
      }
    }),
});

Deno.test({
  name: "openDatabase() refuses a database whose -shm is immutable (empty or in use before) with DB_UNAVAILABLE",
  ignore: unusable !== null,
  fn: () =>
    withDir(async (dir) => {
      const path = `${dir}/d.db`;
      // A -shm as a running process leaves it, taken from another database (rewriting a -shm that a connection of
      // this process maps would itself end this process with SIGBUS).
      const other = await openDatabase(`file:${dir}/other.db`);
      await other.client.execute("SELECT count(*) FROM decisions");
      const used = await Deno.readFile(`${dir}/other.db-shm`);
      other.close();
      assert.ok(used.length > 0);
      await Deno.copyFile(`${dir}/other.db`, path);
      for (const shm of [new Uint8Array(0), used]) {
        await Deno.writeFile(`${path}-shm`, shm);
        chattr("+i", `${path}-shm`);
        const err = await openDatabase(`file:${path}`).then(
          (db) => (db.close(), null),
          (e: unknown) => e,
        );
        assert.ok(err instanceof AppError, `a ${shm.length}-byte -shm is refused`);
        assert.equal(err.code, "DB_UNAVAILABLE");
        assert.ok(err.cause instanceof DatabaseFileError);
        assert.equal(err.cause.file, `${path}-shm`);
        assert.match(err.message, /^Cannot open the decision database: .*d\.db-shm cannot be opened read-write/);
        chattr("-i", `${path}-shm`);
      }
    }),
});

Deno.test({
  name: "a -shm made immutable under the running service: no crash, decisions kept, 503, written once writable",
  ignore: unusable !== null,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withDir(async (dir) => {
      const dbUrl = `file:${dir}/d.db`;
      const svc = await spawnService({ DATABASE_URL: dbUrl, LOG_FLUSH_MS: "50" });
      let exited = false;
      svc.status.then(() => exited = true);
      try {
        const answered: string[] = [];
        const send = async (n: number) => {
          for (let i = 0; i < n; i++) {
            const r = await classify(svc.url);
            assert.equal(r?.status, 200, `request ${answered.length + 1} was answered:\n${svc.output()}`);
            answered.push(String(r!.json.decisionId));
          }
        };
        await send(5);
        await waitFor("the first decisions to be written", async () =>
          (await readyz(svc.url)).json.logBacklog === 0, 5000);
        assert.ok(chattr("+i", `${dir}/d.db-shm`));
        await send(10);
        await waitFor("readiness to fail", async () =>
          (await readyz(svc.url)).status === 503, 5000);
        // Readiness can fail a moment before the writer moves the decisions it holds to the outbox.
        await waitFor("the decisions to reach the outbox", async () =>
          ((await readyz(svc.url)).json.writes as { outbox: number }).outbox > 0, 5000);
        const down = await readyz(svc.url);
        assert.equal(down.json.database, false);
        const writes = down.json.writes as Record<string, unknown>;
        assert.equal(writes.writer, "failing");
        assert.equal(writes.healthy, false);
        assert.match(String(writes.reason), /d\.db-shm cannot be opened read-write by this process \(EPERM/);
        assert.ok((writes.outbox as number) > 0, "the decisions wait in the outbox");
        assert.match(svc.output(), /"to":"failing","reason":"[^"]*d\.db-shm cannot be opened read-write/);
        await new Promise((r) =>
          setTimeout(r, 500)
        );
        assert.equal(exited, false, `the service is still running:\n${svc.output()}`);
        assert.ok(chattr("-i", `${dir}/d.db-shm`));
        await waitFor("readiness to come back", async () =>
          (await readyz(svc.url)).status === 200, 15_000);
        svc.child.kill("SIGTERM");
        assert.equal((await svc.status).code, 0);
        const ids = await loggedIds(dbUrl);
        assert.deepEqual(
          answered.filter((id) =>
            !ids.has(id)
          ),
          [],
          "every answered decision is in the database",
        );
      } finally {
        chattr("-i", `${dir}/d.db-shm`);
        if (!exited) svc.child.kill("SIGKILL");
        await svc.status;
      }
    }),
});

Deno.test({
  name: "a start with an immutable -shm exits 1 with one line naming the file",
  ignore: unusable !== null,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withDir(async (dir) => {
      const path = `${dir}/d.db`;
      // The database and the -shm a stopped service leaves behind, made immutable.
      const first = await spawnService({ DATABASE_URL: `file:${path}` });
      // Once it answers, its SIGTERM handler is in place (it is installed just after the "listening" line).
      assert.equal((await readyz(first.url)).status, 200);
      first.child.kill("SIGTERM");
      assert.equal((await first.status).code, 0);
      // SQLite removes the -shm when the last connection to close can take the database alone, which depends on
      // the order in which the service's connections close. Where it did, put back one of the size SQLite writes:
      // what is under test is the start's check of an -shm it cannot open read-write, not what SQLite leaves.
      const left = await Deno.stat(`${path}-shm`).then((s) => s.size > 0, () => false);
      if (!left) await Deno.writeFile(`${path}-shm`, new Uint8Array(32_768));
      assert.ok(chattr("+i", `${path}-shm`));
      const err = await spawnService({ DATABASE_URL: `file:${path}` }).then(
        async (svc) => (svc.child.kill("SIGKILL"), await svc.status, null),
        (e: Error) => e,
      );
      assert.ok(err, "the service did not start");
      const output = err.message.split("\n").slice(1).filter((l) => l.trim() !== "");
      assert.match(err.message, /^service exited with 1 before listening/);
      assert.equal(output.length, 1, output.join("\n"));
      const line = JSON.parse(output[0]);
      assert.equal(line.msg, "cannot start dmd-edge");
      assert.match(line.error, /d\.db-shm cannot be opened read-write by this process \(EPERM.*chattr -i/);
    }),
});

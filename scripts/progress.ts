/**
 * A progress bar for long script steps: redrawn in place on a terminal, one line per 10% otherwise.
 *
 * @module
 */

/**
 * Create a progress reporter.
 *
 * @param label what is progressing
 * @returns a callback taking (done, total), and `end()` to finish the line
 */
export function progressBar(label: string): { update(done: number, total: number): void; end(): void } {
  const tty = Deno.stderr.isTerminal();
  const started = performance.now();
  let lastDecile = -1;
  const write = (s: string) => Deno.stderr.writeSync(new TextEncoder().encode(s));
  return {
    update(done, total) {
      const frac = total === 0 ? 1 : done / total;
      const rate = done / ((performance.now() - started) / 1000 || 1);
      const text = `${label} [${"#".repeat(Math.round(frac * 30)).padEnd(30, ".")}] ${(frac * 100).toFixed(0)}% ` +
        `${done}/${total} ${rate.toFixed(0)}/s`;
      if (tty) write(`\r${text}`);
      else if (Math.floor(frac * 10) > lastDecile) {
        lastDecile = Math.floor(frac * 10);
        write(`${text}\n`);
      }
    },
    end() {
      if (tty) write("\n");
    },
  };
}

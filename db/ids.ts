/**
 * Time-ordered ids (UUID version 7, RFC 9562 section 5.7): decision ids sort by creation time, which keeps the
 * primary-key index append-mostly.
 *
 * @module
 */

/**
 * A new UUIDv7: 48 bits of Unix milliseconds, then random bits.
 *
 * @param nowMs the time to embed (default: now)
 * @returns the id, e.g. `0192f3c4-5e6a-7b8c-9d0e-1f2a3b4c5d6e`
 */
export function uuidv7(nowMs: number = Date.now()): string {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  let t = Math.floor(nowMs);
  for (let i = 5; i >= 0; i--) {
    b[i] = t % 256;
    t = Math.floor(t / 256);
  }
  b[6] = (b[6] & 0x0f) | 0x70;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

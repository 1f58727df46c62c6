/**
 * The connection guard's thread (serve/conn_guard.ts): it owns the public port and relays every connection to the
 * server's unix socket, so that the HTTP thread spends nothing on the copying, the framing or the deadlines.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { type Relay, type RelayRequest, type RelayResponse, startRelay } from "./conn_guard.ts";

let relay: Relay | null = null;

function reply(msg: RelayResponse): void {
  self.postMessage(msg);
}

self.onmessage = async (event: MessageEvent<RelayRequest>) => {
  const msg = event.data;
  switch (msg.type) {
    case "start":
      try {
        relay = startRelay(msg.options, msg.socketPath, new Int32Array(msg.cells));
        reply({ type: "listening", addr: relay.addr as Deno.NetAddr });
      } catch (err) {
        reply({ type: "error", name: (err as Error).name, message: (err as Error).message });
      }
      break;
    case "stop_accepting":
      await relay?.stopAccepting();
      reply({ type: "stopped" });
      break;
    case "finish":
      await relay?.finish();
      reply({ type: "finished" });
      break;
  }
};

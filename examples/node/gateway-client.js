// A plain troupe client: one NATS request to the gateway subject
// <prefix>.call.<type>.<encoded id>.<method>, which any host answers and
// forwards to the actor's owner. No placement hash, no membership watch.
//
//   node gateway-client.js nats://127.0.0.1:4222 counter c1 add 5

import { headers } from "@nats-io/transport-node";
import { isMain, runCli } from "./cli.js";
import {
  DEFAULT_TIMEOUT_MS, Headers, decodeError, encodeId, idBytes, payloadBytes, transportError, validateCall,
} from "./protocol.js";

export { Codes, TroupeError, encodeId, decodeId } from "./protocol.js";

/**
 * Calls method on the actor (type, id) through the gateway.
 * @param {import("@nats-io/transport-node").NatsConnection} nc
 * @param {string} type actor type, e.g. "counter"
 * @param {string | Uint8Array} id actor id (any 1-1024 bytes)
 * @param {string} method method name
 * @param {string | Uint8Array} [payload] request body
 * @param {{timeoutMs?: number, prefix?: string}} [opts] timeoutMs bounds the
 *   call (default 5000; the gateway gets it as Troupe-Timeout);
 *   prefix is the deployment's subject prefix (default "troupe")
 * @returns {Promise<Uint8Array>} the actor's reply
 * @throws {TroupeError}
 */
export async function call(nc, type, id, method, payload, { timeoutMs = DEFAULT_TIMEOUT_MS, prefix = "troupe" } = {}) {
  const bytes = idBytes(id);
  validateCall(type, bytes, method);
  const h = headers();
  h.set(Headers.timeout, String(Math.max(1, Math.ceil(timeoutMs))));
  let msg;
  try {
    msg = await nc.request(`${prefix}.call.${type}.${encodeId(bytes)}.${method}`, payloadBytes(payload), {
      timeout: timeoutMs,
      headers: h,
    });
  } catch (err) {
    throw transportError(err, `${type} ${encodeId(bytes)}.${method}`, "no troupe host answers the gateway subject");
  }
  const e = decodeError(msg);
  if (e) throw e;
  return msg.data;
}

if (isMain(import.meta.url)) {
  await runCli("gateway-client.js", process.argv.slice(2), (nc, ...args) => call(nc, ...args));
}

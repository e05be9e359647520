// A plain troupe client: one NATS request to the gateway subject
// <prefix>.call.<type>.<encoded id>.<method>, which any host answers and
// forwards to the actor's owner. No placement hash, no membership watch.
//
//   node gateway-client.js nats://127.0.0.1:4222 counter c1 add 5

import { headers } from "@nats-io/transport-node";
import { isMain, runCli } from "./cli.js";
import {
  ATTEMPT_TIMEOUT_MS, Codes, DEFAULT_TIMEOUT_MS, Headers, TroupeError, decodeError, encodeId, idBytes, isCallId, isTimeout,
  newCallId, payloadBytes, transportError, validateCall,
} from "./protocol.js";

export { Codes, TroupeError, encodeId, decodeId } from "./protocol.js";

/**
 * Calls method on the actor (type, id) through the gateway.
 * @param {import("@nats-io/transport-node").NatsConnection} nc
 * @param {string} type actor type, e.g. "counter"
 * @param {string | Uint8Array} id actor id (any 1-1024 bytes)
 * @param {string} method method name
 * @param {string | Uint8Array} [payload] request body
 * @param {{timeoutMs?: number, prefix?: string, callId?: string | null, attemptMs?: number}} [opts]
 *   timeoutMs bounds the call, retries included (default 5000; the gateway
 *   gets the time left as Troupe-Timeout); prefix is the deployment's
 *   subject prefix (default "troupe"); callId is the call's id, sent as
 *   Troupe-Call-Id (default: a new one; null sends none): with it the
 *   request is sent again, with the same id, after OUTCOME_UNKNOWN and after
 *   an attempt that got no answer within attemptMs (default 1000, doubling),
 *   until the deadline (PROTOCOL.md, "Idempotent calls")
 * @returns {Promise<Uint8Array>} the actor's reply
 * @throws {TroupeError}
 */
export async function call(nc, type, id, method, payload, {
  timeoutMs = DEFAULT_TIMEOUT_MS, prefix = "troupe", callId = newCallId(), attemptMs = ATTEMPT_TIMEOUT_MS,
} = {}) {
  const bytes = idBytes(id);
  validateCall(type, bytes, method);
  const what = `${type} ${encodeId(bytes)}.${method}`;
  if (callId !== null && !isCallId(callId)) {
    throw new TroupeError(Codes.BAD_REQUEST, `call id ${JSON.stringify(callId)}: want 1-64 printable ASCII characters without spaces`);
  }
  const deadline = Date.now() + timeoutMs;
  let attempt = attemptMs; // doubled after each attempt that got no answer, not after answers
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) throw new TroupeError(Codes.DEADLINE_EXCEEDED, `${what}: deadline exceeded`);
    const h = headers();
    h.set(Headers.timeout, String(Math.max(1, Math.ceil(left))));
    if (callId) h.set(Headers.callId, callId);
    let msg;
    try {
      msg = await nc.request(`${prefix}.call.${type}.${encodeId(bytes)}.${method}`, payloadBytes(payload), {
        timeout: callId ? Math.min(attempt, left) : left,
        headers: h,
      });
    } catch (err) {
      if (callId && isTimeout(err) && Date.now() < deadline) {
        attempt *= 2; // unanswered: the same id again, waiting longer in case the host was only slow
        continue;
      }
      throw transportError(err, what, "no troupe host answers the gateway subject");
    }
    const e = decodeError(msg);
    if (!e) return msg.data;
    if (!(callId && e.code === Codes.OUTCOME_UNKNOWN)) throw e;
    await new Promise((resolve) => setTimeout(resolve, Math.min(50, Math.max(0, deadline - Date.now()))));
  }
}

if (isMain(import.meta.url)) {
  await runCli("gateway-client.js", process.argv.slice(2), (nc, ...args) => call(nc, ...args));
}

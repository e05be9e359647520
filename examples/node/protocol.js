// The parts of the troupe wire protocol (PROTOCOL.md) that both clients
// share: names, the canonical actor-id encoding, error codes and error
// replies.

import { randomBytes } from "node:crypto";
import { ClosedConnectionError, NoRespondersError, RequestError, TimeoutError } from "@nats-io/transport-node";

/** Error codes, as carried in the Nats-Service-Error-Code header. */
export const Codes = Object.freeze({
  INTERNAL: 1,
  BAD_REQUEST: 2,
  UNKNOWN_TYPE: 3,
  NO_HOST: 4,
  INVALID_ID: 5,
  UNKNOWN_METHOD: 6,
  INVALID_METHOD: 7,
  PAYLOAD_TOO_LARGE: 8,
  BUSY: 9,
  DEADLINE_EXCEEDED: 10,
  MOVED: 11,
  APPLICATION: 12,
  STATE_CONFLICT: 13,
  UNAVAILABLE: 14,
  INVALID_ARGUMENT: 15,
  STATE_TOO_LARGE: 16,
  OUTCOME_UNKNOWN: 17,
  WOULD_DEADLOCK: 18,
  CALL_CHAIN_TOO_DEEP: 19,
  INVALID_SCHEDULE: 20,
});

const codeNames = new Map(Object.entries(Codes).map(([name, code]) => [code, name]));

/** Header names of requests and error replies. */
export const Headers = Object.freeze({
  type: "Troupe-Type",
  id: "Troupe-Id",
  method: "Troupe-Method",
  generation: "Troupe-Generation",
  timeout: "Troupe-Timeout",
  call: "Troupe-Call",
  callId: "Troupe-Call-Id",
  // A stream message delivered as a call (PROTOCOL.md, "Stream
  // subscriptions"): the subscription's name and the message's sequence.
  stream: "Troupe-Stream",
  streamSeq: "Troupe-Stream-Seq",
  streamSubject: "Troupe-Stream-Subject",
  errorCode: "Nats-Service-Error-Code",
  error: "Nats-Service-Error",
  appCode: "Troupe-App-Code",
  chain: "Troupe-Chain",
  chainPath: "Troupe-Chain-Path",
});

/** The first protocol version whose hosts accept the Troupe-Call header. */
export const CALL_HEADER_VERSION = 2;

/**
 * The headers of a call to a host that announces protocol version
 * `hostProtocol` in its record (0 for an older host): Troupe-Call from
 * {@link CALL_HEADER_VERSION} on, else the five separate headers.
 * @param {number} hostProtocol the host record's `protocol`
 * @param {string} type
 * @param {string} encodedId
 * @param {string} method
 * @param {number} generation
 * @param {number} timeoutMs
 * @returns {Array<[string, string]>}
 */
export function callHeaders(hostProtocol, type, encodedId, method, generation, timeoutMs, callId = "") {
  if (hostProtocol >= CALL_HEADER_VERSION) {
    return [[Headers.call, callHeader(type, encodedId, method, generation, timeoutMs, callId)]];
  }
  const h = [
    [Headers.type, type],
    [Headers.id, encodedId],
    [Headers.method, method],
    [Headers.generation, String(generation)],
    [Headers.timeout, String(Math.max(0, Math.ceil(timeoutMs)))],
  ];
  if (callId) h.push([Headers.callId, callId]);
  return h;
}

/**
 * Whether s is a valid call id: 1-64 printable ASCII characters without a
 * space (PROTOCOL.md, "Idempotent calls").
 * @param {string} s
 * @returns {boolean}
 */
export function isCallId(s) {
  return typeof s === "string" && /^[\x21-\x7e]{1,64}$/.test(s);
}

/**
 * A new call id, as the Go router makes them: 128 random bits, base64url.
 * @returns {string}
 */
export function newCallId() {
  return randomBytes(16).toString("base64url");
}

/** The first attempt's timeout of a call with an id; each later one doubles. */
export const ATTEMPT_TIMEOUT_MS = 1000;

/**
 * The value of a Troupe-Call header: the five request fields in one header,
 * separated by single spaces, which is what a smart client sends to a host
 * that speaks it (a host parses one header faster than five). PROTOCOL.md,
 * "Calling a host directly".
 * @param {string} type the actor type
 * @param {string} encodedId the id, encoded with {@link encodeId}
 * @param {string} method the method
 * @param {number} generation the caller's table generation (0: none)
 * @param {number} timeoutMs milliseconds left until the caller's deadline
 * @param {string} [callId] the call id, the optional sixth field
 * @returns {string}
 */
export function callHeader(type, encodedId, method, generation, timeoutMs, callId = "") {
  const v = `${type} ${encodedId} ${method} ${generation} ${Math.max(0, Math.ceil(timeoutMs))}`;
  return callId ? `${v} ${callId}` : v;
}

/** The default per-call timeout, as in the Go router and the gateway. */
export const DEFAULT_TIMEOUT_MS = 5000;

/**
 * A failed call. `name` is the code's name (e.g. "NO_HOST"), so a thrown
 * TroupeError prints like `troupe call` does.
 */
export class TroupeError extends Error {
  /**
   * @param {number} code one of {@link Codes}
   * @param {string} message the full message
   * @param {{appCode?: string, generation?: number}} [extra]
   *   appCode: the actor's own code (APPLICATION);
   *   generation: the host's table generation (MOVED)
   */
  constructor(code, message, { appCode = "", generation = 0 } = {}) {
    super(message);
    /** @type {number} */
    this.code = code;
    /** @type {string} */
    this.name = codeNames.get(code) ?? `CODE_${code}`;
    /** @type {string} */
    this.appCode = appCode;
    /** @type {number} */
    this.generation = generation;
  }
}

/**
 * Decodes an error reply, or returns null for a success reply (one without
 * a Nats-Service-Error-Code header).
 * @param {{headers?: {get(k: string): string}, data: Uint8Array}} msg a NATS reply
 * @returns {TroupeError | null}
 */
export function decodeError(msg) {
  const h = msg.headers;
  const codeText = h?.get(Headers.errorCode) ?? "";
  if (codeText === "") return null;
  const summary = h.get(Headers.error);
  if (!/^\d+$/.test(codeText)) {
    return new TroupeError(Codes.INTERNAL, `reply with malformed ${Headers.errorCode} "${codeText}": ${summary}`);
  }
  const body = new TextDecoder().decode(msg.data);
  return new TroupeError(Number(codeText), body !== "" ? body : summary, {
    appCode: h.get(Headers.appCode),
    generation: Number(h.get(Headers.generation) || 0),
  });
}

const plain = new Uint8Array(256);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_~:@=+,-") {
  plain[c.charCodeAt(0)] = 1;
}
const hex = "0123456789ABCDEF";

/**
 * Converts an actor id to bytes: strings are UTF-8; byte arrays (Buffer,
 * Uint8Array) are taken as they are, for ids that are not valid UTF-8.
 * @param {string | Uint8Array} id
 * @returns {Uint8Array}
 */
export function idBytes(id) {
  return typeof id === "string" ? new TextEncoder().encode(id) : id;
}

/**
 * Id-encodes an actor id: bytes in [A-Za-z0-9_~:@=+,-] stay, every other
 * byte of its UTF-8 form becomes %XX (upper-case hex). Canonical: one id,
 * one encoding.
 * @param {string | Uint8Array} id
 * @returns {string}
 */
export function encodeId(id) {
  let out = "";
  for (const c of idBytes(id)) {
    out += plain[c] ? String.fromCharCode(c) : "%" + hex[c >> 4] + hex[c & 15];
  }
  return out;
}

/**
 * Reverses {@link encodeId}, accepting only the canonical form, as a host does.
 * @param {string} s an encoded id
 * @returns {Uint8Array} the id's bytes
 * @throws {TypeError} for a non-canonical encoding
 */
export function decodeId(s) {
  const out = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 256 && plain[c]) {
      out.push(c);
      continue;
    }
    const m = c === 0x25 ? /^[0-9A-F]{2}$/.exec(s.slice(i + 1, i + 3)) : null;
    if (!m) throw new TypeError(`bad escape or character ${JSON.stringify(s[i])} at ${i}`);
    const b = parseInt(m[0], 16);
    if (plain[b]) throw new TypeError(`${JSON.stringify(String.fromCharCode(b))} at ${i} must not be %-encoded`);
    out.push(b);
    i += 2;
  }
  return Uint8Array.from(out);
}

const nameRe = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * Checks a call's names locally, as the Go router does, so that a bad name
 * fails with the code a host would give instead of a malformed subject.
 * @param {string} type
 * @param {Uint8Array} id the id's bytes
 * @param {string} method
 * @throws {TroupeError} UNKNOWN_TYPE, INVALID_ID or INVALID_METHOD
 */
export function validateCall(type, id, method) {
  if (!nameRe.test(type)) {
    throw new TroupeError(Codes.UNKNOWN_TYPE, `invalid name: actor type ${JSON.stringify(type)}: want 1-64 characters from A-Z a-z 0-9 _ -`);
  }
  if (id.length < 1 || id.length > 1024) {
    throw new TroupeError(Codes.INVALID_ID, `invalid actor id: ${id.length} bytes, want 1 to 1024`);
  }
  if (!nameRe.test(method)) {
    throw new TroupeError(Codes.INVALID_METHOD, `invalid name: method ${JSON.stringify(method)}: want 1-64 characters from A-Z a-z 0-9 _ -`);
  }
}

/**
 * Tells whether s is a valid host id, actor type or method name.
 * @param {string} s
 */
export function isName(s) {
  return nameRe.test(s);
}

/**
 * Converts a payload to bytes: strings are UTF-8.
 * @param {string | Uint8Array | undefined} payload
 * @returns {Uint8Array}
 */
export function payloadBytes(payload) {
  if (payload === undefined) return new Uint8Array(0);
  return typeof payload === "string" ? new TextEncoder().encode(payload) : payload;
}

/**
 * Tells whether a request failed because nobody subscribes to its subject.
 * @param {unknown} err
 */
export function isNoResponders(err) {
  return err instanceof NoRespondersError || (err instanceof RequestError && err.isNoResponders());
}

/**
 * Whether a failed NATS request got no answer in time.
 * @param {unknown} err what nc.request threw
 * @returns {boolean}
 */
export function isTimeout(err) {
  const cause = err instanceof RequestError && err.cause ? err.cause : err;
  return cause instanceof TimeoutError;
}

/**
 * Maps a failed NATS request to a TroupeError.
 * @param {unknown} err what nc.request threw
 * @param {string} what the call, for the message
 * @param {string} noResponders the message for no responders
 * @returns {TroupeError}
 */
export function transportError(err, what, noResponders) {
  if (err instanceof TroupeError) return err;
  const cause = err instanceof RequestError && err.cause ? err.cause : err;
  if (cause instanceof TimeoutError) {
    return new TroupeError(Codes.DEADLINE_EXCEEDED, `${what}: deadline exceeded`);
  }
  if (isNoResponders(err)) return new TroupeError(Codes.UNAVAILABLE, `${what}: ${noResponders}`);
  if (cause instanceof ClosedConnectionError) return new TroupeError(Codes.UNAVAILABLE, `${what}: ${cause.message}`);
  return new TroupeError(Codes.INTERNAL, `${what}: ${cause?.message ?? cause}`);
}

// Actors written in JavaScript: a worker that computes the turns of actor
// types a Go troupe host serves with --worker-types (PROTOCOL.md, "Actors in
// other languages (workers)"; docs/workers.md).
//
// The Go host keeps everything that makes an actor safe: placement, the
// mailbox (one turn at a time per actor), lease fencing, call chains, timers,
// reminders and the compare-and-set save. For each turn it sends this worker
// a WorkerTurn (identity, method, payload, the actor's whole state) on
// <prefix>.worker.<type>; the worker runs the handler and answers a
// WorkerAnswer (reply or error, new state, timers and reminders). The worker
// keeps nothing between turns, so run as many as you like: they share the
// turns in the queue group <prefix>.workers.
//
//   import { connect } from "@nats-io/transport-node";
//   import { Worker } from "./actor/index.js";
//   const w = new Worker(await connect({ servers: url }));
//   w.register("jscounter", {
//     add(turn) { const n = turn.int() + turn.stateInt(); turn.setState(String(n)); return String(n); },
//     get(turn) { return String(turn.stateInt()); },
//   });
//   await w.start();

import { readFileSync } from "node:fs";
import { headers } from "@nats-io/transport-node";
import protobuf from "protobufjs";
import {
  Codes, Headers, TroupeError, decodeError, encodeId, idBytes, isName, payloadBytes, transportError, validateCall,
} from "../protocol.js";

export { Codes, TroupeError } from "../protocol.js";

const root = protobuf.parse(readFileSync(new URL("../../../pb/troupe.proto", import.meta.url), "utf8"), { keepCase: true }).root;
/** The worker messages of pb/troupe.proto. */
export const WorkerTurn = root.lookupType("troupe.v1.WorkerTurn");
export const WorkerAnswer = root.lookupType("troupe.v1.WorkerAnswer");

/** Why a turn runs (TurnKind in pb/troupe.proto). */
export const TurnKind = Object.freeze({ CALL: 0, ACTIVATE: 1, TIMER: 2, REMINDER: 3 });

/** The codes a worker may answer; any other reaches the caller as INTERNAL. */
const workerCodes = new Set([Codes.APPLICATION, Codes.INVALID_ARGUMENT, Codes.UNKNOWN_METHOD, Codes.INTERNAL]);

const dec = new TextDecoder();
/** Bytes of a decoded bytes field: an unset field decodes as a plain empty array. */
const bytesOf = (b) => (b instanceof Uint8Array ? b : new Uint8Array(b ?? 0));

/**
 * An application error with the actor's own code: the caller gets
 * APPLICATION with appCode and message, as from a Go actor's
 * protocol.AppError.
 */
export class ActorError extends TroupeError {
  constructor(appCode, message) {
    super(Codes.APPLICATION, message, { appCode });
  }
}

/**
 * One turn of one actor: its identity, the call, its state, and what it can
 * do (call other actors, set timers and reminders). Valid only until the
 * handler's promise settles.
 */
export class Turn {
  constructor(worker, msg) {
    this.worker = worker;
    this.started = Date.now();
    /** @type {string} */ this.type = msg.actor_type;
    /** @type {Uint8Array} the actor's id, raw bytes */ this.idBytes = bytesOf(msg.actor_id);
    /** @type {string} the id as text (UTF-8) */ this.id = dec.decode(this.idBytes);
    /** @type {number} one of TurnKind */ this.kind = msg.kind;
    /** @type {string} */ this.method = msg.method;
    /** @type {string} the timer's or reminder's name */ this.name = msg.name;
    /** @type {Uint8Array} */ this.payload = bytesOf(msg.payload);
    /** @type {Map<string, string[]>} the call's headers (not Troupe-*) */
    this.headers = new Map((msg.headers ?? []).map((h) => [h.name, h.values]));
    /** @type {string} the host running the activation */ this.host = msg.host_id;
    this.chain = msg.chain;
    this.chainPath = msg.chain_path;
    this.timeoutMs = msg.timeout_ms;
    /** @type {Map<string, Uint8Array>} */
    this.state = new Map((msg.state ?? []).map((e) => [e.name, bytesOf(e.value)]));
    this.changed = false;
    this.timers = [];
    this.reminders = [];
  }

  /** The payload as text. */
  text() { return dec.decode(this.payload); }

  /** The payload as a decimal integer; INVALID_ARGUMENT when it is not one. */
  int() {
    const s = this.text().trim();
    if (!/^[+-]?\d+$/.test(s)) throw new TroupeError(Codes.INVALID_ARGUMENT, `payload ${JSON.stringify(s)} is not a decimal integer`);
    return Number(s);
  }

  /** The state key name ("" the unnamed state) as bytes, or undefined. */
  get(name = "") { return this.state.get(name); }

  /** The state key as text, or undefined. */
  getText(name = "") { const v = this.state.get(name); return v === undefined ? undefined : dec.decode(v); }

  /** The state key as a decimal integer; 0 when unset. */
  stateInt(name = "") { const s = this.getText(name); return s === undefined || s === "" ? 0 : Number(s); }

  /** Sets the state key name ("" the unnamed state) to value (string or bytes); saved by the host before the reply. */
  set(name, value) {
    this.state.set(name, payloadBytes(value));
    this.changed = true;
  }

  /** Sets the unnamed state: set("", value). */
  setState(value) { this.set("", value); }

  /** Deletes the state key name. */
  delete(name = "") { if (this.state.delete(name)) this.changed = true; }

  /** Milliseconds left of the turn. */
  left() { return Math.max(0, this.timeoutMs - (Date.now() - this.started)); }

  /**
   * Calls another actor through the gateway, in this turn's call chain (so a
   * cycle back to this actor fails with WOULD_DEADLOCK instead of waiting).
   * @returns {Promise<Uint8Array>} the reply
   * @throws {TroupeError}
   */
  async call(type, id, method, payload, { timeoutMs } = {}) {
    const bytes = idBytes(id);
    validateCall(type, bytes, method);
    const t = Math.min(timeoutMs ?? Infinity, this.left());
    if (t <= 0) throw new TroupeError(Codes.DEADLINE_EXCEEDED, `${type} ${encodeId(bytes)}.${method}: no time left in the turn`);
    const h = headers();
    h.set(Headers.timeout, String(Math.max(1, Math.ceil(t))));
    h.set(Headers.chain, this.chain);
    h.set(Headers.chainPath, this.chainPath);
    let msg;
    try {
      msg = await this.worker.nc.request(`${this.worker.prefix}.call.${type}.${encodeId(bytes)}.${method}`, payloadBytes(payload), { timeout: t, headers: h });
    } catch (err) {
      throw transportError(err, `${type} ${encodeId(bytes)}.${method}`, "no troupe host answers the gateway subject");
    }
    const e = decodeError(msg);
    if (e) throw e;
    return msg.data;
  }

  /** Sets a timer (its ticks are turns of kind TIMER, to the type's `timer` handler). */
  setTimer(name, { dueMs = 0, periodMs = 0 } = {}) {
    if (!isName(name)) throw new TroupeError(Codes.INVALID_ARGUMENT, `invalid timer name ${JSON.stringify(name)}`);
    this.timers.push({ name, due_ms: dueMs, period_ms: periodMs });
  }

  /** Stops a timer. */
  stopTimer(name) { this.timers.push({ name, cancel: true }); }

  /**
   * Sets a durable reminder: schedule as in PROTOCOL.md "Reminders" ("@every
   * 5s", "@at <RFC 3339>", a six-field cron). Its firings call `method`
   * (default "remind") with `payload`.
   */
  setReminder(name, { schedule, method = "", payload, timeZone = "" }) {
    this.reminders.push({ name, schedule, method, payload: payloadBytes(payload), time_zone: timeZone });
  }

  /** Deletes a durable reminder. */
  deleteReminder(name) { this.reminders.push({ name, cancel: true }); }

  answer(reply) {
    const a = { reply: payloadBytes(reply ?? new Uint8Array(0)), timers: this.timers, reminders: this.reminders };
    if (this.changed) {
      a.state_changed = true;
      a.state = [...this.state.entries()].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)).map(([name, value]) => ({ name, value }));
    }
    return a;
  }
}

/** The answer to a turn that failed with err. */
export function errorAnswer(err) {
  if (err instanceof TroupeError && workerCodes.has(err.code)) {
    return { error_code: err.code, error_message: err.message, app_code: err.appCode ?? "" };
  }
  if (err instanceof TroupeError) {
    // A failed call to another actor (WOULD_DEADLOCK, DEADLINE_EXCEEDED, …):
    // the caller sees this actor's APPLICATION error named by that code.
    return { error_code: Codes.APPLICATION, error_message: err.message, app_code: err.name };
  }
  return { error_code: Codes.APPLICATION, error_message: String(err?.message ?? err) };
}

/**
 * Runs one decoded turn against a type's handlers and returns the answer
 * object (a WorkerAnswer's fields). Handlers: one function per method
 * (turn) => reply; optional `activate(turn)` and `timer(turn)`; a reminder's
 * firing calls the handler of its method.
 */
export async function runTurn(worker, handlers, msg) {
  const turn = new Turn(worker, msg);
  try {
    let reply;
    switch (turn.kind) {
      case TurnKind.ACTIVATE:
        if (typeof handlers.activate === "function") await handlers.activate(turn);
        break;
      case TurnKind.TIMER:
        if (typeof handlers.timer !== "function") throw new TroupeError(Codes.UNKNOWN_METHOD, `type ${turn.type} has no timer handler`);
        await handlers.timer(turn);
        break;
      default: {
        const f = Object.hasOwn(handlers, turn.method) && !["activate", "timer"].includes(turn.method) ? handlers[turn.method] : undefined;
        if (typeof f !== "function") throw new TroupeError(Codes.UNKNOWN_METHOD, `no method ${JSON.stringify(turn.method)}`);
        reply = await f(turn);
      }
    }
    return turn.answer(reply);
  } catch (err) {
    return errorAnswer(err);
  }
}

/** A worker: serves the turns of the types registered on it. */
export class Worker {
  /**
   * @param {import("@nats-io/transport-node").NatsConnection} nc
   * @param {{prefix?: string}} [opts] the deployment's subject prefix (default "troupe")
   */
  constructor(nc, { prefix = "troupe" } = {}) {
    this.nc = nc;
    this.prefix = prefix;
    this.types = new Map();
    this.subs = [];
    this.running = new Set();
  }

  /** Registers the handlers of an actor type (before start). */
  register(type, handlers) {
    if (!isName(type)) throw new TypeError(`invalid actor type ${JSON.stringify(type)}`);
    this.types.set(type, handlers);
    return this;
  }

  /** Subscribes to the registered types' turns; resolves once the server has the subscriptions. */
  async start() {
    for (const [type, handlers] of this.types) {
      const sub = this.nc.subscribe(`${this.prefix}.worker.${type}`, {
        queue: `${this.prefix}.workers`,
        callback: (err, m) => {
          if (err) return;
          const p = this.serve(handlers, m).finally(() => this.running.delete(p));
          this.running.add(p);
        },
      });
      this.subs.push(sub);
    }
    await this.nc.flush();
  }

  async serve(handlers, m) {
    let answer;
    try {
      answer = await runTurn(this, handlers, WorkerTurn.decode(m.data));
    } catch (err) {
      answer = { error_code: Codes.INTERNAL, error_message: `malformed WorkerTurn: ${err?.message ?? err}` };
    }
    try {
      m.respond(WorkerAnswer.encode(answer).finish());
    } catch (err) {
      // Too large for one message, say: the host gets an error it can
      // report instead of waiting out its worker timeout.
      m.respond(WorkerAnswer.encode({ error_code: Codes.INTERNAL, error_message: `cannot send the answer: ${err?.message ?? err}` }).finish());
    }
  }

  /** Stops taking turns, lets the running ones answer, and resolves. */
  async stop() {
    for (const s of this.subs) s.unsubscribe();
    await Promise.allSettled([...this.running]);
    await this.nc.flush();
  }
}

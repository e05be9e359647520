// A smart troupe client: it follows the membership bucket like a Go router
// does, computes each actor's owner with the placement hash, and sends the
// call straight to the owner's subject, following MOVED answers and vanished
// hosts until the call's deadline (PROTOCOL.md, "Routing and retries").
//
//   node smart-client.js nats://127.0.0.1:4222 counter c1 add 5

import { readFileSync } from "node:fs";
import { headers } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import protobuf from "protobufjs";
import { isMain, runCli } from "./cli.js";
import { HASH_VERSION, owner, verifyVectors } from "./placement.js";
import {
  ATTEMPT_TIMEOUT_MS, Codes, DEFAULT_TIMEOUT_MS, TroupeError, callHeaders, decodeError, encodeId, idBytes, isCallId,
  isName, isNoResponders, isTimeout, newCallId, payloadBytes, transportError, validateCall,
} from "./protocol.js";

export { Codes, TroupeError, encodeId, decodeId } from "./protocol.js";
export { HASH_VERSION, keyHash, hostHash, owner, verifyVectors } from "./placement.js";

/** The schema of the membership records, from the repository's pb/troupe.proto. */
export const HostRecord = protobuf
  .parse(readFileSync(new URL("../../pb/troupe.proto", import.meta.url), "utf8"), { keepCase: true })
  .root.lookupType("troupe.v1.HostRecord");
const DRAINING = 2; // troupe.v1.HostState.HOST_STATE_DRAINING

const MIN_BACKOFF_MS = 2;
const MAX_BACKOFF_MS = 250;

/**
 * @typedef {object} Member a live host, as its record says
 * @property {string} host_id
 * @property {string} subject where it takes calls
 * @property {string[]} actor_types
 * @property {number} state 1 active, 2 draining
 * @property {number} changed revision at which the record's meaning last changed
 * @property {Uint8Array} meaning the record encoded without changed_revision, to compare renewals
 */

/**
 * Resolves after ms milliseconds or when promise settles, whichever is first.
 * @param {Promise<unknown>} promise
 * @param {number} ms
 */
async function within(promise, ms) {
  let timer;
  try {
    await Promise.race([promise, new Promise((resolve) => { timer = setTimeout(resolve, Math.max(0, ms)); })]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The member set and generation that the entries of the membership bucket
 * make, folded in as placement.Watcher does (PROTOCOL.md, "Membership
 * bucket"). Only hosts.* keys count: a watch of the whole bucket also
 * delivers alive.*, released.* and settled entries, which change nothing here.
 * placement/testdata/membership.json holds the cases it must agree on.
 */
export class MemberSet {
  /** @type {Map<string, Member>} the member set, by host id */
  members = new Map();
  /** The table generation: the greatest revision among the entries that count. */
  generation = 0;
  /** The highest bucket revision applied. */
  applied = 0;

  /**
   * Folds one entry in and reports whether the member set changed.
   * @param {{key: string, revision: number, operation: string, value: Uint8Array}} e
   *   operation is "PUT", "DEL", "PURGE", or anything else for the server's
   *   marker of an expired TTL
   */
  apply(e) {
    this.applied = Math.max(this.applied, e.revision);
    const id = e.key.startsWith("hosts.") ? e.key.slice("hosts.".length) : "";
    if (!isName(id)) return false;
    if (e.operation !== "PUT") { // DEL, PURGE, or a purge marker of an expired lease
      this.generation = Math.max(this.generation, e.revision);
      return this.members.delete(id);
    }
    let rec;
    try {
      rec = HostRecord.toObject(HostRecord.decode(e.value), { longs: Number, defaults: true });
    } catch {
      return false; // not a record a host wrote: ignore rather than guess
    }
    if (rec.host_id !== id) return false;
    const meaning = HostRecord.encode(HostRecord.fromObject({ ...rec, changed_revision: 0 })).finish();
    const old = this.members.get(id);
    if (old && Buffer.compare(old.meaning, meaning) === 0) return false; // a renewal (protocol 1)
    let changed = rec.changed_revision;
    if (changed === 0 || changed > e.revision) changed = e.revision;
    this.members.set(id, { ...rec, changed, meaning });
    this.generation = Math.max(this.generation, changed);
    return true;
  }
}

/** A client that routes calls to actors' owners itself. Create it with {@link SmartClient.connect}. */
export class SmartClient {
  #set = new MemberSet();
  /** @type {Map<string, Member>} the member set, by host id */
  #members = this.#set.members;
  /** The table generation: revision of the last entry that changed the member set. */
  generation = 0;
  /** The highest bucket revision applied. */
  applied = 0;
  /** Counts of retried attempts, by cause. */
  retries = { moved: 0, noResponders: 0, unavailable: 0, outcomeUnknown: 0, unanswered: 0 };
  #version = 0; // bumped on every member-set change
  #stopped = false;
  #changed; // resolved and replaced after every applied entry
  #signal;
  #iter;

  /** @param {import("@nats-io/transport-node").NatsConnection} nc */
  constructor(nc) {
    this.nc = nc;
    this.#renew();
  }

  /**
   * Checks the placement hash against the golden vectors, starts watching the
   * membership bucket and returns once the current member set is read.
   * @param {import("@nats-io/transport-node").NatsConnection} nc
   * @param {{bucket?: string, timeoutMs?: number}} [opts] bucket: the
   *   membership bucket (default troupe_placement); timeoutMs bounds the start
   * @returns {Promise<SmartClient>}
   */
  static async connect(nc, { bucket = "troupe_placement", timeoutMs = DEFAULT_TIMEOUT_MS } = {}) {
    verifyVectors();
    const c = new SmartClient(nc);
    await c.#watch(bucket, timeoutMs);
    return c;
  }

  async #watch(bucket, timeoutMs) {
    let caughtUp = false, info;
    try {
      // The watch first delivers the latest entry of every host key, then
      // changes. An empty key space delivers nothing, so ask the stream
      // whether there is anything to wait for (keys only come and go through
      // markers, so a count taken after the watch started is not too small).
      this.#iter = await (await new Kvm(this.nc).open(bucket)).watch({ key: "hosts.*" });
      const jsm = await jetstreamManager(this.nc);
      info = await jsm.streams.info(`KV_${bucket}`, { subjects_filter: `$KV.${bucket}.hosts.*` });
    } catch (err) {
      this.close();
      throw new TroupeError(Codes.UNAVAILABLE, `membership bucket ${bucket}: ${err.message} (is a troupe host running?)`);
    }
    // The bucket names the placement function its hosts place by; routing
    // with another one would send every call to the wrong host.
    const hash = info.config.metadata?.["troupe.hash"];
    if (hash && hash !== HASH_VERSION) {
      this.close();
      throw new TroupeError(Codes.INTERNAL, `membership bucket ${bucket} places by ${hash}; this client implements ${HASH_VERSION}`);
    }
    const done = (async () => {
      try {
        for await (const e of this.#iter) {
          if (this.#apply(e)) this.#version++;
          caughtUp ||= e.delta === 0; // the last entry of the initial read
          this.#notify();
        }
      } catch { /* the connection closed: the client is stopped */ }
      this.#stopped = true;
      this.#notify();
    })();
    if (Object.keys(info.state.subjects ?? {}).length === 0) caughtUp = true;
    const deadline = Date.now() + timeoutMs;
    while (!caughtUp && !this.#stopped && Date.now() < deadline) {
      await within(this.#changed, deadline - Date.now());
    }
    if (!caughtUp) {
      this.close();
      await done;
      throw new TroupeError(Codes.UNAVAILABLE, `reading the member set of bucket ${bucket} took longer than ${timeoutMs} ms`);
    }
  }

  /**
   * Folds one membership entry into the member set and reports whether the
   * member set changed.
   * @param {{key: string, revision: number, operation: string, value: Uint8Array}} e
   */
  #apply(e) {
    const changed = this.#set.apply(e);
    this.generation = this.#set.generation;
    this.applied = this.#set.applied;
    return changed;
  }

  #renew() {
    this.#changed = new Promise((resolve) => { this.#signal = resolve; });
  }

  #notify() {
    this.#signal();
    this.#renew();
  }

  /**
   * The live hosts, sorted by id.
   * @returns {Array<Omit<Member, "meaning">>}
   */
  members() {
    return [...this.#members.values()]
      .map(({ meaning, ...m }) => m)
      .sort((a, b) => (a.host_id < b.host_id ? -1 : 1));
  }

  /**
   * The host that owns (type, id) at the current generation.
   * @param {string} type
   * @param {string | Uint8Array} id
   * @returns {Member | undefined} undefined when no live host serves the type
   */
  ownerOf(type, id) {
    const candidates = [];
    for (const m of this.#members.values()) {
      if (m.state !== DRAINING && m.actor_types.includes(type)) candidates.push(m.host_id);
    }
    const h = owner(type, id, candidates);
    return h === undefined ? undefined : this.#members.get(h);
  }

  /**
   * Waits until the watcher has applied revision rev, or the deadline.
   * @param {number} rev
   * @param {number} deadline Date.now() milliseconds
   * @returns {Promise<boolean>} whether rev was applied
   */
  async waitApplied(rev, deadline) {
    while (this.applied < rev && !this.#stopped && Date.now() < deadline) {
      await within(this.#changed, deadline - Date.now());
    }
    return this.applied >= rev;
  }

  /**
   * Calls method on the actor (type, id) at its owner.
   * @param {string} type actor type, e.g. "counter"
   * @param {string | Uint8Array} id actor id (any 1-1024 bytes)
   * @param {string} method method name
   * @param {string | Uint8Array} [payload] request body
   * @param {{timeoutMs?: number, callId?: string | null, attemptMs?: number}} [opts]
   *   timeoutMs bounds the whole call, retries included (default 5000);
   *   callId is the call's id (default: a new one; null sends none): every
   *   attempt carries it, and with it the client retries OUTCOME_UNKNOWN and
   *   attempts that got no answer within attemptMs (default 1000, doubling),
   *   as PROTOCOL.md's retry rule says
   * @returns {Promise<Uint8Array>} the actor's reply
   * @throws {TroupeError}
   */
  async call(type, id, method, payload, { timeoutMs = DEFAULT_TIMEOUT_MS, callId = newCallId(), attemptMs = ATTEMPT_TIMEOUT_MS } = {}) {
    const bytes = idBytes(id);
    validateCall(type, bytes, method);
    if (callId !== null && !isCallId(callId)) {
      throw new TroupeError(Codes.BAD_REQUEST, `call id ${JSON.stringify(callId)}: want 1-64 printable ASCII characters without spaces`);
    }
    let attempt = attemptMs; // doubled after each attempt that got no answer, not after answers
    const what = `${type} ${encodeId(bytes)}.${method}`;
    const data = payloadBytes(payload);
    const deadline = Date.now() + timeoutMs;
    let backoff = 0;
    // pause waits before another attempt: for the next membership entry or
    // a jittered, doubling backoff, whichever is first.
    const pause = async (version) => {
      backoff = Math.min(Math.max(2 * backoff, MIN_BACKOFF_MS), MAX_BACKOFF_MS);
      const left = deadline - Date.now();
      if (left <= 0) throw new TroupeError(Codes.DEADLINE_EXCEEDED, `${what}: deadline exceeded`);
      if (version !== this.#version) return; // the table already changed
      await within(this.#changed, Math.min(left, backoff / 2 + Math.random() * (backoff / 2)));
    };
    for (;;) {
      if (this.#stopped) throw new TroupeError(Codes.UNAVAILABLE, `${what}: the client is closed`);
      const version = this.#version;
      const host = this.ownerOf(type, bytes);
      if (!host) throw new TroupeError(Codes.NO_HOST, `no live host serves actor type "${type}"`);
      const left = deadline - Date.now();
      if (left <= 0) throw new TroupeError(Codes.DEADLINE_EXCEEDED, `${what}: deadline exceeded`);
      const h = headers();
      for (const [k, v] of callHeaders(host.protocol ?? 0, type, encodeId(bytes), method, this.generation, left, callId ?? "")) {
        h.set(k, v);
      }
      let msg;
      try {
        msg = await this.nc.request(host.subject, data, { timeout: callId ? Math.min(attempt, left) : left, headers: h });
      } catch (err) {
        if (callId && isTimeout(err) && Date.now() < deadline) {
          this.retries.unanswered++; // the host may have died holding it: the same id again
          attempt *= 2;
          continue;
        }
        if (!isNoResponders(err)) throw transportError(err, what, "no responders");
        this.retries.noResponders++;
        await pause(version); // the owner is gone: wait for its lease to end
        continue;
      }
      const e = decodeError(msg);
      if (!e) return msg.data;
      if (e.code === Codes.MOVED) this.retries.moved++;
      if (e.code === Codes.UNAVAILABLE || e.code === Codes.STATE_CONFLICT) this.retries.unavailable++;
      if (e.code === Codes.MOVED && e.generation > this.applied) {
        if (!(await this.waitApplied(e.generation, deadline))) {
          throw new TroupeError(Codes.DEADLINE_EXCEEDED, `${what}: deadline exceeded waiting for generation ${e.generation}`);
        }
        backoff = 0;
      } else if (e.code === Codes.MOVED || e.code === Codes.UNAVAILABLE || e.code === Codes.STATE_CONFLICT) {
        await pause(version);
      } else if (e.code === Codes.OUTCOME_UNKNOWN && callId) {
        this.retries.outcomeUnknown++; // the host answers a repeat from its record
        await pause(version);
      } else {
        throw e;
      }
    }
  }

  /** Stops watching the membership bucket. The connection stays open. */
  close() {
    this.#iter?.stop();
  }
}

if (isMain(import.meta.url)) {
  await runCli("smart-client.js", process.argv.slice(2), async (nc, ...args) => {
    const c = await SmartClient.connect(nc);
    try {
      return await c.call(...args);
    } finally {
      c.close();
    }
  });
}

// Both clients against a real troupe deployment. The Go test
// (test/nodeclients in the repository) starts `troupe dev` and passes its URL in
// TROUPE_NATS_URL and the troupe binary in TROUPE_BIN; without the URL these
// tests are skipped; without the binary the comparisons with it are.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { readFileSync } from "node:fs";
import { connect, headers } from "@nats-io/transport-node";
import { call as gatewayCall } from "../gateway-client.js";
import { Codes, SmartClient, TroupeError } from "../smart-client.js";
import { decodeError } from "../protocol.js";

const url = process.env.TROUPE_NATS_URL;
const bin = process.env.TROUPE_BIN;
const run = `n${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
const text = (b) => new TextDecoder().decode(b);
const dir = fileURLToPath(new URL("..", import.meta.url));
const troupeEnv = { ...process.env, NATS_URL: "", GORACE: "atexit_sleep_ms=0" };

/** Runs a troupe CLI command and returns its standard output. */
async function troupe(...args) {
  const { stdout } = await promisify(execFile)(bin, [args[0], "-s", url, ...args.slice(1)], { env: troupeEnv, timeout: 20_000 });
  return stdout;
}

/** Polls cond every 20 ms until it holds, or fails after ms. */
async function waitFor(what, ms, cond) {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Asserts that promise rejects with a TroupeError of one of codes. */
async function rejectsWith(promise, ...codes) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof TroupeError, `want a TroupeError, got ${e?.stack ?? e}`);
    assert.ok(codes.includes(e.code), `code ${e.code} (${e.name}: ${e.message}), want one of ${codes}`);
    return true;
  });
}

describe("against a troupe deployment", { skip: url ? false : "TROUPE_NATS_URL is not set" }, () => {
  let nc, smart;
  before(async () => {
    nc = await connect({ servers: url, name: "troupe node tests" });
    smart = await SmartClient.connect(nc);
  });
  after(async () => {
    smart?.close();
    await nc?.close();
  });

  test("both clients: the same call id twice applies a call once", async () => {
    const id = `${run}-idem`;
    const first = text(await gatewayCall(nc, "counter", id, "add", "5", { callId: `${run}-g1` }));
    const again = text(await gatewayCall(nc, "counter", id, "add", "5", { callId: `${run}-g1` }));
    assert.equal(first, "5");
    assert.equal(again, "5", "a repeat through the gateway gets the recorded reply");
    const viaSmart = text(await smart.call("counter", id, "add", "5", { callId: `${run}-g1` }));
    assert.equal(viaSmart, "5", "a repeat from the smart client gets the recorded reply too");
    assert.equal(text(await smart.call("counter", id, "add", "2", { callId: `${run}-s1` })), "7");
    assert.equal(text(await smart.call("counter", id, "add", "2", { callId: `${run}-s1` })), "7");
    assert.equal(text(await smart.call("counter", id, "get")), "7");
    await rejectsWith(gatewayCall(nc, "counter", id, "add", "1", { callId: "has space" }), Codes.BAD_REQUEST);
    assert.equal(text(await gatewayCall(nc, "counter", id, "add", "1", { callId: null })), "8");
  });

  test("smart client: counters add up and troupe call sees the same totals", async () => {
    const ids = Array.from({ length: 20 }, (_, i) => `${run}-k${i}`);
    for (let round = 1; round <= 2; round++) {
      const got = await Promise.all(ids.map((id, i) => smart.call("counter", id, "add", String(i + 1))));
      assert.deepEqual(got.map(text), ids.map((_, i) => String(round * (i + 1))));
    }
    const odd = `${run} any id. even *this* >`;
    assert.equal(text(await smart.call("counter", odd, "add", "3")), "3");
    if (!bin) return;
    const checked = [...ids.slice(0, 5).map((id, i) => [id, 2 * (i + 1)]), [odd, 3]];
    for (const [id, want] of checked) assert.equal((await troupe("call", "counter", id, "get")).trim(), String(want));
    await troupe("call", "counter", ids[0], "add", "10");
    assert.equal(text(await smart.call("counter", ids[0], "get")), "12");
  });

  test("smart client: concurrent calls to one actor run one turn at a time", async () => {
    const id = `${run}-hot`;
    await Promise.all(Array.from({ length: 64 }, () => smart.call("counter", id, "add", "1")));
    assert.equal(text(await smart.call("counter", id, "get")), "64");
  });

  test("smart client: typed errors", async () => {
    await rejectsWith(smart.call("nosuch", "x", "get"), Codes.NO_HOST);
    await rejectsWith(smart.call("counter", `${run}-e`, "nosuch"), Codes.UNKNOWN_METHOD);
    await rejectsWith(smart.call("counter", `${run}-e`, "add", "notanumber"), Codes.INVALID_ARGUMENT);
    await rejectsWith(smart.call("a.b", "x", "get"), Codes.UNKNOWN_TYPE);
    await rejectsWith(smart.call("counter", "", "get"), Codes.INVALID_ID);
    await rejectsWith(smart.call("counter", "x", "a b"), Codes.INVALID_METHOD);
    const e = await smart.call("counter", `${run}-e`, "add", "x").catch((err) => err);
    assert.match(e.message, /decimal integer/);
  });

  test("smart client: member set and generation agree with troupe hosts", { skip: !bin && "TROUPE_BIN is not set" }, async () => {
    const out = await troupe("hosts");
    const [first, ...lines] = out.trim().split("\n");
    assert.equal(first, `generation ${smart.generation}`);
    assert.deepEqual(lines.map((l) => l.split(/\s+/)[0]), smart.members().map((m) => m.host_id));
  });

  test("smart client: a host joins and leaves while calls run", { skip: !bin && "TROUPE_BIN is not set" }, async (t) => {
    const name = `${run}-h2`;
    const ids = Array.from({ length: 30 }, (_, i) => `${run}-m${i}`);
    const want = new Map(ids.map((id) => [id, 0]));
    // load keeps calling every counter, one call per counter at a time,
    // until stop() and returns when the calls in flight ended.
    const load = () => {
      let on = true;
      const loops = ids.map(async (id) => {
        while (on) {
          await smart.call("counter", id, "add", "1");
          want.set(id, want.get(id) + 1);
        }
      });
      const all = Promise.all(loops);
      all.catch(() => {}); // reported by stop()
      return async () => { on = false; await all; };
    };
    const before = smart.generation;
    let stop = load();
    const h2 = spawn(bin, ["host", "-s", url, "--name", name], { env: troupeEnv, stdio: ["ignore", "ignore", "pipe"] });
    let log = "";
    h2.stderr.on("data", (d) => { log += d; });
    const exited = new Promise((resolve) => h2.on("exit", resolve));
    try {
      await waitFor(`host ${name} in the member set`, 15_000, () => smart.members().some((m) => m.host_id === name));
      await new Promise((r) => setTimeout(r, 200));
      await stop();
      assert.ok(smart.generation > before);
      assert.equal((await troupe("hosts")).split("\n")[0], `generation ${smart.generation}`);
      assert.ok(ids.some((id) => smart.ownerOf("counter", id).host_id === name), "the new host owns some of 30 counters");
      stop = load(); // and keep calling while it drains and leaves
      h2.kill("SIGTERM");
      assert.equal(await exited, 0, log);
      await waitFor(`host ${name} to leave`, 15_000, () => !smart.members().some((m) => m.host_id === name));
      await stop();
      const totals = await Promise.all(ids.map((id) => smart.call("counter", id, "get")));
      assert.deepEqual(totals.map(text), ids.map((id) => String(want.get(id))));
      t.diagnostic(`calls: ${[...want.values()].reduce((a, b) => a + b)}, retried attempts: ${JSON.stringify(smart.retries)}`);
    } finally {
      await stop();
      h2.kill("SIGKILL");
    }
  });

  test("gateway client: counters agree with the smart client and troupe call", async () => {
    const ids = [`${run}-g1`, `${run} g.2 *>`, Buffer.concat([Buffer.from(run), Buffer.from([0, 0xff, 0x2e])])];
    for (const [i, id] of ids.entries()) {
      assert.equal(text(await gatewayCall(nc, "counter", id, "add", String(i + 5))), String(i + 5));
      assert.equal(text(await smart.call("counter", id, "add", "1")), String(i + 6));
      assert.equal(text(await gatewayCall(nc, "counter", id, "get", "", { timeoutMs: 2000 })), String(i + 6));
    }
    if (bin) assert.equal((await troupe("call", "counter", ids[1], "get")).trim(), "7");
  });

  test("gateway client: typed errors", async () => {
    await rejectsWith(gatewayCall(nc, "nosuch", "x", "get"), Codes.UNKNOWN_TYPE, Codes.NO_HOST);
    await rejectsWith(gatewayCall(nc, "counter", `${run}-e`, "nosuch"), Codes.UNKNOWN_METHOD);
    await rejectsWith(gatewayCall(nc, "counter", `${run}-e`, "add", "notanumber"), Codes.INVALID_ARGUMENT);
    const e = await gatewayCall(nc, "counter", `${run}-e`, "add", "x").catch((err) => err);
    assert.match(e.message, /decimal integer/);
  });

  test("command lines print the reply, or the error with exit status 1", async () => {
    const node = (...args) => promisify(execFile)(process.execPath, args, { cwd: dir, timeout: 20_000 });
    const id = `${run}-cli`;
    assert.equal((await node("gateway-client.js", url, "counter", id, "add", "5")).stdout, "5\n");
    assert.equal((await node("smart-client.js", url, "counter", id, "add", "2")).stdout, "7\n");
    await assert.rejects(node("smart-client.js", url, "nosuch", id, "get"), (e) => {
      assert.equal(e.code, 1);
      assert.match(e.stderr, /^troupe: NO_HOST: /);
      return true;
    });
  });

  test("gateway: the shared conformance cases get the codes they list", async () => {
    const cases = JSON.parse(readFileSync(new URL("../../../protocol/testdata/calls.json", import.meta.url), "utf8"));
    assert.ok(cases.gateway_requests.length > 0);
    for (const c of cases.gateway_requests) {
      const h = headers();
      for (const [k, vs] of Object.entries(c.headers)) for (const v of vs) h.append(k, v);
      const msg = await nc.request(`troupe.${c.subject}`, new Uint8Array(), { timeout: 10_000, headers: h });
      const e = decodeError(msg);
      assert.equal(e ? e.name : "", c.code, `${c.name}: ${e?.message ?? "success"}`);
    }
  });
});

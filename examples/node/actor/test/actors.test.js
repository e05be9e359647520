// The example JavaScript actors against a real troupe deployment: the Go
// test TestNodeActorPackage (test/nodeclients) starts `troupe dev
// --worker-types jscounter,jsproxy` and passes its URL in TROUPE_NATS_URL;
// without it these tests are skipped. The worker runs in this process.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { call } from "../../gateway-client.js";
import { Codes, TroupeError } from "../../protocol.js";
import { exampleWorker } from "../examples.js";

const url = process.env.TROUPE_NATS_URL;
const run = `a${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
const text = (b) => new TextDecoder().decode(b);

describe("JavaScript actors served by a worker", { skip: url ? false : "TROUPE_NATS_URL is not set" }, () => {
  let nc, worker;
  before(async () => {
    nc = await connect({ servers: url });
    worker = exampleWorker(nc);
    await worker.start();
  });
  after(async () => {
    await worker?.stop();
    await nc?.close();
  });
  const c = async (type, id, method, payload) => text(await call(nc, type, id, method, payload));
  const fails = async (promise, code, re) => {
    await assert.rejects(promise, (err) => {
      assert.ok(err instanceof TroupeError, String(err));
      assert.equal(err.code, code, `${err.name}: ${err.message}`);
      if (re) assert.match(err.message, re);
      return true;
    });
  };

  test("jscounter keeps a durable total", async () => {
    const id = `${run}-c`;
    assert.equal(await c("jscounter", id, "add", "5"), "5");
    assert.equal(await c("jscounter", id, "add", "-2"), "3");
    assert.equal(await c("jscounter", id, "get"), "3");
    await fails(call(nc, "jscounter", id, "add", "x"), Codes.INVALID_ARGUMENT);
    await fails(call(nc, "jscounter", id, "nope"), Codes.UNKNOWN_METHOD);
    assert.equal(await c("jscounter", id, "get"), "3");
  });

  test("awkward ids stay distinct", async () => {
    for (const id of [`${run} a.b`, `${run} a*b`, `${run} ü`]) {
      assert.equal(await c("jscounter", id, "add", "1"), "1", id);
    }
  });

  test("a JavaScript actor calls a Go actor", async () => {
    const id = `${run}-p`;
    assert.equal(await c("jsproxy", id, "add", "4"), "4");
    assert.equal(await c("counter", id, "get"), "4");
  });

  test("a Go actor calls a JavaScript actor, and back through it", async () => {
    const id = `${run}-r`;
    assert.equal(await c("relay", id, "echo", "hi"), `jsproxy ${id}: hi`);
    assert.equal(await c("relay", id, "add", "2"), "2");
    assert.equal(await c("counter", id, "get"), "2");
  });

  test("a cycle in the call chain is caught, not waited out", async () => {
    const t0 = Date.now();
    await assert.rejects(call(nc, "jsproxy", `${run}-cy`, "back", "x"), (err) => {
      assert.equal(err.code, Codes.APPLICATION, err.message);
      assert.equal(err.appCode, "WOULD_DEADLOCK");
      assert.match(err.message, /jsproxy\/.*relay\/.*jsproxy\//);
      return true;
    });
    assert.ok(Date.now() - t0 < 2000, "the cycle was waited out");
  });

  test("an application error keeps its code", async () => {
    await assert.rejects(call(nc, "jsproxy", `${run}-f`, "fail", "x"), (err) => err.code === Codes.APPLICATION && err.appCode === "refused");
  });

  test("a reminder set by a JavaScript actor fires", async () => {
    const id = `${run}-rem`;
    assert.equal(await c("jscounter", id, "every", "1s"), "ok");
    const deadline = Date.now() + 15_000;
    let total = 0;
    while (total < 2 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      total = Number(await c("jscounter", id, "get"));
    }
    assert.equal(await c("jscounter", id, "stop"), "ok");
    assert.ok(total >= 2, `the reminder added ${total}, want 2 or more`);
  });
});

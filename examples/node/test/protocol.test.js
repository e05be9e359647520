import { test } from "node:test";
import assert from "node:assert/strict";
import { headers } from "@nats-io/transport-node";
import { CALL_HEADER_VERSION, Codes, Headers, TroupeError, callHeader, callHeaders, decodeError, decodeId, encodeId } from "../protocol.js";

test("encodeId follows PROTOCOL.md", () => {
  assert.equal(encodeId("c1"), "c1");
  assert.equal(encodeId("a.b"), "a%2Eb");
  assert.equal(encodeId("A-z_0~:@=+,-"), "A-z_0~:@=+,-");
  assert.equal(encodeId("a b*>%"), "a%20b%2A%3E%25");
  assert.equal(encodeId("héllo"), "h%C3%A9llo");
  assert.equal(encodeId("\u0000"), "%00");
  assert.equal(encodeId(Uint8Array.of(0xff, 0x2e)), "%FF%2E");
});

test("encodeId round-trips through decodeId", () => {
  const ids = ["c1", "a.b.c", "any id. even *this*", "tab\there", "\u0000\u0000", "日本語", "%41", "a%2Eb"];
  for (const id of ids) assert.deepEqual(decodeId(encodeId(id)), new TextEncoder().encode(id));
  for (let n = 0; n < 200; n++) {
    const b = Uint8Array.from({ length: 1 + (n % 40) }, () => Math.floor(Math.random() * 256));
    const enc = encodeId(b);
    assert.match(enc, /^[A-Za-z0-9_~:@=+,%-]+$/);
    assert.deepEqual(decodeId(enc), b);
  }
});

test("callHeader writes the Troupe-Call header of PROTOCOL.md", () => {
  assert.equal(Headers.call, "Troupe-Call");
  assert.equal(callHeader("counter", encodeId("a.b c"), "add", 42, 5000), "counter a%2Eb%20c add 42 5000");
  assert.equal(callHeader("counter", "c1", "get", 0, 2999.2), "counter c1 get 0 3000");
  assert.equal(callHeader("counter", "c1", "get", 7, -3), "counter c1 get 7 0");
});

test("callHeaders sends Troupe-Call only to hosts that speak it", () => {
  assert.equal(CALL_HEADER_VERSION, 2);
  assert.deepEqual(callHeaders(2, "counter", "c1", "add", 42, 5000), [["Troupe-Call", "counter c1 add 42 5000"]]);
  const old = [
    ["Troupe-Type", "counter"], ["Troupe-Id", "c1"], ["Troupe-Method", "add"],
    ["Troupe-Generation", "42"], ["Troupe-Timeout", "5000"],
  ];
  assert.deepEqual(callHeaders(0, "counter", "c1", "add", 42, 5000), old);
  assert.deepEqual(callHeaders(1, "counter", "c1", "add", 42, 5000), old);
});

test("decodeId accepts only the canonical form", () => {
  for (const bad of ["%63", "a%2eb", "a.b", "a b", "%", "%4", "%ZZ", "é"]) {
    assert.throws(() => decodeId(bad), TypeError, bad);
  }
});

test("decodeError reads the error headers and keeps the full body", () => {
  const h = headers();
  h.set("Nats-Service-Error-Code", "12");
  h.set("Nats-Service-Error", "APPLICATION: short");
  h.set("Troupe-App-Code", "E42");
  const e = decodeError({ headers: h, data: new TextEncoder().encode("the full\nmessage") });
  assert.ok(e instanceof TroupeError);
  assert.equal(e.code, Codes.APPLICATION);
  assert.equal(e.name, "APPLICATION");
  assert.equal(e.appCode, "E42");
  assert.equal(e.message, "the full\nmessage");
  assert.equal(decodeError({ headers: headers(), data: new Uint8Array() }), null);
  assert.equal(decodeError({ data: new Uint8Array() }), null);
  const moved = headers();
  moved.set("Nats-Service-Error-Code", "11");
  moved.set("Nats-Service-Error", "MOVED: not mine");
  moved.set("Troupe-Generation", "7");
  const m = decodeError({ headers: moved, data: new Uint8Array() });
  assert.equal(m.message, "MOVED: not mine");
  assert.equal(m.generation, 7);
});

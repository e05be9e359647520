import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { CALL_HEADER_VERSION, callHeader, callHeaders, encodeId, isCallId, newCallId } from "../protocol.js";

// The calls' conformance cases that the Go tests check too.
const cases = JSON.parse(readFileSync(new URL("../../../protocol/testdata/calls.json", import.meta.url), "utf8"));

test("Troupe-Call values match the shared conformance cases", () => {
  assert.ok(cases.call_header.length > 0);
  for (const c of cases.call_header) {
    assert.equal(encodeId(c.id), c.id_encoded, `encodeId(${JSON.stringify(c.id)})`);
    // Generations are 64-bit: the case file may hold more than a double keeps.
    const gen = BigInt(c.value.split(" ")[3]);
    assert.equal(callHeader(c.type, c.id_encoded, c.method, gen, c.timeout_ms), c.value);
  }
});

test("a host that does not announce version 2 gets the five headers", () => {
  const c = cases.call_header[0];
  const old = new Map(callHeaders(0, c.type, c.id_encoded, c.method, c.generation, c.timeout_ms));
  assert.deepEqual([...old.keys()], ["Troupe-Type", "Troupe-Id", "Troupe-Method", "Troupe-Generation", "Troupe-Timeout"]);
  const v2 = new Map(callHeaders(CALL_HEADER_VERSION, c.type, c.id_encoded, c.method, c.generation, c.timeout_ms));
  assert.equal(v2.get("Troupe-Call"), c.value);
});

test("call ids match the shared conformance cases", () => {
  assert.ok(cases.call_ids.valid.length > 0 && cases.call_ids.invalid.length > 0);
  for (const id of cases.call_ids.valid) {
    assert.ok(isCallId(id), `isCallId(${JSON.stringify(id)})`);
    assert.equal(callHeader("counter", "c1", "add", 7, 100, id), `counter c1 add 7 100 ${id}`);
  }
  for (const id of cases.call_ids.invalid) assert.ok(!isCallId(id), `!isCallId(${JSON.stringify(id)})`);
  const id = newCallId();
  assert.ok(isCallId(id) && id.length === 22, id);
  const old = new Map(callHeaders(0, "counter", "c1", "add", 7, 100, id));
  assert.equal(old.get("Troupe-Call-Id"), id);
});

import { test } from "node:test";
import assert from "node:assert/strict";
import { HASH_VERSION, hostHash, keyHash, owner, verifyVectors } from "../placement.js";

test("the placement hash matches the Go golden vectors", () => {
  assert.equal(HASH_VERSION, "troupe-hrw-1");
  assert.ok(verifyVectors() > 0);
});

test("keyHash hashes bytes: a string and its UTF-8 bytes agree", () => {
  assert.equal(keyHash("counter", "héllo"), keyHash("counter", Buffer.from("héllo")));
  assert.notEqual(keyHash("counter", "a"), keyHash("counte", "ra"));
  assert.ok(hostHash("host-0") < 1n << 64n);
});

test("owner: no candidate means no owner; one candidate owns everything", () => {
  assert.equal(owner("counter", "x", []), undefined);
  for (const id of ["a", "b", "c"]) assert.equal(owner("counter", id, ["only"]), "only");
});

test("owner does not depend on the order of the candidates", () => {
  const hosts = ["h1", "h2", "h3", "h4"];
  for (let i = 0; i < 50; i++) {
    assert.equal(owner("counter", `k${i}`, hosts), owner("counter", `k${i}`, [...hosts].reverse()));
  }
});

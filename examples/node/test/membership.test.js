// The smart client's member set and generation, driven by hand-written
// records in a scratch bucket on the deployment of TROUPE_NATS_URL.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { Codes, HostRecord, SmartClient, TroupeError } from "../smart-client.js";

const url = process.env.TROUPE_NATS_URL;
const skip = url ? false : "TROUPE_NATS_URL is not set";
const bucket = `troupe_node_test_${Date.now().toString(36)}`;
let nc, kvm, kv;

before(async () => {
  if (skip) return;
  nc = await connect({ servers: url });
  kvm = new Kvm(nc);
  kv = await kvm.create(bucket, { history: 1 });
});

after(async () => {
  if (skip) return;
  await kv?.destroy().catch(() => {});
  await nc.close();
});

/** Writes a host record and returns its revision. */
function put(id, fields) {
  const rec = { host_id: id, subject: `troupe.host.${id}`, actor_types: ["counter"], state: 1, incarnation: "i1", ...fields };
  return kv.put(`hosts.${id}`, HostRecord.encode(HostRecord.fromObject(rec)).finish());
}

test("generation and member set follow the PROTOCOL.md rules", { skip }, async () => {
  const c = await SmartClient.connect(nc, { bucket });
  const late = [];
  try {
    assert.equal(c.generation, 0);
    assert.deepEqual(c.members(), []);
    await assert.rejects(c.call("counter", "x", "get"), (e) => e instanceof TroupeError && e.code === Codes.NO_HOST);

    const r1 = await put("hA", {});
    await c.waitApplied(r1, Date.now() + 5000);
    assert.equal(c.generation, r1, "a join is a change");
    assert.equal(c.ownerOf("counter", "x").host_id, "hA");

    const r2 = await put("hA", { changed_revision: r1 }); // a renewal
    await c.waitApplied(r2, Date.now() + 5000);
    assert.equal(c.generation, r1, "a renewal is not a change");

    const r3 = await put("hB", { host_id: "not-hB" });
    await c.waitApplied(r3, Date.now() + 5000);
    assert.equal(c.generation, r1, "a record whose host_id is not its key's is ignored");
    assert.equal(c.members().length, 1);

    const r4 = await put("hA", { state: 2 }); // draining: a change of meaning
    await c.waitApplied(r4, Date.now() + 5000);
    assert.equal(c.generation, r4);
    assert.equal(c.ownerOf("counter", "x"), undefined, "a draining host owns nothing");

    const r5 = await put("hA", { state: 2, changed_revision: r4 });
    await c.waitApplied(r5, Date.now() + 5000);
    late.push(await SmartClient.connect(nc, { bucket }));
    assert.equal(c.generation, r4);
    assert.equal(late[0].generation, r4, "a late watcher derives the same generation from changed_revision");

    const r6 = await put("hC", { actor_types: ["other"] });
    await kv.delete("hosts.hA");
    const r7 = (await kv.get("hosts.hA")).revision; // the delete marker's
    for (const w of [c, late[0]]) {
      await w.waitApplied(r7, Date.now() + 5000);
      assert.equal(w.generation, r7, "a delete is a change");
      assert.deepEqual(w.members().map((m) => m.host_id), ["hC"]);
    }
    assert.ok(r6 < r7);
    late.push(await SmartClient.connect(nc, { bucket }));
    assert.equal(late[1].generation, r7, "a late watcher sees the delete marker");
  } finally {
    for (const w of [c, ...late]) w.close();
  }
});

// The membership conformance cases that the Go tests check too
// (placement.TestMembershipConformance); no server needed.
test("the member set follows the shared membership conformance cases", async () => {
  const { readFileSync } = await import("node:fs");
  const { MemberSet } = await import("../smart-client.js");
  const file = JSON.parse(readFileSync(new URL("../../../placement/testdata/membership.json", import.meta.url), "utf8"));
  assert.ok(file.cases.length > 0);
  for (const c of file.cases) {
    const set = new MemberSet();
    c.steps.forEach((s, i) => {
      const value = s.value_hex !== undefined ? Buffer.from(s.value_hex, "hex")
        : s.record ? HostRecord.encode(HostRecord.fromObject(s.record)).finish() : new Uint8Array();
      set.apply({ key: s.key, revision: s.revision, operation: s.op, value });
      const members = [...set.members.keys()].sort();
      const draining = [...set.members.values()].filter((m) => m.state === 2).map((m) => m.host_id).sort();
      const at = `${c.name}, step ${i} (${s.op} ${s.key} at ${s.revision})`;
      assert.equal(set.generation, s.generation, `${at}: generation`);
      assert.deepEqual(members, s.members, `${at}: members`);
      assert.deepEqual(draining, s.draining ?? [], `${at}: draining`);
    });
  }
});

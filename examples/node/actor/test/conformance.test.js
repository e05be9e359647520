import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Codes, TroupeError } from "../../protocol.js";
import { ActorError, TurnKind, WorkerAnswer, WorkerTurn, errorAnswer, runTurn } from "../index.js";

// The worker protocol's conformance cases that the Go tests check too.
const cases = JSON.parse(readFileSync(new URL("../../../../protocol/testdata/workers.json", import.meta.url), "utf8"));
const types = { WorkerTurn, WorkerAnswer };
const hex = (b) => Buffer.from(b).toString("hex");

test("Conformance: WorkerTurn and WorkerAnswer encode and decode as the shared cases say", () => {
  assert.ok(cases.encodings.length > 0);
  for (const c of cases.encodings) {
    const T = types[c.message];
    assert.ok(T, c.message);
    assert.equal(hex(T.encode(T.fromObject(c.value)).finish()), c.hex, c.name);
    const opts = { bytes: String, enums: String };
    assert.deepEqual(T.toObject(T.decode(Buffer.from(c.hex, "hex")), opts), T.toObject(T.fromObject(c.value), opts), c.name);
  }
});

const decodeTurn = (c) => WorkerTurn.toObject(WorkerTurn.decode(Buffer.from(c.hex, "hex")), { defaults: true });
const turnCase = (name) => decodeTurn(cases.encodings.find((c) => c.name === name));

test("Conformance: a handler's answer to the shared call turn", async () => {
  const msg = turnCase("a call turn");
  assert.equal(msg.kind, TurnKind.CALL);
  const answer = await runTurn({}, {
    add(turn) {
      assert.equal(turn.type, "jscounter");
      assert.equal(turn.id, "c1");
      assert.deepEqual(turn.headers.get("X-Request"), ["r1"]);
      const total = turn.stateInt() + turn.int();
      turn.setState(String(total));
      return String(total);
    },
  }, msg);
  const want = cases.encodings.find((c) => c.name === "a reply with new state");
  assert.equal(hex(WorkerAnswer.encode(WorkerAnswer.fromObject(answer)).finish()), want.hex);
});

test("an activation, a timer and a reminder reach their handlers", async () => {
  const seen = [];
  const handlers = {
    activate(turn) { seen.push(["activate", turn.getText("owner")]); },
    timer(turn) { seen.push(["timer", turn.name]); },
    add(turn) { seen.push(["add", turn.name, turn.text()]); },
  };
  for (const name of ["an activation turn of an id with a dot, with named keys", "a timer tick", "a reminder firing"]) {
    const a = await runTurn({}, handlers, turnCase(name));
    assert.equal(a.error_code, undefined, JSON.stringify(a));
    assert.equal(a.state_changed, undefined);
  }
  assert.deepEqual(seen, [["activate", "ann"], ["timer", "flush"], ["add", "tick", "1"]]);
});

test("errors map to the codes a worker may answer", async () => {
  const msg = turnCase("a call turn");
  const run = (f) => runTurn({}, { add: f }, msg);
  assert.deepEqual(await run(() => { throw new ActorError("insufficient_funds", "balance is 3"); }),
    { error_code: Codes.APPLICATION, error_message: "balance is 3", app_code: "insufficient_funds" });
  assert.equal((await run(() => { throw new TroupeError(Codes.INVALID_ARGUMENT, "bad"); })).error_code, Codes.INVALID_ARGUMENT);
  assert.equal((await run(() => { throw new Error("boom"); })).error_code, Codes.APPLICATION);
  // A failed call to another actor: APPLICATION named by its code, never a
  // code only troupe may give.
  assert.deepEqual(errorAnswer(new TroupeError(Codes.MOVED, "moved")), { error_code: Codes.APPLICATION, error_message: "moved", app_code: "MOVED" });
  assert.equal((await runTurn({}, {}, msg)).error_code, Codes.UNKNOWN_METHOD);
  assert.equal((await runTurn({}, { activate() {} }, { ...msg, method: "activate" })).error_code, Codes.UNKNOWN_METHOD);
});

test("state changes replace the whole state, sorted, and effects are listed", async () => {
  const a = await runTurn({}, {
    add(turn) {
      turn.set("b", "z");
      turn.set("a", "y");
      turn.delete("");
      turn.setTimer("flush", { dueMs: 100, periodMs: 1000 });
      turn.stopTimer("old");
      turn.setReminder("tick", { schedule: "@every 5s", method: "add", payload: "1" });
      turn.deleteReminder("gone");
      return "ok";
    },
  }, turnCase("a call turn"));
  assert.equal(a.state_changed, true);
  assert.deepEqual(a.state.map((e) => e.name), ["a", "b"]);
  assert.deepEqual(a.timers, [{ name: "flush", due_ms: 100, period_ms: 1000 }, { name: "old", cancel: true }]);
  assert.equal(a.reminders.length, 2);
});

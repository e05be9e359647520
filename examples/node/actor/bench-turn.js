// How long the JavaScript side of a worker turn takes, without NATS: decode
// a WorkerTurn of the counter, run jscounter's add, encode the answer.
//
//   node actor/bench-turn.js [turns]

import { WorkerAnswer, WorkerTurn, runTurn } from "./index.js";
import { jscounter } from "./examples.js";

const turn = WorkerTurn.encode({
  actor_type: "jscounter", actor_id: Buffer.from("ab1"), method: "add", payload: Buffer.from("1"),
  state: [{ name: "", value: Buffer.from("12345") }], chain: "4f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e",
  chain_path: "jscounter/ab1", timeout_ms: 2000, host_id: "h-1",
}).finish();
const n = Number(process.argv[2] ?? 200000);
for (let i = 0; i < 10000; i++) WorkerAnswer.encode(await runTurn({}, jscounter, WorkerTurn.decode(turn))).finish();
const start = process.hrtime.bigint();
for (let i = 0; i < n; i++) WorkerAnswer.encode(await runTurn({}, jscounter, WorkerTurn.decode(turn))).finish();
const ns = Number(process.hrtime.bigint() - start) / n;
console.log(`${n} turns: ${(ns / 1000).toFixed(2)} µs per turn`);

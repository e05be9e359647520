// A worker that dies mid-turn, for TestNodeActorWorkerKilledMidTurn
// (test/nodeclients): it serves jscounter, answers the activation, and kills
// itself with SIGKILL when a call arrives, before answering.
//
//   node actor/testdata/dying-worker.js nats://127.0.0.1:4222

import { connect } from "@nats-io/transport-node";
import { Worker } from "../index.js";

const nc = await connect({ servers: process.argv[2] });
const w = new Worker(nc).register("jscounter", {
  add() {
    console.log("dying mid-turn");
    process.kill(process.pid, "SIGKILL");
    return new Promise(() => {});
  },
});
await w.start();
console.log("ready");

// The example JavaScript actors, served by a worker next to the Go actors of
// `troupe dev --worker-types jscounter,jsproxy`:
//
//   jscounter  add N   adds the decimal integer N to a durable total, replies the total
//              get     replies the total
//              every S sets the durable reminder "tick", which adds 1 every S (such as 5s)
//              stop    deletes the reminder "tick"
//   jsproxy    echo X  replies "jsproxy <id>: X"
//              add N   calls the Go counter of the same id (counter <id> add N), replies its total
//              back X  calls the Go actor relay <id> echo X, which calls jsproxy <id> echo:
//                      a cycle in one call chain, answered WOULD_DEADLOCK
//
//   node actor/examples.js [nats://127.0.0.1:4222]
//
// It runs until SIGINT or SIGTERM, then lets running turns answer and exits.

import { connect } from "@nats-io/transport-node";
import { isMain } from "../cli.js";
import { ActorError, Codes, TroupeError, Worker } from "./index.js";

const dec = new TextDecoder();

/** jscounter: a durable integer total, like the Go counter. */
export const jscounter = {
  add(turn) {
    const total = turn.stateInt() + turn.int();
    if (!Number.isSafeInteger(total)) throw new TroupeError(Codes.INVALID_ARGUMENT, `add ${turn.text()} would overflow the total`);
    turn.setState(String(total));
    return String(total);
  },
  get(turn) {
    return String(turn.stateInt());
  },
  every(turn) {
    turn.setReminder("tick", { schedule: `@every ${turn.text() || "5s"}`, method: "add", payload: "1" });
    return "ok";
  },
  stop(turn) {
    turn.deleteReminder("tick");
    return "ok";
  },
};

/** jsproxy: a JavaScript actor that calls Go actors and is called by them. */
export const jsproxy = {
  echo(turn) {
    return `jsproxy ${turn.id}: ${turn.text()}`;
  },
  async add(turn) {
    return dec.decode(await turn.call("counter", turn.idBytes, "add", turn.payload));
  },
  async back(turn) {
    return dec.decode(await turn.call("relay", turn.idBytes, "echo", turn.payload));
  },
  fail(turn) {
    throw new ActorError("refused", `jsproxy ${turn.id} refuses ${turn.text()}`);
  },
};

/** Makes a worker serving both example types on nc. */
export function exampleWorker(nc, opts) {
  return new Worker(nc, opts).register("jscounter", jscounter).register("jsproxy", jsproxy);
}

if (isMain(import.meta.url)) {
  const url = process.argv[2] ?? process.env.TROUPE_NATS_URL ?? "nats://127.0.0.1:4222";
  const nc = await connect({ servers: url, name: "troupe js worker", maxReconnectAttempts: -1 });
  const w = exampleWorker(nc);
  await w.start();
  console.log(`serving jscounter, jsproxy on ${url}`);
  const stop = async () => {
    await w.stop();
    await nc.drain();
    process.exit(0);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

// The command line both clients share: URL TYPE ID METHOD [PAYLOAD | -].

import { pathToFileURL } from "node:url";
import { connect } from "@nats-io/transport-node";
import { TroupeError } from "./protocol.js";

/**
 * Tells whether the module at moduleUrl is the program node was started with.
 * @param {string} moduleUrl import.meta.url of the caller
 */
export function isMain(moduleUrl) {
  return process.argv[1] !== undefined && moduleUrl === pathToFileURL(process.argv[1]).href;
}

/**
 * Runs one call from the command line: prints the reply, or
 * `troupe: CODE: message` on standard error with exit status 1.
 * @param {string} program the script's name, for the usage line
 * @param {string[]} argv the arguments after the script
 * @param {(nc: import("@nats-io/transport-node").NatsConnection, type: string, id: string,
 *          method: string, payload: Uint8Array) => Promise<Uint8Array>} run makes the call
 */
export async function runCli(program, argv, run) {
  if (argv.length < 4 || argv.length > 5) {
    console.error(`usage: node ${program} NATS_URL TYPE ID METHOD [PAYLOAD | -]`);
    process.exitCode = 2;
    return;
  }
  const [url, type, id, method, arg = ""] = argv;
  let payload = new TextEncoder().encode(arg);
  if (arg === "-") {
    const chunks = [];
    for await (const c of process.stdin) chunks.push(c);
    payload = new Uint8Array(Buffer.concat(chunks));
  }
  const nc = await connect({ servers: url, name: `troupe ${program}` });
  try {
    const reply = await run(nc, type, id, method, payload);
    process.stdout.write(Buffer.concat([reply, Buffer.from("\n")]));
  } catch (err) {
    console.error(err instanceof TroupeError ? `troupe: ${err.name}: ${err.message}` : `troupe: ${err?.stack ?? err}`);
    process.exitCode = 1;
  } finally {
    await nc.close();
  }
}

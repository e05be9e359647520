// Types of the JavaScript actor package (index.js), for TypeScript users and
// editors. PROTOCOL.md, "Actors in other languages (workers)", is the wire
// contract; docs/workers.md the guide.

import type { NatsConnection } from "@nats-io/transport-node";
import type { Type } from "protobufjs";
import { TroupeError } from "../protocol.js";

export { Codes, TroupeError } from "../protocol.js";

/** The protobuf types of the worker messages, read from pb/troupe.proto. */
export const WorkerTurn: Type;
export const WorkerAnswer: Type;

/** Why a turn runs. */
export const TurnKind: Readonly<{ CALL: 0; ACTIVATE: 1; TIMER: 2; REMINDER: 3 }>;

/** An APPLICATION error with the actor's own code. */
export class ActorError extends TroupeError {
  constructor(appCode: string, message: string);
}

/** A reply or a value: text (sent as UTF-8) or bytes. */
export type Bytes = string | Uint8Array;

/** One turn of one actor; valid until its handler's promise settles. */
export class Turn {
  readonly type: string;
  readonly id: string;
  readonly idBytes: Uint8Array;
  readonly kind: number;
  readonly method: string;
  /** The timer's or the reminder's name. */
  readonly name: string;
  readonly payload: Uint8Array;
  readonly headers: Map<string, string[]>;
  readonly host: string;
  readonly chain: string;
  readonly chainPath: string;
  readonly timeoutMs: number;
  text(): string;
  int(): number;
  get(name?: string): Uint8Array | undefined;
  getText(name?: string): string | undefined;
  stateInt(name?: string): number;
  set(name: string, value: Bytes): void;
  setState(value: Bytes): void;
  delete(name?: string): void;
  left(): number;
  call(type: string, id: Bytes, method: string, payload?: Bytes, opts?: { timeoutMs?: number }): Promise<Uint8Array>;
  setTimer(name: string, opts?: { dueMs?: number; periodMs?: number }): void;
  stopTimer(name: string): void;
  setReminder(name: string, opts: { schedule: string; method?: string; payload?: Bytes; timeZone?: string }): void;
  deleteReminder(name: string): void;
}

/** A type's handlers: one per method, plus the optional hooks. */
export type Handlers = {
  activate?: (turn: Turn) => void | Promise<void>;
  timer?: (turn: Turn) => void | Promise<void>;
} & { [method: string]: ((turn: Turn) => Bytes | void | Promise<Bytes | void>) | undefined };

/** A worker: serves the turns of the types registered on it. */
export class Worker {
  constructor(nc: NatsConnection, opts?: { prefix?: string });
  register(type: string, handlers: Handlers): this;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** Runs one decoded turn against handlers; the answer's fields. */
export function runTurn(worker: Worker | object, handlers: Handlers, msg: object): Promise<object>;

/** The answer to a turn that failed with err. */
export function errorAnswer(err: unknown): object;

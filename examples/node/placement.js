// The placement function "troupe-hrw-1" (specified in ../../placement/doc.go):
// rendezvous hashing over the hosts that serve a type, in unsigned 64-bit
// arithmetic done with BigInt.

import { readFileSync } from "node:fs";
import { idBytes } from "./protocol.js";

/** The placement function this module implements. */
export const HASH_VERSION = "troupe-hrw-1";

const MASK = (1n << 64n) - 1n;
const enc = new TextEncoder();

/**
 * FNV-1a, 64 bits, over the concatenation of parts.
 * @param {...Uint8Array} parts
 * @returns {bigint}
 */
function fnv1a64(...parts) {
  let h = 0xcbf29ce484222325n;
  for (const b of parts) {
    for (const c of b) h = ((h ^ BigInt(c)) * 0x100000001b3n) & MASK;
  }
  return h;
}

/**
 * The MurmurHash3 64-bit finalizer.
 * @param {bigint} k
 * @returns {bigint}
 */
function fmix64(k) {
  k ^= k >> 33n;
  k = (k * 0xff51afd7ed558ccdn) & MASK;
  k ^= k >> 33n;
  k = (k * 0xc4ceb9fe1a85ec53n) & MASK;
  return k ^ (k >> 33n);
}

/**
 * KeyHash(t, id) = fmix64(FNV-1a-64(bytes(t) || 0x00 || bytes(id))).
 * @param {string} type
 * @param {string | Uint8Array} id
 * @returns {bigint}
 */
export function keyHash(type, id) {
  return fmix64(fnv1a64(enc.encode(type), Uint8Array.of(0), idBytes(id)));
}

/**
 * HostHash(h) = fmix64(FNV-1a-64(bytes(h))).
 * @param {string} hostId
 * @returns {bigint}
 */
export function hostHash(hostId) {
  return fmix64(fnv1a64(enc.encode(hostId)));
}

/**
 * The owner of (type, id) among candidates: the greatest
 * fmix64(KeyHash XOR HostHash); on a tie the smaller host id, byte-wise.
 * The caller passes only candidates: members that serve the type and are
 * not draining.
 * @param {string} type
 * @param {string | Uint8Array} id
 * @param {Iterable<string>} candidates host ids
 * @returns {string | undefined} the owner's host id, or undefined when there is no candidate
 */
export function owner(type, id, candidates) {
  const key = keyHash(type, id);
  let best, bestScore = -1n;
  for (const h of candidates) {
    const score = fmix64(key ^ hostHash(h));
    if (score > bestScore || (score === bestScore && Buffer.compare(enc.encode(h), enc.encode(best)) < 0)) {
      best = h;
      bestScore = score;
    }
  }
  return best;
}

/**
 * Checks this implementation against the golden vectors of the Go
 * implementation (placement/testdata/vectors.json).
 * @param {string | URL} [file] the vectors file
 * @returns {number} how many vectors were checked
 * @throws {Error} on the first vector that does not match
 */
export function verifyVectors(file = new URL("../../placement/testdata/vectors.json", import.meta.url)) {
  const vectors = JSON.parse(readFileSync(file, "utf8"));
  for (const [i, v] of vectors.entries()) {
    if (v.hash_version !== HASH_VERSION) throw new Error(`vector ${i}: hash version ${v.hash_version}, want ${HASH_VERSION}`);
    const id = Buffer.from(v.id_hex, "hex");
    const kh = keyHash(v.type, id);
    if (kh !== BigInt(v.key_hash)) throw new Error(`vector ${i} (${v.type}, ${v.id_hex}): key hash ${kh}, want ${v.key_hash}`);
    const got = owner(v.type, id, v.members);
    if (got !== v.owner) throw new Error(`vector ${i} (${v.type}, ${v.id_hex}) over ${v.members}: owner ${got}, want ${v.owner}`);
  }
  return vectors.length;
}

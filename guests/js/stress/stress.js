// The receiving side of the DSTC stress test in JavaScript, as guests/stress (Rust) on the
// `dhost:stress/stress-guest` world (wit/stress/stress.wit): every `set-value(v)` must be
// the value after the previous one; it counts what arrives, what was skipped (lost on the
// way) and what came out of order, tells the sender how far it got every 16384 values,
// and on `finish` prints one line and starts over:
//
//   stress: 10000000 of 10000000 values in order in 2.513 s (3979307 calls/s), 0 lost, 0 out of order
//
// It takes the calls to `set-value` a run at a time (`dstc:node/run-events`), reading
// each call's arguments (one CBOR array holding one integer) itself.
//
// Built by scripts/build-guests.sh with componentize-js into target/guests/stress-js.wasm.

import { progress } from "dhost:stress/flow";

const PROGRESS_EVERY = 16384;
const SET_VALUE = "dhost:stress/sink#set-value";

const newRun = () => ({ started: null, next: 0, inOrder: 0, lost: 0, outOfOrder: 0 });
let run = newRun();

function setValue(v) {
  if (run.started === null) run.started = performance.now();
  if (v === run.next) {
    run.inOrder += 1;
  } else if (v > run.next) {
    run.lost += v - run.next;
    run.inOrder += 1;
  } else {
    run.outOfOrder += 1;
    return;
  }
  run.next = v + 1;
  if (run.next % PROGRESS_EVERY === 0) progress(run.next);
}

export const sink = {
  setValue,
  finish(count) {
    const done = run;
    run = newRun();
    // Values never seen at the end were lost too.
    const lost = done.lost + Math.max(count - done.next, 0);
    const secs = done.started === null ? 0 : (performance.now() - done.started) / 1000;
    const rate = secs > 0 ? done.inOrder / secs : 0;
    console.log(
      `stress: ${done.inOrder} of ${count} values in order in ${secs.toFixed(3)} s ` +
        `(${rate.toFixed(0)} calls/s), ${lost} lost, ${done.outOfOrder} out of order`,
    );
  },
};

export const runEvents = {
  // `calls`: each call's arguments, `[v]` in CBOR, one after the other (the node checked
  // each against `set-value(v: s32)` already). 0x81 is an array of one item; then the
  // integer's head: major type 0 (v) or 1 (-1 - v), the value inline below 24, else in
  // the next 1, 2 or 4 bytes.
  onRun(func, calls) {
    if (func !== SET_VALUE) return false;
    let at = 0;
    while (at < calls.length) {
      const head = calls[at + 1];
      const info = head & 0x1f;
      let n;
      if (info < 24) {
        n = info;
        at += 2;
      } else {
        const size = 1 << (info - 24);
        n = 0;
        for (let i = 0; i < size; i++) n = n * 256 + calls[at + 2 + i];
        at += 2 + size;
      }
      setValue(head < 0x20 ? n : -1 - n);
    }
    return true;
  },
};

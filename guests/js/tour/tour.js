// A tour of `dstc:node` from JavaScript (the `dhost:tour/tour-guest` world, wit/tour): at
// `init` it logs through the node and arms a timer; the timer prints the node's name; each
// line typed on stdin is written to mailbox 0 and read back; `target` sets a call target
// and reads a mailbox of a node that is not there, to see the typed `call-error`; `group`
// lists the peers and who serves the node's mailboxes, and every change of the group is
// printed as the node tells it.
//
// Built by scripts/build-guests.sh with componentize-js into target/guests/tour-js.wasm.

import { log, nodeName } from "dstc:node/host";
import { setTimer } from "dstc:node/timers";
import { setTarget, target } from "dstc:node/calls";
import { read, write } from "dstc:node/mailboxes";
import { peers, servers } from "dstc:node/group";

const say = (text) => console.log(`tour: ${text}`);

export const lifecycle = {
  init() {
    log("info", "tour: init, in JavaScript");
    setTimer(7n, 10n);
  },
};

export const timerEvents = {
  onTimer(token) {
    say(`timer ${token} on node ${nodeName()}`);
  },
};

export const stdinEvents = {
  onLine(line) {
    if (line === "group") {
      const names = peers().map((p) => p.name);
      say(`peers ${names.length ? names.join(", ") : "none"}`);
      const serving = servers("dstc:node/mailboxes#read");
      say(`mailboxes served by ${serving.length ? serving.join(", ") : "none"}`);
      return;
    }
    if (line === "target") {
      setTarget("nowhere");
      say(`target ${target()}`);
      try {
        read("nowhere", 0);
      } catch (e) {
        // A `result`'s error is thrown, its value (the variant) in `payload`.
        say(`error ${e.payload.tag}`);
      }
      setTarget(undefined);
      return;
    }
    write(undefined, 0, new TextEncoder().encode(line));
    const data = read(undefined, 0);
    let end = data.length;
    while (end > 0 && data[end - 1] === 0) end--;
    say(`mailbox 0 holds ${new TextDecoder().decode(data.subarray(0, end))}`);
  },
};

export const readyEvents = { onReady(token) {} };

export const runEvents = {
  onRun(func, calls) {
    return false;
  },
};

export const groupEvents = {
  onChange(change, node) {
    say(`group ${change} ${node}`);
  },
};

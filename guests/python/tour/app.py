"""A tour of `dstc:node` from Python (the `dhost:tour/tour-guest` world, wit/tour): at
`init` it logs through the node and arms a timer; the timer prints the node's name; each
line typed on stdin is written to mailbox 0 and read back; `target` sets a call target
and reads a mailbox of a node that is not there, to see the typed `call-error`; `group`
lists the peers and who serves the node's mailboxes, and every change of the group is
printed as the node tells it.

Built by scripts/build-guests.sh with componentize-py into target/guests/tour-py.wasm.
"""

from componentize_py_types import Err

from wit_world import exports
from wit_world.exports import group_events
from wit_world.imports import calls, group, host, mailboxes, timers


def say(text: str) -> None:
    print(f"tour: {text}", flush=True)


class Lifecycle(exports.Lifecycle):
    def init(self) -> None:
        host.log(host.Level.INFO, "tour: init, in Python")
        timers.set_timer(7, 10)


class TimerEvents(exports.TimerEvents):
    def on_timer(self, token: int) -> None:
        say(f"timer {token} on node {host.node_name()}")


class StdinEvents(exports.StdinEvents):
    def on_line(self, line: str) -> None:
        if line == "group":
            names = [p.name for p in group.peers()] or ["none"]
            say(f"peers {', '.join(names)}")
            servers = group.servers("dstc:node/mailboxes#read") or ["none"]
            say(f"mailboxes served by {', '.join(servers)}")
            return
        if line == "target":
            calls.set_target("nowhere")
            say(f"target {calls.target()}")
            try:
                mailboxes.read("nowhere", 0)
            except Err as e:
                say(f"error {type(e.value).__name__}")
            calls.set_target(None)
            return
        mailboxes.write(None, 0, line.encode())
        data = mailboxes.read(None, 0)
        say(f"mailbox 0 holds {data.rstrip(bytes(1)).decode()}")


class ReadyEvents(exports.ReadyEvents):
    def on_ready(self, token: int) -> None:
        pass


class RunEvents(exports.RunEvents):
    def on_run(self, function: str, calls: bytes) -> bool:
        return False


class GroupEvents(exports.GroupEvents):
    def on_change(self, change: group_events.Change, node: str) -> None:
        say(f"group {change.name.lower()} {node}")

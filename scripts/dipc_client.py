#!/usr/bin/env python3
"""The DIPC assignment's interactive client, for dipc / dhost mailboxes.

    python3 scripts/dipc_client.py [HOST] PORT

Type `r N` to read mailbox N, `w N TEXT` to write TEXT into it (sent as the assignment's
client does: one send of "w N\\nTEXT"), `q` to quit. Each reply is printed as it comes.
"""

import socket
import sys


def reply(sock, pending):
    """Reads one reply; returns it and what was received beyond it."""
    while b"\r\n" not in pending:
        chunk = sock.recv(65536)
        if not chunk:
            return None, b""
        pending += chunk
    head, rest = pending.split(b"\r\n", 1)
    if head.startswith(b"OK ") and head[3:].isdigit():
        need = int(head[3:]) + 2
        while len(rest) < need:
            chunk = sock.recv(65536)
            if not chunk:
                return None, b""
            rest += chunk
        return head + b"\r\n" + rest[:need], rest[need:]
    return head + b"\r\n", rest


def main():
    args = sys.argv[1:]
    if len(args) == 1:
        args = ["127.0.0.1"] + args
    if len(args) != 2 or not args[1].isdigit():
        sys.exit("usage: dipc_client.py [HOST] PORT")
    host, port = args[0], int(args[1])
    try:
        sock = socket.create_connection((host, port))
    except OSError as e:
        sys.exit(f"dipc_client: cannot connect to {host}:{port}: {e}")
    pending = b""
    interactive = sys.stdin.isatty()
    while True:
        if interactive:
            print("dipc> ", end="", flush=True)
        line = sys.stdin.readline()
        if not line:
            break
        words = line.split(maxsplit=2)
        if not words:
            continue
        if words[0] == "w" and len(words) == 3:
            sock.send(f"w {words[1]}\n{words[2].rstrip(chr(10))}".encode())
        else:
            sock.send(line.encode() if line.endswith("\n") else (line + "\n").encode())
        answer, pending = reply(sock, pending)
        if answer is None:
            print("dipc_client: the server closed the connection")
            break
        sys.stdout.write(answer.decode(errors="replace"))
        sys.stdout.flush()
        if words[0] == "q":
            break
    sock.close()


if __name__ == "__main__":
    main()

"""The floor under a call with a reply: COUNT round trips of a 30-byte message between two
processes over loopback TCP (TCP_NODELAY, blocking sockets); prints the median and the
99th percentile.

    python3 scripts/bench/tcp_ping_pong.py [COUNT]
"""

import multiprocessing
import socket
import sys
import time


def echo(listener):
    conn, _ = listener.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while data := conn.recv(64):
        conn.sendall(data)


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    server = multiprocessing.Process(target=echo, args=(listener,))
    server.start()
    conn = socket.create_connection(listener.getsockname())
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times = []
    for _ in range(count):
        start = time.perf_counter()
        conn.sendall(b"x" * 30)
        conn.recv(64)
        times.append(time.perf_counter() - start)
    conn.close()
    server.join()
    times.sort()
    median, p99 = times[len(times) // 2], times[int(len(times) * 0.99)]
    print(f"ping x{count}: median {median * 1e6:.1f} us, p99 {p99 * 1e6:.1f} us")


if __name__ == "__main__":
    main()

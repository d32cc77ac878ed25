#!/usr/bin/env python3
"""delayq: hold every packet of one NFQUEUE for a fixed time, then accept it.

The lab's kernel has no netem, so each router namespace delays its ingress packets with this program, fed by

    iptables -t raw -A PREROUTING -i IFACE -j NFQUEUE --queue-num N

(raw PREROUTING runs before conntrack and NAT). The rule has no --queue-bypass and the queue is bound without
NFQA_CFG_F_FAIL_OPEN, so the lab fails closed: while this program is not running, or if it dies, the kernel drops
the packets instead of passing them on undelayed.

The delay is the same for every packet, so packets leave in the order they came and one batch verdict
(NFQNL_MSG_VERDICT_BATCH: "accept every packet id up to X") releases all that are due. Only metadata is copied to
user space (NFQNL_COPY_META), never the payload. Standard library only: netlink is spoken directly.
"""

import argparse
import collections
import ctypes
import errno
import os
import select
import signal
import socket
import struct
import sys
import time

# linux/netlink.h, linux/netfilter/nfnetlink.h, linux/netfilter/nfnetlink_queue.h
NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NETLINK_NO_ENOBUFS = 5
SO_RCVBUFFORCE = 33
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLMSG_ERROR = 0x2
NLMSG_DONE = 0x3
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_CONFIG = 2
NFQNL_MSG_VERDICT_BATCH = 3
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NF_ACCEPT = 1

NLMSG_HDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid (host order)
NFGEN_HDR = struct.Struct("!BBH")  # family, version, res_id (queue number, big endian)
NLA_HDR = struct.Struct("=HH")  # len, type (host order); nfqueue attribute payloads are big endian


def nla(kind, payload):
    """One netlink attribute, padded to 4 bytes."""
    raw = NLA_HDR.pack(NLA_HDR.size + len(payload), kind) + payload
    return raw + b"\0" * (-len(raw) % 4)


def attributes(data, offset, end):
    """Yields (type, payload) for the attributes in data[offset:end]."""
    while offset + NLA_HDR.size <= end:
        length, kind = NLA_HDR.unpack_from(data, offset)
        if length < NLA_HDR.size:
            return
        yield kind & 0x3FFF, data[offset + NLA_HDR.size : offset + length]
        offset += (length + 3) & ~3


class Queue:
    """One bound NFQUEUE: configuration over netlink, reading packet ids, batch verdicts."""

    def __init__(self, number, maxlen):
        self.number = number
        self.seq = 0
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 32 << 20)
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 20)
        # A full socket buffer loses messages; the ids they carried are still released by the next batch verdict.
        self.sock.setsockopt(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1)
        self.sock.bind((0, 0))
        self.config(nla(NFQA_CFG_CMD, struct.pack("!BBH", NFQNL_CFG_CMD_BIND, 0, socket.AF_INET)))
        # struct nfqnl_msg_config_params is packed: be32 copy_range, u8 copy_mode.
        self.config(nla(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META)))
        self.config(nla(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", maxlen)))
        self.sock.setblocking(False)

    def message(self, kind, flags, body):
        self.seq += 1
        head = NFGEN_HDR.pack(socket.AF_UNSPEC, 0, self.number)
        return NLMSG_HDR.pack(NLMSG_HDR.size + len(head) + len(body), kind, flags, self.seq, 0) + head + body

    def config(self, body):
        """Sends one configuration message and waits for its acknowledgement."""
        self.sock.send(self.message((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, body))
        while True:
            data = self.sock.recv(65536)
            length, kind, _, seq, _ = NLMSG_HDR.unpack_from(data, 0)
            if kind == NLMSG_ERROR and seq == self.seq:
                (code,) = struct.unpack_from("=i", data, NLMSG_HDR.size)
                if code != 0:
                    raise OSError(-code, "nfqueue config on queue %d: %s" % (self.number, os.strerror(-code)))
                return

    def read_ids(self, ids):
        """Appends the id of every queued packet waiting on the socket; returns the count of netlink errors."""
        errors = 0
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return errors
            except OSError as error:
                if error.errno == errno.ENOBUFS:
                    continue
                raise
            offset = 0
            while offset + NLMSG_HDR.size <= len(data):
                length, kind, _, _, _ = NLMSG_HDR.unpack_from(data, offset)
                if length < NLMSG_HDR.size:
                    break
                if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                    start = offset + NLMSG_HDR.size + NFGEN_HDR.size
                    for attr, payload in attributes(data, start, offset + length):
                        if attr == NFQA_PACKET_HDR:
                            ids.append(struct.unpack_from("!I", payload, 0)[0])
                            break
                elif kind == NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", data, offset + NLMSG_HDR.size)
                    errors += code != 0
                offset += (length + 3) & ~3

    def accept_through(self, packet_id):
        """Accepts every queued packet whose id is at most packet_id."""
        body = nla(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, packet_id))
        self.sock.send(self.message((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_VERDICT_BATCH, NLM_F_REQUEST, body))


def run(queue, delay, quiet):
    pending = collections.deque()  # (due, packet id), in arrival order
    arrived = []
    # select() takes microseconds; poll() and epoll() round their timeout up to a whole millisecond.
    readable = [queue.sock]
    released = errors = 0
    last_report = time.monotonic()
    # Releasing up to 100 µs early saves a wake-up per packet and is below what the lab can measure.
    slack = 0.0001
    while True:
        timeout = None
        if pending:
            timeout = max(0.0, pending[0][0] - time.monotonic())
        if timeout is None or timeout > slack:
            select.select(readable, [], [], timeout)
        errors += queue.read_ids(arrived)
        if arrived:
            now = time.monotonic()
            pending.extend((now + delay, packet_id) for packet_id in arrived)
            arrived.clear()
        now = time.monotonic() + slack
        last = None
        while pending and pending[0][0] <= now:
            last = pending.popleft()[1]
            released += 1
        if last is not None:
            queue.accept_through(last)
        if not quiet and now - last_report >= 10:
            print("delayq: queue %d released %d packets, %d netlink errors" % (queue.number, released, errors),
                  flush=True)
            last_report = now


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queue", type=int, default=0, help="NFQUEUE number (default 0)")
    parser.add_argument("--delay-ms", type=float, required=True, help="one-way delay added to every packet")
    parser.add_argument("--maxlen", type=int, default=65536, help="kernel queue length; beyond it packets drop")
    parser.add_argument("--realtime", type=int, default=0, metavar="PRIO",
                        help="run as SCHED_FIFO with this priority (1-99) instead of nice -10")
    parser.add_argument("--quiet", action="store_true", help="no periodic counters")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:  # on a busy machine, scheduling latency is most of delayq's error; a real-time priority removes it
        if args.realtime:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(args.realtime))
        else:
            os.setpriority(os.PRIO_PROCESS, 0, -10)
    except OSError:
        pass
    try:  # wake-ups on time: timer slack 1 µs instead of 50 µs (PR_SET_TIMERSLACK)
        ctypes.CDLL(None, use_errno=True).prctl(29, 1000, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    queue = Queue(args.queue, args.maxlen)
    print("delayq: queue %d bound, delay %.3f ms, pid %d" % (args.queue, args.delay_ms, os.getpid()), flush=True)
    try:
        run(queue, args.delay_ms / 1000.0, args.quiet)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

"""Run one command as N local TensorFlow workers, each with its own ``TF_CONFIG``.

    python infra/multiworker.py --workers 2 -- shoprec train

Every worker runs the same command; ``TF_CONFIG`` names a cluster of N workers on free
127.0.0.1 ports and the worker's own index, as ``tf.distribute.MultiWorkerMirroredStrategy``
expects (worker 0 is the chief). If one worker fails the others are stopped, since they would
otherwise wait on it for ever. On several machines, set ``TF_CONFIG`` on each by hand instead.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """N ports free now (the OS picks them; a rare race with other programs remains)."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_configs(workers: int, host: str = "127.0.0.1") -> list[str]:
    """One ``TF_CONFIG`` per worker of a local cluster."""
    cluster = {"worker": [f"{host}:{port}" for port in free_ports(workers, host)]}
    return [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
            for i in range(workers)]


def run(command: Sequence[str], workers: int, env: Mapping[str, str] | None = None,
        timeout: float | None = None) -> list[int]:
    """Run ``command`` as ``workers`` local workers; their exit codes, in worker order.

    A worker that fails or outlives ``timeout`` gets the rest stopped (exit code -15 or -9).
    """
    base = dict(os.environ if env is None else env)
    procs = [subprocess.Popen(list(command), env=base | {"TF_CONFIG": config})
             for config in tf_configs(workers)]
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while any(p.poll() is None for p in procs):
            failed = any(p.returncode not in (None, 0) for p in procs)
            if failed or (deadline is not None and time.monotonic() > deadline):
                break
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    return [p.returncode for p in procs]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=None, help="seconds; default none")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command or args.workers < 1:
        parser.error("give --workers N >= 1 and a command after --")
    codes = run(command, args.workers, timeout=args.timeout)
    print(f"worker exit codes: {codes}", file=sys.stderr)
    return next((c for c in codes if c != 0), 0)


if __name__ == "__main__":
    raise SystemExit(main())

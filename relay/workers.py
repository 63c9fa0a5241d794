"""``relay serve --workers N``: N processes, each its own trio loop, serving one port.

Theory of operation
-------------------
The *supervisor* (the ``relay serve`` process) binds the listening sockets (S3, and
roundabout if configured) once, prepares the data directory (credentials, registry
schema, the reach backfill: what must happen once, not N times at once), then starts N
*workers* (``python -m relay.workers``). Each worker inherits the listening sockets'
descriptors and reads its orders (the configuration, the credentials, its slot number)
from a pipe on its stdin, then runs ``relay.server.serve`` on those sockets.

One shared socket, not SO_REUSEPORT. Every worker accepts from the same kernel queue:

- a connection waits in one queue for whichever worker is free, whereas SO_REUSEPORT
  hashes each connection to one worker's own queue, and the connections queued for a
  worker that dies are reset with it;
- ``--listen 127.0.0.1:0`` works (the port is bound once, then shared), where
  SO_REUSEPORT needs every worker to bind a port known in advance;
- no other process of the same user can join the port, as SO_REUSEPORT would let it.

The cost: the kernel wakes every idle worker for a connection and one wins the accept,
and it balances less evenly than SO_REUSEPORT's hash; with a few workers per host both
are small next to a request's work.

Readiness. Each worker gets the write end of a pipe and writes one byte once it serves;
end-of-file first means it died before serving. The supervisor announces the endpoint
when every worker has been ready once.

Faults and signals. The decisions (restart backoff, what a stop signal does, the exit
code) are ``relay.supervise``'s; this module carries them out. A worker runs in its own
process group, so a terminal's Ctrl-C reaches only the supervisor, which forwards one
SIGTERM (graceful) per worker, or SIGKILL on a second signal; the supervisor closes its
own copies of the sockets as it stops, so once the workers close theirs the port refuses
connections. If the supervisor dies, SIGKILL included, its workers die with it: each
worker asks the kernel for SIGKILL when its parent exits (``PR_SET_PDEATHSIG``), then
checks that its parent is still the supervisor that started it (had the supervisor died
before the request was made, the worker would otherwise live on as an orphan). So no
worker outlives its supervisor to keep serving the port or writing the data directory.
(The death signal is tied to the thread that forked the worker, so the supervisor starts
workers from its main thread, never from a worker thread that may end.)

The admin listener (``/metrics``, ``/health/*``): the supervisor binds ``admin.listen``
and answers it; each worker runs its own admin listener on a loopback port it reports
with its readiness, and the supervisor asks every worker per scrape or probe
(``relay.observe.workers`` says what it answers).

Every worker's stdout and stderr are the supervisor's: request lines from all workers go
to one stream, each naming its ``worker=SLOT``.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Final

import trio

from relay.config import Config, parse_listen
from relay.credentials import Credentials
from relay.http import serve_http_listeners
from relay.observe import configure_logging
from relay.server import ListenSockets, serve
from relay.storage import open_storage
from relay.supervise import (
    EXIT_COULD_NOT_START,
    Nothing,
    Phase,
    Restart,
    StopAll,
    Supervision,
    describe_exit,
)

# Connections the kernel queues for the workers to accept (Linux caps it at somaxconn).
LISTEN_BACKLOG: Final = 1024
# linux/prctl.h
_PR_SET_PDEATHSIG: Final = 1
READY: Final = b"R"


@dataclass(frozen=True, slots=True)
class WorkerOrders:
    """What a worker is told on its stdin (pickled: it holds the credentials, so it never
    travels on a command line or in the environment)."""

    config: Config
    credentials: Credentials
    slot: int
    supervisor_pid: int
    s3_fd: int
    roundabout_fd: int | None
    ready_fd: int


@dataclass(frozen=True, slots=True)
class Bound:
    """Where the supervisor's listeners are: S3, and roundabout and admin when on."""

    s3: tuple[str, int]
    roundabout: tuple[str, int] | None
    admin: tuple[str, int] | None


def bind_listener(address: str) -> socket.socket:
    """A listening TCP socket on ``HOST:PORT`` (port 0: any free one), inheritable."""
    host, port = parse_listen(address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
        sock.set_inheritable(True)
    except BaseException:
        sock.close()
        raise
    return sock


def _address(sock: socket.socket) -> tuple[str, int]:
    bound = sock.getsockname()
    return (str(bound[0]), int(bound[1]))


@dataclass(slots=True)
class _Worker:
    slot: int
    process: subprocess.Popen[bytes]
    started: float
    ready_at: float | None = None
    admin_port: int | None = None  # its own admin listener, on loopback


class _Supervisor:
    def __init__(
        self,
        config: Config,
        credentials: Credentials,
        sockets: ListenSockets,
        count: int,
        on_ready: Callable[[list[int]], object],
        admin: socket.socket | None = None,
    ) -> None:
        self._config = config
        self._admin = admin
        self._credentials = credentials
        self._sockets = sockets
        self._on_ready = on_ready
        self.supervision = Supervision(count)
        self._live: dict[int, _Worker] = {}
        self._sockets_closed = False
        self._slots_running = 0
        self._all_slots_done = trio.Event()
        self._stopping = trio.Event()  # set with the first StopAll: no restarts from here

    async def run(self) -> int:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                for slot in range(1, self.supervision.workers + 1):
                    nursery.start_soon(self._run_slot, slot, 0.0)
                watcher = trio.CancelScope()

                async def watch_signals() -> None:
                    with watcher:
                        async for signum in signals:
                            name = signal.Signals(signum).name
                            print(f"relay: {name}: stopping the workers", flush=True)
                            self._carry_out(self.supervision.stop_signal())

                nursery.start_soon(watch_signals)
                admin_stop = trio.Event()
                if self._admin is not None:
                    await nursery.start(self._serve_admin, self._admin, admin_stop)
                await self._all_slots_done.wait()
                watcher.cancel()
                admin_stop.set()
        self._close_sockets()
        return self.supervision.exit_code()

    async def _serve_admin(
        self,
        admin: socket.socket,
        stop: trio.Event,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        from relay.observe.workers import WorkersAdminApp

        app = WorkersAdminApp(self._admin_ports)
        listener = trio.SocketListener(trio.socket.from_stdlib_socket(admin))
        await serve_http_listeners(
            app.handle, [listener], self._config.http, shutdown=stop, task_status=task_status
        )

    def _admin_ports(self) -> dict[str, int | None]:
        ports: dict[str, int | None] = {}
        for slot in range(1, self.supervision.workers + 1):
            worker = self._live.get(slot)
            ready = worker is not None and worker.ready_at is not None
            ports[str(slot)] = worker.admin_port if worker is not None and ready else None
        return ports

    async def _run_slot(self, slot: int, delay: float) -> None:
        self._slots_running += 1
        try:
            while True:
                with trio.move_on_after(delay):  # a backoff ends early if relay stops
                    await self._stopping.wait()
                if self.supervision.stopping:
                    return
                action = await self._run_worker(slot)
                if not isinstance(action, Restart):
                    self._carry_out(action)
                    return
                delay = action.delay_seconds
                print(f"relay: restarting worker {slot} in {delay:.1f} s", flush=True)
        finally:
            self._slots_running -= 1
            if self._slots_running == 0:
                self._all_slots_done.set()

    async def _run_worker(self, slot: int) -> Restart | StopAll | Nothing:
        worker, ready_read = self._spawn(slot)
        self._live[slot] = worker
        pidfd = os.pidfd_open(worker.process.pid)
        try:
            try:
                await trio.lowlevel.wait_readable(ready_read)
                # One small write (atomic on a pipe): READY, then the admin port if any.
                readiness = os.read(ready_read, 64)
            finally:
                os.close(ready_read)
            if readiness.startswith(READY):
                port = readiness.removeprefix(READY)
                worker.admin_port = int(port) if port else None
                worker.ready_at = time.monotonic()
                if self.supervision.worker_ready(slot):
                    self._on_ready([self._live[n].process.pid for n in sorted(self._live)])
            with trio.CancelScope(shield=True):  # a worker is always waited for
                await trio.lowlevel.wait_readable(pidfd)
                returncode = worker.process.wait()
        finally:
            os.close(pidfd)
            del self._live[slot]
        served = None if worker.ready_at is None else time.monotonic() - worker.ready_at
        if not self.supervision.stopping or returncode != 0:
            print(
                f"relay: worker {slot} (pid {worker.process.pid}) {describe_exit(returncode)}",
                flush=True,
            )
        return self.supervision.worker_exited(slot, returncode, served)

    def _spawn(self, slot: int) -> tuple[_Worker, int]:
        # From the main thread (the parent-death signal follows the forking thread).
        ready_read, ready_write = os.pipe()
        s3_fd = self._sockets.s3.fileno()
        roundabout = self._sockets.roundabout
        roundabout_fd = None if roundabout is None else roundabout.fileno()
        orders = WorkerOrders(
            self._config,
            self._credentials,
            slot,
            os.getpid(),
            s3_fd,
            roundabout_fd,
            ready_write,
        )
        fds = [s3_fd, ready_write] + ([] if roundabout_fd is None else [roundabout_fd])
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "relay.workers"],
                stdin=subprocess.PIPE,
                pass_fds=fds,
                process_group=0,
            )
        except BaseException:
            os.close(ready_read)
            raise
        finally:
            os.close(ready_write)
        assert process.stdin is not None
        try:
            process.stdin.write(pickle.dumps(orders))
            process.stdin.close()
        except BrokenPipeError:
            pass  # it died at once; its exit says why
        if self.supervision.phase is not Phase.STARTING:  # the first ones are announced
            print(f"relay: worker {slot} started (pid {process.pid})", flush=True)
        return _Worker(slot, process, time.monotonic()), ready_read

    def _carry_out(self, action: Restart | StopAll | Nothing) -> None:
        if isinstance(action, StopAll):
            self._stopping.set()
            self._close_sockets()  # no restarts from here on: let the port close
            for worker in list(self._live.values()):
                with contextlib.suppress(ProcessLookupError):
                    worker.process.send_signal(action.signum)

    def _close_sockets(self) -> None:
        if not self._sockets_closed:
            self._sockets_closed = True
            self._sockets.s3.close()
            if self._sockets.roundabout is not None:
                self._sockets.roundabout.close()
            # The admin socket is trio's (``_serve_admin``); it closes when the last
            # worker is gone.


async def supervise_workers(
    config: Config,
    credentials: Credentials,
    count: int,
    *,
    announce: Callable[[Bound, list[int]], object],
) -> int:
    """Bind, prepare the data directory, run ``count`` workers until stopped; the exit
    code (``relay.supervise``). ``announce`` hears the bound addresses and the workers'
    process ids once all of them serve."""
    s3 = bind_listener(config.listen)
    roundabout = admin = None
    try:
        if config.roundabout.listen is not None:
            roundabout = bind_listener(config.roundabout.listen)
        if config.admin_listen is not None:
            admin = bind_listener(config.admin_listen)
            admin.set_inheritable(False)  # the supervisor's alone
        # What a first start does once (schema, reach backfill), before N processes race.
        async with open_storage(config):
            pass
    except BaseException:
        for sock in (s3, roundabout, admin):
            if sock is not None:
                sock.close()
        raise
    sockets = ListenSockets(s3, roundabout)
    bound = Bound(
        _address(s3),
        None if roundabout is None else _address(roundabout),
        None if admin is None else _address(admin),
    )
    # Each worker's own admin listener is on loopback, for the supervisor only.
    worker_config = replace(config, admin_listen=None if admin is None else "127.0.0.1:0")
    supervisor = _Supervisor(
        worker_config, credentials, sockets, count, partial(announce, bound), admin
    )
    code = await supervisor.run()
    if code == EXIT_COULD_NOT_START:
        print("relay: a worker could not start; stopped", file=sys.stderr, flush=True)
    return code


# glibc's mallopt parameter number for the arena limit (malloc.h: M_ARENA_MAX).
_M_ARENA_MAX: Final = -8


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas for a serving process (a no-op elsewhere).

    glibc gives each thread that allocates its own arena, up to eight per core, and an
    arena keeps what was freed in it. relay's worker threads (hashing, pack reads and
    writes, SQLite) allocate chunk-sized buffers, so ten concurrent 1 GiB uploads grew
    the process by some 20 MiB of arenas holding freed chunks; two arenas measured the
    same throughput.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_ARENA_MAX, arenas)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to tune


def set_parent_death_signal(signum: int = signal.SIGKILL) -> None:
    """Ask Linux to send ``signum`` to this process when its parent exits."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


async def stop_on_signals(
    shutdown: trio.Event,
    stop_at_once: trio.CancelScope,
    on_first: Callable[[str], object] | None = None,
) -> None:
    """The first SIGINT or SIGTERM sets ``shutdown`` (graceful; ``on_first`` hears the
    signal's name); a second cancels ``stop_at_once``."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            if shutdown.is_set():
                stop_at_once.cancel()
                return
            if on_first is not None:
                on_first(signal.Signals(signum).name)
            shutdown.set()


async def _work(orders: WorkerOrders, sockets: ListenSockets) -> None:
    shutdown = trio.Event()
    admin: list[tuple[str, int]] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stop_on_signals, shutdown, nursery.cancel_scope)
        async with trio.open_nursery() as server:
            await server.start(
                partial(
                    serve,
                    orders.config,
                    credentials=orders.credentials,
                    shutdown=shutdown,
                    sockets=sockets,
                    worker=str(orders.slot),
                    admin_started=admin.append,
                )
            )
            os.write(orders.ready_fd, READY + (str(admin[0][1]).encode() if admin else b""))
            os.close(orders.ready_fd)
        nursery.cancel_scope.cancel()


def worker_main() -> None:
    """A worker process: ``python -m relay.workers``, started by ``supervise_workers``."""
    set_parent_death_signal()
    orders: WorkerOrders = pickle.loads(sys.stdin.buffer.read())
    if os.getppid() != orders.supervisor_pid:
        sys.exit(EXIT_COULD_NOT_START)  # the supervisor died before the request was made
    config = replace(orders.config, workers=1)
    configure_logging(config.log.level, "json" if config.log.format == "json" else "text")
    limit_malloc_arenas()
    s3 = socket.socket(fileno=orders.s3_fd)
    roundabout = None
    if orders.roundabout_fd is not None:
        roundabout = socket.socket(fileno=orders.roundabout_fd)
    trio.run(_work, replace(orders, config=config), ListenSockets(s3, roundabout))


if __name__ == "__main__":
    worker_main()

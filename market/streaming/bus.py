"""Publish/subscribe between the streaming process, the web processes and the workers.

``Bus.publish`` is synchronous and never raises because the bus is down (a trade must not fail because
a browser will not see it): it logs and drops. ``Bus.subscribe(channels)`` is an async context manager
giving an async iterator of ``(channel, message)``; a subscriber that cannot keep up loses the oldest
messages, never blocks the publisher, and can read how many it lost (``Subscription.dropped``).
Subscribers of one process share the decoded message (treat it as read-only).

Implementations: ``InProcessBus`` (one process: tests and the benchmark's in-process mode), ``RedisBus``
(Redis pub/sub, when ``REDIS_URL`` is set) and ``LocalBus`` (one machine without Redis: ZeroMQ on
loopback through a proxy that the streaming process hosts, ``serve_local_bus``). ``get_bus()`` picks one
from ``settings.REALTIME_BUS``.

Delivery is best effort in both cross-process buses (pub/sub keeps nothing for a subscriber that is not
there): a message published before a subscription has reached the server (Redis) or the proxy (ZeroMQ's
"slow joiner": connections and subscriptions travel asynchronously) is not delivered to it. The pages
therefore read their state from the database on load and take the bus only for what changes afterwards;
the reconciliation stays the source of truth for orders.

In each process the subscribers of one event loop share one connection (``_Hub``): one Redis pub/sub
connection or one ZeroMQ SUB socket, subscribed to the union of their channels; a message is decoded
once and offered to every subscriber of its channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, Protocol

logger = logging.getLogger(__name__)

SUBSCRIBER_QUEUE_SIZE = 2000


def encode(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()


def decode(raw: bytes | str) -> dict[str, Any]:
    return json.loads(raw)


class Subscription(Protocol):
    dropped: int

    def __aiter__(self) -> AsyncIterator[tuple[str, dict[str, Any]]]: ...


class Bus(Protocol):
    def publish(self, channel: str, message: Mapping[str, Any]) -> None: ...

    def subscribe(self, channels: Iterable[str]) -> contextlib.AbstractAsyncContextManager[Subscription]: ...

    def close(self) -> None: ...


class QueueSubscription:
    """A bounded queue fed from any thread; the oldest message goes when it is full."""

    def __init__(self, channels: Iterable[str], size: int = SUBSCRIBER_QUEUE_SIZE) -> None:
        self.channels = frozenset(channels)
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(size)
        self.dropped = 0

    def offer(self, channel: str, message: dict[str, Any]) -> None:
        """Called on the subscriber's loop."""
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait((channel, message))

    def offer_threadsafe(self, channel: str, message: dict[str, Any]) -> None:
        try:
            self.loop.call_soon_threadsafe(self.offer, channel, message)
        except RuntimeError:  # the subscriber's loop is closed: it is gone
            pass

    def __aiter__(self) -> QueueSubscription:
        return self

    async def __anext__(self) -> tuple[str, dict[str, Any]]:
        return await self.queue.get()


class InProcessBus:
    """Fan-out inside one process (any thread publishes, asyncio subscribers on any loop)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[QueueSubscription] = []

    def publish(self, channel: str, message: Mapping[str, Any]) -> None:
        payload = dict(message)
        with self._lock:
            targets = [s for s in self._subscribers if channel in s.channels]
        for subscription in targets:
            subscription.offer_threadsafe(channel, payload)

    @contextlib.asynccontextmanager
    async def subscribe(self, channels: Iterable[str]) -> AsyncIterator[QueueSubscription]:
        subscription = QueueSubscription(channels)
        with self._lock:
            self._subscribers.append(subscription)
        try:
            yield subscription
        finally:
            with self._lock:
                self._subscribers.remove(subscription)

    def subscriber_count(self, channel: str) -> int:
        with self._lock:
            return sum(channel in s.channels for s in self._subscribers)

    def close(self) -> None:
        with self._lock:
            self._subscribers.clear()


# ---------------------------------------------------------------------------------------------------
# Shared subscriber connection per event loop (Redis and ZeroMQ)
# ---------------------------------------------------------------------------------------------------


class _Hub:
    """The subscribers of one event loop on one connection. Subclasses provide the connection: ``_open``,
    ``_add_channels``, ``_remove_channels``, ``_receive`` (one ``(channel, raw)`` or None) and ``_close``.
    Everything runs on the loop's thread."""

    def __init__(self) -> None:
        self.by_channel: dict[str, list[QueueSubscription]] = {}
        self.task: asyncio.Task | None = None
        # Subscribers arrive and leave concurrently (each page's stream is a task); changes to the
        # connection go one at a time (redis-py would otherwise open a second connection for a subscribe
        # made while the first is still connecting, and the pump would read the wrong one).
        self.lock = asyncio.Lock()

    async def add(self, subscription: QueueSubscription) -> None:
        async with self.lock:
            new = [c for c in subscription.channels if c not in self.by_channel]
            for channel in subscription.channels:
                self.by_channel.setdefault(channel, []).append(subscription)
            if self.task is None:
                await self._open()
                if new:
                    await self._add_channels(new)
                self.task = asyncio.get_running_loop().create_task(self._pump(), name=f"bus-{type(self).__name__}")
            elif new:
                await self._add_channels(new)

    async def remove(self, subscription: QueueSubscription) -> bool:
        """Drop a subscriber; True when the hub has none left (and is closed)."""
        async with self.lock:
            gone = []
            for channel in subscription.channels:
                subscribers = self.by_channel.get(channel, [])
                if subscription in subscribers:
                    subscribers.remove(subscription)
                if not subscribers:
                    self.by_channel.pop(channel, None)
                    gone.append(channel)
            if self.by_channel:
                if gone:
                    with contextlib.suppress(Exception):
                        await self._remove_channels(gone)
                return False
            if self.task is not None:
                self.task.cancel()
                with contextlib.suppress(BaseException):
                    await self.task
                self.task = None
            with contextlib.suppress(Exception):
                await self._close()
            return True

    async def _pump(self) -> None:
        while True:
            received = await self._receive()
            if received is None:
                continue
            channel, raw = received
            subscribers = self.by_channel.get(channel)
            if not subscribers:  # ZeroMQ topics match by prefix: rt:user:1 also brings rt:user:12
                continue
            try:
                message = decode(raw)
            except ValueError:
                logger.warning("bus: undecodable message on %s dropped", channel)
                continue
            for subscription in list(subscribers):
                subscription.offer(channel, message)

    async def _open(self) -> None:
        raise NotImplementedError

    async def _add_channels(self, channels: list[str]) -> None:
        raise NotImplementedError

    async def _remove_channels(self, channels: list[str]) -> None:
        raise NotImplementedError

    async def _receive(self) -> tuple[str, bytes] | None:
        raise NotImplementedError

    async def _close(self) -> None:
        raise NotImplementedError


class _HubBus:
    """Subscription plumbing shared by the Redis and ZeroMQ buses: one hub per (process, event loop)."""

    def __init__(self) -> None:
        self._hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Hub] = weakref.WeakKeyDictionary()
        self._hubs_lock = threading.Lock()
        self._hubs_pid = os.getpid()

    def _new_hub(self) -> _Hub:
        raise NotImplementedError

    @contextlib.asynccontextmanager
    async def subscribe(self, channels: Iterable[str]) -> AsyncIterator[QueueSubscription]:
        loop = asyncio.get_running_loop()
        subscription = QueueSubscription(channels)
        with self._hubs_lock:
            if self._hubs_pid != os.getpid():  # a forked child: the parent's connections are not ours
                self._hubs = weakref.WeakKeyDictionary()
                self._hubs_pid = os.getpid()
            hub = self._hubs.get(loop)
            if hub is None:
                hub = self._hubs[loop] = self._new_hub()
        try:
            await hub.add(subscription)
        except BaseException:
            await self._leave(loop, hub, subscription)
            raise
        try:
            yield subscription
        finally:
            await self._leave(loop, hub, subscription)

    async def _leave(self, loop, hub: _Hub, subscription: QueueSubscription) -> None:
        if await hub.remove(subscription):
            with self._hubs_lock:
                if self._hubs.get(loop) is hub:
                    del self._hubs[loop]


# ---------------------------------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------------------------------

REDIS_RETRY_AFTER = 2.0  # seconds without trying again after Redis failed a publish
REDIS_TIMEOUT = 0.5  # connect/send timeout of a publish: a dead Redis costs at most this, then is skipped


class _RedisHub(_Hub):
    def __init__(self, url: str, client_name: str) -> None:
        super().__init__()
        self.url = url
        self.client_name = client_name
        self.client = None
        self.pubsub = None
        self.backoff = 0.2
        self._broken = False  # the connection failed: the pump reconnects and subscribes every channel

    async def _open(self) -> None:
        import redis.asyncio as aioredis

        self.client = aioredis.Redis.from_url(self.url, socket_connect_timeout=2.0, health_check_interval=30,
                                              client_name=self.client_name)
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)

    async def _add_channels(self, channels: list[str]) -> None:
        try:
            await self.pubsub.subscribe(*channels)
        except Exception as error:  # Redis down: the pump subscribes every channel when it comes back
            logger.warning("bus: Redis subscribe failed (%s); retrying in the background", error)
            self._broken = True

    async def _remove_channels(self, channels: list[str]) -> None:
        await self.pubsub.unsubscribe(*channels)

    async def _reconnect(self) -> None:
        await asyncio.sleep(self.backoff)
        self.backoff = min(self.backoff * 2, 5.0)
        async with self.lock:
            with contextlib.suppress(Exception):
                await self.pubsub.aclose()
            self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            if self.by_channel:
                await self.pubsub.subscribe(*self.by_channel)
            self._broken = False
        self.backoff = 0.2
        logger.info("bus: Redis subscription restored (%d channels)", len(self.by_channel))

    async def _receive(self) -> tuple[str, bytes] | None:
        try:
            if self._broken or not self.pubsub.subscribed:
                if self._broken:
                    await self._reconnect()
                else:
                    await asyncio.sleep(0.05)  # nothing subscribed yet (a subscribe is on its way)
                    return None
            message = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            if not self._broken:
                logger.warning("bus: Redis subscription lost (%s); reconnecting", error)
            self._broken = True
            return None
        if not message or message.get("type") != "message":
            return None
        channel = message["channel"]
        return (channel.decode() if isinstance(channel, bytes) else channel), message["data"]

    async def _close(self) -> None:
        if self.pubsub is not None:
            await self.pubsub.aclose()
        if self.client is not None:
            await self.client.aclose()


class RedisBus(_HubBus):
    """Redis pub/sub. Publishing uses the sync client (any thread, any process: redis-py's pool is
    thread-safe and reopens its connections after a fork); a publish that fails (Redis down, time-out)
    is logged and dropped, and publishing pauses ``REDIS_RETRY_AFTER`` seconds so a dead Redis does not
    cost every caller a time-out. Subscribers use ``redis.asyncio`` and reconnect and resubscribe by
    themselves when the connection drops."""

    def __init__(self, url: str, *, timeout: float = REDIS_TIMEOUT) -> None:
        import redis

        super().__init__()
        if not url:
            raise ValueError("RedisBus needs a Redis URL (REDIS_URL)")
        self.url = url
        self._client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        self._paused_until = 0.0
        self.dropped = 0

    def publish(self, channel: str, message: Mapping[str, Any]) -> None:
        if time.monotonic() < self._paused_until:
            self.dropped += 1
            return
        try:
            self._client.publish(channel, encode(message))
        except Exception as error:  # never the publisher's problem
            self.dropped += 1
            self._paused_until = time.monotonic() + REDIS_RETRY_AFTER
            logger.warning("bus: Redis publish to %s failed (%s); dropping for %.0f s", channel, error,
                           REDIS_RETRY_AFTER)

    @property
    def client_name(self) -> str:
        """The name of this process's subscriber connections (``CLIENT LIST`` shows it)."""
        return f"rt-bus-{os.getpid()}"

    def _new_hub(self) -> _Hub:
        return _RedisHub(self.url, self.client_name)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.close()


# ---------------------------------------------------------------------------------------------------
# ZeroMQ on one machine
# ---------------------------------------------------------------------------------------------------

LOCAL_HOST = "127.0.0.1"
LOCAL_HWM = 100_000  # messages queued per peer before ZeroMQ drops (never blocks) on a PUB/XPUB socket
PUBLISHER_CONNECT_WAIT = 0.2  # seconds a process's first publish waits for its connection to the proxy


class _LocalHub(_Hub):
    def __init__(self, address: str) -> None:
        super().__init__()
        self.address = address
        self.socket = None

    async def _open(self) -> None:
        import zmq
        import zmq.asyncio

        self.socket = zmq.asyncio.Context.instance().socket(zmq.SUB)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.RCVHWM, LOCAL_HWM)
        self.socket.connect(self.address)

    async def _add_channels(self, channels: list[str]) -> None:
        for channel in channels:
            self.socket.subscribe(channel.encode())

    async def _remove_channels(self, channels: list[str]) -> None:
        for channel in channels:
            self.socket.unsubscribe(channel.encode())

    async def _receive(self) -> tuple[str, bytes] | None:
        frames = await self.socket.recv_multipart()
        if len(frames) != 2:
            return None
        return frames[0].decode(), frames[1]

    async def _close(self) -> None:
        if self.socket is not None:
            self.socket.close(linger=0)


class LocalBus(_HubBus):
    """ZeroMQ through the streaming process's proxy (``serve_local_bus``): publishers connect a PUB socket
    to its XSUB port, subscribers a SUB socket to its XPUB port, both on 127.0.0.1.

    Each process has one PUB socket (made on first publish, made again after a fork: a socket is never
    used in a process other than the one that made it; publishes from several threads take a lock).
    Publishing never blocks and never raises: ``NOBLOCK``, a high-water mark after which ZeroMQ drops,
    ``IMMEDIATE`` (nothing queues while the proxy is down, so no stale burst when it comes back) and
    linger 0. The first publish of a process waits up to ``PUBLISHER_CONNECT_WAIT`` seconds (once) for the
    connection and its subscriptions, so a worker's first fill event is not lost to the slow joiner;
    with the proxy down that wait times out once and later messages are dropped until it is up.
    Subscriptions made within a few milliseconds before a publish may still miss it (see the module's
    docstring): pages read their state from the database on load.
    """

    def __init__(self, ports: tuple[int, int] | list[int], host: str = LOCAL_HOST, *,
                 connect_wait: float = PUBLISHER_CONNECT_WAIT) -> None:
        super().__init__()
        self.pub_port, self.sub_port = int(ports[0]), int(ports[1])
        self.host = host
        self.connect_wait = connect_wait
        self.publish_address = f"tcp://{host}:{self.pub_port}"
        self.subscribe_address = f"tcp://{host}:{self.sub_port}"
        self._lock = threading.Lock()
        self._socket = None
        self._socket_pid: int | None = None
        self._abandoned: list[Any] = []  # sockets inherited through fork: never touched, never collected
        self.dropped = 0

    def _publisher(self):
        import zmq

        if self._socket is not None and self._socket_pid == os.getpid():
            return self._socket
        if self._socket is not None:
            self._abandoned.append(self._socket)  # the parent's: closing it here could disturb the parent
        context = zmq.Context.instance()  # pyzmq makes a new one in a forked child
        sock = context.socket(zmq.PUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, LOCAL_HWM)
        sock.setsockopt(zmq.IMMEDIATE, 1)
        sock.setsockopt(zmq.RECONNECT_IVL, 100)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
        monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED) if self.connect_wait > 0 else None
        sock.connect(self.publish_address)
        if monitor is not None:
            # Wait (bounded) for the handshake: the proxy then forwards its subscribers' subscriptions,
            # which take a moment more to arrive; before that a PUB socket drops what it is given.
            if monitor.poll(int(self.connect_wait * 1000)):
                monitor.recv_multipart()
                time.sleep(0.02)
            sock.disable_monitor()
            monitor.close(linger=0)
        self._socket, self._socket_pid = sock, os.getpid()
        return sock

    def publish(self, channel: str, message: Mapping[str, Any]) -> None:
        import zmq

        try:
            payload = encode(message)
            with self._lock:
                self._publisher().send_multipart([channel.encode(), payload], flags=zmq.NOBLOCK)
        except zmq.Again:
            self.dropped += 1
        except Exception as error:  # never the publisher's problem
            self.dropped += 1
            logger.warning("bus: local publish to %s failed (%s); dropped", channel, error)

    def _new_hub(self) -> _Hub:
        return _LocalHub(self.subscribe_address)

    def close(self) -> None:
        with self._lock:
            if self._socket is not None and self._socket_pid == os.getpid():
                self._socket.close(linger=0)
            self._socket = None


class LocalBusProxy:
    """The local bus's XSUB/XPUB forwarder, running in a thread (ZeroMQ's C proxy: it forwards without
    the GIL). ``stop()`` ends it and returns once its ports are closed; it binds 127.0.0.1 only."""

    def __init__(self, ports: tuple[int, int] | list[int], host: str = LOCAL_HOST) -> None:
        self.pub_port, self.sub_port = int(ports[0]), int(ports[1])
        self.host = host
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="local-bus-proxy", daemon=True)
        self._context = None

    def start(self) -> LocalBusProxy:
        import zmq

        # A context of its own: terminating it (stop) interrupts the proxy and waits until its sockets,
        # the listening ones included, are really closed -- so the ports are free when stop() returns.
        self._context = zmq.Context()
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            self._context.term()
            raise self._error
        return self

    def _run(self) -> None:
        import zmq

        sockets = []
        try:
            xsub = self._context.socket(zmq.XSUB)
            sockets.append(xsub)
            xsub.setsockopt(zmq.LINGER, 0)
            xsub.setsockopt(zmq.RCVHWM, LOCAL_HWM)
            xsub.bind(f"tcp://{self.host}:{self.pub_port}")
            xpub = self._context.socket(zmq.XPUB)
            sockets.append(xpub)
            xpub.setsockopt(zmq.LINGER, 0)
            xpub.setsockopt(zmq.SNDHWM, LOCAL_HWM)
            xpub.bind(f"tcp://{self.host}:{self.sub_port}")
        except BaseException as error:
            self._error = OSError(f"local bus: cannot listen on {self.host}:{self.pub_port}/{self.sub_port} "
                                  f"({error}); another streamer running?")
            for sock in sockets:
                sock.close(linger=0)
            self._ready.set()
            return
        self._ready.set()
        try:
            zmq.proxy(xsub, xpub)
        except zmq.ContextTerminated:  # stop()
            pass
        finally:
            for sock in sockets:
                sock.close(linger=0)

    def stop(self) -> None:
        if self._context is None or not self._thread.is_alive():
            return
        self._context.term()  # returns once the proxy's sockets are closed
        self._thread.join(5)

    def __enter__(self) -> LocalBusProxy:
        return self.start() if not self._thread.is_alive() else self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def serve_local_bus(ports: tuple[int, int] | list[int] | None = None, host: str = LOCAL_HOST) -> LocalBusProxy:
    """Start the local bus's proxy (the streaming process does, with REALTIME_BUS=local); ``stop()`` it.
    Raises OSError when the ports are taken (another streamer is already serving the bus)."""
    if ports is None:
        from django.conf import settings

        ports = settings.REALTIME_LOCAL_BUS_PORTS
    return LocalBusProxy(ports, host).start()


# ---------------------------------------------------------------------------------------------------
# The process's bus
# ---------------------------------------------------------------------------------------------------

_bus: Bus | None = None
_bus_guard = threading.Lock()


def _make_bus() -> Bus:
    from django.conf import settings

    kind = settings.REALTIME_BUS
    if kind == "inprocess":
        return InProcessBus()
    if kind == "redis":
        return RedisBus(settings.REDIS_URL)
    if kind == "local":
        return LocalBus(settings.REALTIME_LOCAL_BUS_PORTS)
    raise ValueError(f"REALTIME_BUS must be 'redis', 'local' or 'inprocess', not {kind!r}")


def get_bus() -> Bus:
    """The process's bus (one per process, made on first use from the settings)."""
    global _bus
    with _bus_guard:
        if _bus is None:
            _bus = _make_bus()
        return _bus


@contextlib.contextmanager
def use_bus(bus: Bus):
    """Tests: make ``bus`` the process's bus for a while."""
    global _bus
    with _bus_guard:
        previous, _bus = _bus, bus
    try:
        yield bus
    finally:
        with _bus_guard:
            _bus = previous

"""The real-time bus (market.streaming.bus): in-process, Redis pub/sub and the local ZeroMQ bus, over real
sockets and across processes."""

import asyncio
import multiprocessing
import os
import socket
import time

import pytest

from market.streaming import bus as bus_module
from market.streaming.bus import InProcessBus, LocalBus, QueueSubscription, RedisBus, serve_local_bus, use_bus

REDIS_URL = os.environ.get("REDIS_URL", "")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="REDIS_URL not set (CI sets it for the Redis run)")


def free_ports(count=2):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return tuple(ports)


async def next_message(subscription, timeout=2.0):
    return await asyncio.wait_for(subscription.__anext__(), timeout)


async def publish_until_received(bus, subscription, channel, message, timeout=5.0):
    """Publish until the subscription sees it: a new subscription reaches the server or proxy a moment
    after subscribe() returns (pub/sub keeps nothing for a subscriber that is not there yet)."""
    deadline = time.monotonic() + timeout
    while True:
        bus.publish(channel, message)
        try:
            return await next_message(subscription, 0.05)
        except TimeoutError:
            if time.monotonic() > deadline:
                raise


# ------------------------------------------------------------------------------------------ in process
def test_in_process_fan_out_to_the_subscribers_of_a_channel_only():
    bus = InProcessBus()

    async def main():
        async with bus.subscribe(["a", "b"]) as both, bus.subscribe(["b"]) as only_b:
            bus.publish("a", {"n": 1})
            bus.publish("b", {"n": 2})
            bus.publish("c", {"n": 3})
            assert await next_message(both) == ("a", {"n": 1})
            assert await next_message(both) == ("b", {"n": 2})
            assert await next_message(only_b) == ("b", {"n": 2})
            assert bus.subscriber_count("b") == 2
        assert bus.subscriber_count("b") == 0

    asyncio.run(main())


def test_a_slow_subscriber_loses_the_oldest_messages_and_counts_them():
    async def main():
        subscription = QueueSubscription(["a"], size=3)
        for n in range(5):
            subscription.offer_threadsafe("a", {"n": n})
        await asyncio.sleep(0)
        received = [(await next_message(subscription))[1]["n"] for _ in range(3)]
        return received, subscription.dropped

    assert asyncio.run(main()) == ([2, 3, 4], 2)


def test_the_settings_choose_the_bus(settings):
    settings.REALTIME_BUS = "inprocess"
    assert isinstance(bus_module._make_bus(), InProcessBus)
    settings.REALTIME_BUS, settings.REALTIME_LOCAL_BUS_PORTS = "local", (18001, 18002)
    local = bus_module._make_bus()
    assert isinstance(local, LocalBus) and (local.pub_port, local.sub_port) == (18001, 18002)
    settings.REALTIME_BUS, settings.REDIS_URL = "redis", "redis://127.0.0.1:1/0"
    assert isinstance(bus_module._make_bus(), RedisBus)
    settings.REALTIME_BUS = "carrier pigeon"
    with pytest.raises(ValueError):
        bus_module._make_bus()
    replacement = InProcessBus()
    with use_bus(replacement):
        assert bus_module.get_bus() is replacement


# ------------------------------------------------------------------------------------------ local (ZeroMQ)
def _publish_from_another_process(ports, connection):
    """Runs in a spawned process: publish on two channels whose names share a prefix until told to stop."""
    bus = LocalBus(ports)
    n = 0
    while not connection.poll(0.01):
        bus.publish("rt:user:1", {"n": n, "pid": os.getpid()})
        bus.publish("rt:user:12", {"n": n})
        n += 1
    bus.close()


def test_the_local_bus_carries_messages_between_processes_on_exact_channels():
    ports = free_ports()
    proxy = serve_local_bus(ports)
    try:
        bus = LocalBus(ports)
        context = multiprocessing.get_context("spawn")
        stop_reader, stop_writer = context.Pipe(duplex=False)
        publisher = context.Process(target=_publish_from_another_process, args=(ports, stop_reader), daemon=True)

        async def main():
            async with bus.subscribe(["rt:user:1"]) as subscription:
                publisher.start()
                first = await next_message(subscription, 60)  # the child imports Django's world first
                received = [first] + [await next_message(subscription) for _ in range(20)]
                stop_writer.send("stop")
                return received

        received = asyncio.run(main())
        publisher.join(10)
    finally:
        proxy.stop()
    assert {channel for channel, _ in received} == {"rt:user:1"}  # rt:user:12 shares the prefix only
    numbers = [message["n"] for _, message in received]
    assert numbers == sorted(numbers) and received[0][1]["pid"] != os.getpid()


def test_subscribers_of_one_loop_share_one_socket_and_each_get_their_channels():
    ports = free_ports()
    with serve_local_bus(ports):
        bus = LocalBus(ports)

        async def main():
            async with bus.subscribe(["a"]) as first, bus.subscribe(["a", "b"]) as second:
                assert len(bus._hubs) == 1
                await publish_until_received(bus, first, "a", {"x": 1})
                await publish_until_received(bus, second, "b", {"x": 2})
                while True:  # drain what the retries left behind
                    try:
                        await next_message(second, 0.1)
                    except TimeoutError:
                        break
                bus.publish("a", {"x": 3})
                assert (await next_message(second))[1] == {"x": 3}
            assert len(bus._hubs) == 0  # the last one out closes the socket

        asyncio.run(main())
        bus.close()


def test_publishing_without_the_proxy_never_blocks_nor_raises():
    bus = LocalBus(free_ports())
    started = time.monotonic()
    for n in range(2_000):
        bus.publish("rt:status", {"n": n})
    assert time.monotonic() - started < 3  # the first publish waits for the proxy once (0.2 s), then none
    bus.close()


def test_a_forked_child_publishes_on_a_socket_of_its_own():
    ports = free_ports()
    with serve_local_bus(ports):
        bus = LocalBus(ports)
        bus.publish("warm-up", {})  # the parent's socket exists before the fork
        parent_socket = bus._socket
        context = multiprocessing.get_context("fork")
        stop_reader, stop_writer = context.Pipe(duplex=False)

        def child():
            bus.publish("nobody-listens", {})  # the child's first publish makes its own socket
            while not stop_reader.poll(0.01):
                bus.publish("forked", {"pid": os.getpid(), "new_socket": bus._socket is not parent_socket})

        async def main():
            async with bus.subscribe(["forked", "parent"]) as subscription:
                process = context.Process(target=child, daemon=True)
                process.start()
                channel, message = await next_message(subscription, 20)
                stop_writer.send("stop")
                process.join(10)
                await publish_until_received(bus, subscription, "parent", {"still": "works"})
                return message, process.pid

        message, child_pid = asyncio.run(main())
        assert message == {"pid": child_pid, "new_socket": True}
        assert bus._socket is parent_socket
        bus.close()


def test_only_one_process_can_host_the_local_bus():
    ports = free_ports()
    with serve_local_bus(ports), pytest.raises(OSError, match="another streamer"):
        serve_local_bus(ports)


# ------------------------------------------------------------------------------------------ Redis
@needs_redis
def test_redis_carries_messages_on_exact_channels_through_one_connection_per_loop():
    bus = RedisBus(REDIS_URL)
    prefix = f"test-{os.getpid()}-{time.monotonic_ns()}"  # pub/sub channels are server-wide: unique names
    user, user_12, status = f"{prefix}:user:1", f"{prefix}:user:12", f"{prefix}:status"

    async def main():
        async with bus.subscribe([user]) as only_user, bus.subscribe([user, status]) as both:
            assert len(bus._hubs) == 1
            await publish_until_received(bus, only_user, user, {"n": 1})
            bus.publish(user_12, {"n": 2})
            bus.publish(status, {"n": 3})
            seen = set()
            while len(seen) < 2:
                channel, message = await next_message(both)
                seen.add(channel)
            assert seen == {user, status}
            bus.publish(user, {"n": 4})
            channel, message = await next_message(only_user)
            while message["n"] == 1:  # the retries of the first publish
                channel, message = await next_message(only_user)
            assert (channel, message) == (user, {"n": 4})
        assert len(bus._hubs) == 0

    asyncio.run(main())
    bus.close()


@needs_redis
def test_a_subscriber_reconnects_when_redis_drops_it():
    import redis

    bus = RedisBus(REDIS_URL)
    admin = redis.Redis.from_url(REDIS_URL)
    channel = f"test-{os.getpid()}-{time.monotonic_ns()}:reconnect"

    def kill_our_subscriber() -> int:
        ours = [c for c in admin.client_list(_type="pubsub") if c.get("name") == bus.client_name]
        for client in ours:
            admin.client_kill_filter(_id=client["id"])
        return len(ours)

    async def main():
        async with bus.subscribe([channel]) as subscription:
            await publish_until_received(bus, subscription, channel, {"before": True})
            assert kill_our_subscriber() == 1
            _, message = await publish_until_received(bus, subscription, channel, {"after": True}, timeout=15)
            while message != {"after": True}:
                _, message = await next_message(subscription, 5)
            return message

    assert asyncio.run(main()) == {"after": True}
    bus.close()
    admin.close()


@needs_redis
def test_pages_subscribing_at_the_same_moment_all_receive():
    """Two SSE streams opening together, each with two subscriptions (market data, then user/status): the
    shared connection must carry every channel (a regression: a second connection was opened and the
    market channels were read from neither)."""
    bus = RedisBus(REDIS_URL)
    prefix = f"test-{os.getpid()}-{time.monotonic_ns()}"
    market, control = [f"{prefix}:tick:{n}" for n in range(4)], [f"{prefix}:user", f"{prefix}:status"]
    received = {0: set(), 1: set()}

    async def page(n, opened):
        async with bus.subscribe(market) as ticks, bus.subscribe(control):
            opened.set()
            while len(received[n]) < len(market):
                channel, _ = await next_message(ticks, 5)
                received[n].add(channel)

    async def main():
        opened = [asyncio.Event(), asyncio.Event()]
        pages = [asyncio.create_task(page(n, opened[n])) for n in range(2)]
        await asyncio.wait_for(asyncio.gather(*(event.wait() for event in opened)), 5)
        deadline = time.monotonic() + 5
        while not all(task.done() for task in pages):
            assert time.monotonic() < deadline, received
            for channel in market:
                bus.publish(channel, {})
            await asyncio.sleep(0.05)
        await asyncio.gather(*pages)

    asyncio.run(main())
    bus.close()
    assert received == {0: set(market), 1: set(market)}


def test_a_publish_with_redis_down_is_dropped_without_raising():
    bus = RedisBus("redis://127.0.0.1:1/0")  # nothing listens on port 1
    started = time.monotonic()
    for n in range(100):
        bus.publish("rt:status", {"n": n})
    assert time.monotonic() - started < 2  # one failed attempt, then a pause without trying
    assert bus.dropped == 100

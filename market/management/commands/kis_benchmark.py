"""Burst benchmark of the KIS request budget: N quote requests from several threads through the
gateway's client, printing requests/second against the configured limit, the busiest sliding second
(as KIS counts: no second may hold more than its limit) and the rate-limit answers; --json prints one
object with the same figures.

Run it against the fake KIS host (python -m market.tests.fake_kis --mode real) or a real account."""

from __future__ import annotations

import json as _json
import threading
import time
from bisect import bisect_left
from concurrent.futures import ThreadPoolExecutor

from django.core.management.base import BaseCommand, CommandError

from market.brokers.kis import KIS_MODE, kis_client_for
from market.brokers.shared_state import rate_limiter_for
from market.kis import KisError
from market.kis.ratelimit import KIS_LIMIT_PER_SECOND, budget_for

from ._account import add_account_argument, resolve_account


class CountingRateLimiter:
    """Wraps the site's limiter: counts the rate-limit answers (EGW00201) KIS gave back and records when
    each request was let out."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.throttled = 0
        self.sent: list[float] = []
        self._lock = threading.Lock()

    def acquire(self, key: str) -> None:
        self.inner.acquire(key)
        with self._lock:
            self.sent.append(time.monotonic())

    def on_throttled(self, key: str) -> None:
        with self._lock:
            self.throttled += 1
        self.inner.on_throttled(key)


class Command(BaseCommand):
    help = "Send a burst of quote requests through the KIS client; print achieved requests/second vs the limit."

    def add_arguments(self, parser):
        parser.add_argument("--requests", type=int, default=200)
        parser.add_argument("--threads", type=int, default=8)
        parser.add_argument("--code", default="005930")
        parser.add_argument("--json", action="store_true", help="print one JSON object with the figures")
        add_account_argument(parser)

    def handle(self, *args, requests, threads, code, account=None, json=False, **options):
        broker_account = resolve_account(account)
        if broker_account.mode not in KIS_MODE:
            raise CommandError("the benchmark needs a KIS account (simulated or real), not a paper account")
        kis_mode = KIS_MODE[broker_account.mode]
        budget, window_ms = budget_for(kis_mode)
        limit = budget * 1000 / window_ms
        limiter = CountingRateLimiter(rate_limiter_for(kis_mode))
        client = kis_client_for(broker_account, rate_limiter=limiter)
        client.get_token()  # token issuance is not part of the burst
        errors: list[str] = []

        def one(_):
            try:
                client.get_quote(code)
            except KisError as error:
                errors.append(error.msg_cd or type(error).__name__)

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(one, range(requests)))
        elapsed = time.perf_counter() - started
        achieved = requests / elapsed if elapsed else float("inf")
        busiest = busiest_second(limiter.sent)
        if json:
            self.stdout.write(_json.dumps({
                "requests": requests, "seconds": round(elapsed, 3), "requests_per_second": round(achieved, 2),
                "configured_limit": round(limit, 2), "share_of_limit": round(achieved / limit, 3),
                "kis_limit": KIS_LIMIT_PER_SECOND[kis_mode], "busiest_second": busiest,
                "rate_limited": limiter.throttled, "failed": len(errors),
            }))
        else:
            self.stdout.write(
                f"{requests} requests in {elapsed:.2f} s = {achieved:.2f} req/s "
                f"(configured limit {limit:.2f}/s, {achieved / limit:.0%} of it; KIS allows "
                f"{KIS_LIMIT_PER_SECOND[kis_mode]}/s); busiest sliding second: {busiest} requests; "
                f"rate-limit answers: {limiter.throttled}; failed requests: {len(errors)}"
            )
        if errors:
            raise CommandError(f"{len(errors)} requests failed: {sorted(set(errors))}")


def busiest_second(sent: list[float]) -> int:
    """The most requests let out in any sliding second [t, t + 1 s)."""
    times = sorted(sent)
    return max((bisect_left(times, start + 1.0) - index for index, start in enumerate(times)), default=0)

"""Reads of market data for views and the API: instrument search, bars, closes, weekly analysis.

Instrument search runs in Python over a small per-process index of every instrument (about 3,000
rows: code, name, English name and the name's initial consonants, 초성), so "ㅅㅅㅈㅈ" finds 삼성전자
without storing anything new in the database. The index is rebuilt when the instrument count or the
highest id changes (one cheap aggregate per search), when `invalidate_instrument_index()` is called
(the cache token is shared through the Django cache, so with Redis every process sees it), and at the
latest after `INDEX_MAX_AGE` seconds (renames).
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from django.core.cache import cache
from django.db import connection
from django.db.models import CharField, Count, Max, Prefetch, QuerySet
from django.db.models.functions import Cast

from .models import DailyBar, Instrument, Outlier, WeeklyAnalysis

# ---------------------------------------------------------------------------------------------- Hangul
HANGUL_FIRST = 0xAC00  # 가
HANGUL_LAST = 0xD7A3  # 힣
SYLLABLES_PER_INITIAL = 588  # 21 vowels × 28 finals
FINALS = 28
# The 19 initial consonants in Unicode order, as compatibility jamo (what a keyboard types).
INITIALS = "ㄱㄲㄴㄷㄸㄹㅁㅂㅃㅅㅆㅇㅈㅉㅊㅋㅌㅍㅎ"
_INITIAL_INDEX = {ch: i for i, ch in enumerate(INITIALS)}


def is_initial_consonant(ch: str) -> bool:
    return ch in _INITIAL_INDEX


def initial_consonants(text: str) -> str:
    """Each Hangul syllable replaced by its initial consonant (삼성전자 → ㅅㅅㅈㅈ); other characters kept."""
    out = []
    for ch in text:
        code = ord(ch)
        if HANGUL_FIRST <= code <= HANGUL_LAST:
            out.append(INITIALS[(code - HANGUL_FIRST) // SYLLABLES_PER_INITIAL])
        else:
            out.append(ch)
    return "".join(out)


def _char_pattern(ch: str, *, last: bool) -> str:
    """Regex for one query character: a bare initial matches any syllable starting with it; the
    last character, when it is a syllable without a final consonant, also matches the same syllable
    with any final (so 삼성저 — 전 half typed with an IME — already finds 삼성전자)."""
    if ch in _INITIAL_INDEX:
        first = HANGUL_FIRST + _INITIAL_INDEX[ch] * SYLLABLES_PER_INITIAL
        return f"[{re.escape(ch)}{chr(first)}-{chr(first + SYLLABLES_PER_INITIAL - 1)}]"
    code = ord(ch)
    if last and HANGUL_FIRST <= code <= HANGUL_LAST and (code - HANGUL_FIRST) % FINALS == 0:
        return f"[{chr(code)}-{chr(code + FINALS - 1)}]"
    return re.escape(ch)


def _fold(text: str) -> str:
    return "".join(text.split()).casefold()


# ---------------------------------------------------------------------------------------------- index
@dataclass(frozen=True)
class _Entry:
    id: int
    code: str
    name: str
    name_key: str  # casefolded, without spaces
    name_en_key: str
    initials: str  # initial consonants of name_key
    is_listed: bool


INDEX_MAX_AGE = 300.0  # seconds
_TOKEN_KEY = "market:instrument-index-token"
_lock = threading.Lock()
_index: tuple[tuple, float, list[_Entry]] | None = None


def invalidate_instrument_index() -> None:
    """Make every process rebuild its search index on its next search (after renames, imports)."""
    global _index
    cache.set(_TOKEN_KEY, uuid.uuid4().hex, None)
    with _lock:
        _index = None


def _cache_token() -> str:
    token = cache.get(_TOKEN_KEY)
    if token is None:
        token = uuid.uuid4().hex
        cache.add(_TOKEN_KEY, token, None)
        token = cache.get(_TOKEN_KEY, token)
    return token


def _instrument_index() -> list[_Entry]:
    global _index
    stats = Instrument.objects.aggregate(count=Count("id"), max_id=Max("id"))
    signature = (stats["count"], stats["max_id"], _cache_token())
    now = time.monotonic()
    current = _index
    if current is not None and current[0] == signature and now - current[1] < INDEX_MAX_AGE:
        return current[2]
    rows = Instrument.objects.order_by("code").values_list("id", "code", "name", "name_en", "is_listed")
    entries = []
    for pk, code, name, name_en, is_listed in rows:
        key = _fold(name)
        entries.append(_Entry(pk, code, name, key, _fold(name_en), initial_consonants(key), is_listed))
    with _lock:
        _index = (signature, now, entries)
    return entries


# Lower rank = better match.
RANK_CODE_EXACT, RANK_NAME_EXACT, RANK_CODE_PREFIX, RANK_NAME_PREFIX, RANK_NAME_CONTAINS = range(5)
RANK_INITIALS_PREFIX, RANK_INITIALS_CONTAINS, RANK_NAME_EN_PREFIX, RANK_NAME_EN_CONTAINS = range(5, 9)
RANK_PATTERN_PREFIX, RANK_PATTERN_CONTAINS = 9, 10


def _rank(entry: _Entry, query: str, code_query: str, pattern: re.Pattern | None, initials_only: bool) -> int | None:
    if code_query:
        if entry.code == code_query:
            return RANK_CODE_EXACT
        if entry.code.startswith(code_query):
            return RANK_CODE_PREFIX
    if initials_only:
        position = entry.initials.find(query)
        if position == 0:
            return RANK_INITIALS_PREFIX
        if position > 0:
            return RANK_INITIALS_CONTAINS
        return None
    if entry.name_key == query:
        return RANK_NAME_EXACT
    position = entry.name_key.find(query)
    if position == 0:
        return RANK_NAME_PREFIX
    if position > 0:
        return RANK_NAME_CONTAINS
    if entry.name_en_key:
        position = entry.name_en_key.find(query)
        if position == 0:
            return RANK_NAME_EN_PREFIX
        if position > 0:
            return RANK_NAME_EN_CONTAINS
    if pattern is not None:
        match = pattern.search(entry.name_key)
        if match:
            return RANK_PATTERN_PREFIX if match.start() == 0 else RANK_PATTERN_CONTAINS
    return None


def search_instrument_ids(query: str, limit: int | None = None) -> list[int]:
    """Ids of the instruments matching ``query``, best first (see `search_instruments`)."""
    query = _fold(query or "")
    if not query:
        return []
    code_query = query.upper() if query.isascii() and query.isalnum() else ""
    initials_only = all(ch in _INITIAL_INDEX for ch in query)
    pattern = None
    if not initials_only:
        # Mixed syllables and initials (삼ㅅ), or a half-typed last syllable (삼성저).
        last = len(query) - 1
        source = "".join(_char_pattern(ch, last=i == last) for i, ch in enumerate(query))
        if source != re.escape(query):
            pattern = re.compile(source)
    matches = []
    for entry in _instrument_index():
        rank = _rank(entry, query, code_query, pattern, initials_only)
        if rank is not None:
            matches.append((rank, not entry.is_listed, len(entry.name), entry.code, entry.id))
    matches.sort()
    if limit is not None:
        matches = matches[:limit]
    return [m[-1] for m in matches]


def instruments_by_ids(ids: Sequence[int]) -> list[Instrument]:
    """The instruments with these ids, in the order given."""
    found = Instrument.objects.in_bulk(list(ids))
    return [found[pk] for pk in ids if pk in found]


def search_instruments(query: str, limit: int | None = 20) -> list[Instrument]:
    """Instruments matching ``query``, best first: exact code, exact name, code prefix (``0059``),
    name prefix, name substring, 초성 (``ㅅㅅㅈㅈ`` → 삼성전자, also mixed: ``삼ㅅ``), English name
    (case-insensitive). Spaces are ignored; listed instruments and shorter names come first."""
    return instruments_by_ids(search_instrument_ids(query, limit))


# ---------------------------------------------------------------------------------------------- reads
def instrument_by_code(code: str) -> Instrument | None:
    return Instrument.objects.filter(code=code).first()


BAR_FIELDS = ("open", "high", "low", "close", "volume", "traded_value", "source")


def parse_bar_fields(fields: str | Iterable[str] | None) -> tuple[str, ...]:
    """``"open,close"`` → ("open", "close"); None/empty → open, high, low, close, volume (``traded_value``
    and ``source`` — demo, csv or kis — only when asked for).
    Raises ValueError naming an unknown field."""
    if fields is None:
        return BAR_FIELDS[:5]
    names = fields.split(",") if isinstance(fields, str) else list(fields)
    names = [name.strip() for name in names if name.strip()]
    if not names:
        return BAR_FIELDS[:5]
    unknown = [name for name in names if name not in BAR_FIELDS]
    if unknown:
        raise ValueError(", ".join(unknown))
    return tuple(dict.fromkeys(names))  # de-duplicated, order kept


def _bars(code: str, start: date | None, end: date | None) -> QuerySet[DailyBar]:
    queryset = DailyBar.objects.filter(instrument__code=code)
    if start is not None:
        queryset = queryset.filter(date__gte=start)
    if end is not None:
        queryset = queryset.filter(date__lte=end)
    return queryset.order_by("date")


def bars_for(
    code: str, start: date | None = None, end: date | None = None, fields: Sequence[str] | str | None = None,
) -> list[dict]:
    """Daily bars of one instrument, oldest first, as dicts with ``date`` and the requested fields
    (default open, high, low, close, volume). Raises ValueError for an unknown field."""
    names = parse_bar_fields(fields)
    rows = _bars(code, start, end).values_list("date", *names)
    keys = ("date", *names)
    return [dict(zip(keys, row, strict=True)) for row in rows]


def close_series(code: str, start: date | None = None, end: date | None = None) -> list[tuple[date, int]]:
    """(date, close) pairs of one instrument, oldest first: one indexed query, no model instances."""
    return list(_bars(code, start, end).values_list("date", "close"))


def close_points(code: str, start: date | None = None, end: date | None = None) -> list[tuple[str, int]]:
    """Like `close_series`, with the date already as "YYYY-MM-DD" text from the database (a CAST in
    SQL): no date objects to build and format, which halves the time of a 10-year series. Used by
    the `/prices/{symbol}` hot path. (ISO text on SQLite and MySQL/MariaDB, the supported databases.)"""
    return list(_bars(code, start, end).values_list(Cast("date", output_field=CharField()), "close"))


def price_points(
    code: str, start: date | None = None, end: date | None = None,
) -> tuple[str, list[tuple[str, int]]] | None:
    """(the instrument's source, its close points as in `close_points`), or None for an unknown code.
    Two indexed queries (the instrument by its unique code, then its bars by instrument id, no join);
    the first is a plain parameterised statement: through the ORM it cost ten times as much, a tenth
    of the whole request for a 10-year series (the `/prices/{symbol}` hot path)."""
    with connection.cursor() as cursor:
        quote = connection.ops.quote_name
        cursor.execute(
            f"SELECT {quote('id')}, {quote('source')} FROM {quote(Instrument._meta.db_table)} "
            f"WHERE {quote('code')} = %s",
            [code],
        )
        found = cursor.fetchone()
    if found is None:
        return None
    pk, source = found
    queryset = DailyBar.objects.filter(instrument_id=pk)
    if start is not None:
        queryset = queryset.filter(date__gte=start)
    if end is not None:
        queryset = queryset.filter(date__lte=end)
    return source, list(queryset.order_by("date").values_list(Cast("date", output_field=CharField()), "close"))


def bar_sources(code: str) -> dict[str, int]:
    """{source: stored bars} of one instrument, e.g. {"demo": 2924}; one kind of series (demo or
    real) by construction, see market.import_service."""
    rows = DailyBar.objects.filter(instrument__code=code).order_by().values_list("source").annotate(count=Count("id"))
    return dict(sorted(rows))


def chart_series(code: str) -> list[tuple[date, int, int, int, int, int]]:
    """(date, open, high, low, close, volume) of every stored bar of one instrument, oldest first (the
    detail chart's candles)."""
    return list(_bars(code, None, None).values_list("date", "open", "high", "low", "close", "volume"))


def weekly_analysis_for(code: str, weeks: int | None = 12) -> list[WeeklyAnalysis]:
    """The latest ``weeks`` weekly analyses of one instrument, newest first, outliers prefetched
    (ordered by date, series, method)."""
    queryset = (
        WeeklyAnalysis.objects.filter(instrument__code=code)
        .order_by("-week_start")
        .prefetch_related(Prefetch("outliers", queryset=Outlier.objects.order_by("date", "series", "method")))
    )
    if weeks is not None:
        queryset = queryset[:weeks]
    return list(queryset)


def outliers_for(code: str, start: date | None = None, end: date | None = None) -> list[Outlier]:
    """Outliers found for one instrument (any week), oldest first."""
    queryset = Outlier.objects.filter(analysis__instrument__code=code)
    if start is not None:
        queryset = queryset.filter(date__gte=start)
    if end is not None:
        queryset = queryset.filter(date__lte=end)
    return list(queryset.order_by("date", "series", "method"))

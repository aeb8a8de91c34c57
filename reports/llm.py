"""The report text from an OpenAI-compatible Chat Completions API (`openai` package).

- Configuration from settings (`.env`): `OPENAI_API_KEY`, `OPENAI_MODEL`, `OPENAI_BASE_URL` (any
  compatible server), `OPENAI_TIMEOUT` (seconds per call), `OPENAI_MAX_RETRIES` (retries after the
  first call), `OPENAI_RETRY_BACKOFF` (first wait in seconds, doubled each retry with jitter, at
  most `MAX_BACKOFF`; a 429's `Retry-After` up to that cap wins), `OPENAI_TEMPERATURE`,
  `OPENAI_MAX_OUTPUT_TOKENS`.
- Transient errors are retried: time-outs, connection errors, 408, 409, 429 and 5xx. Anything else
  (401, 400, …) fails at once. The client's own retries are off (`max_retries=0`) so every call is
  counted here.
- The prompt hands over the facts as JSON and nothing else about the user: no username, e-mail,
  account number, account name or key (the facts carry none, `prompt_facts` keeps it so). The
  request body is logged (logger `reports.llm`) with secrets masked; the key only ever travels in
  the Authorization header.
- Token usage from the answer; the cost from `OPENAI_PRICES` (USD per million tokens, by model
  name prefix), or none for an unknown model.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from decimal import Decimal

import openai
from django.conf import settings
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from trading_site.logging import mask_secrets

logger = logging.getLogger("reports.llm")

MAX_BACKOFF = 30.0
RETRY_STATUSES = {408, 409, 429}

SYSTEM_PROMPT = """당신은 한국 주식 주간 자동매매 시스템의 리포트 작성자입니다.
사용자가 JSON으로 건네는 "사실 자료(facts)"만을 근거로, 그 주의 매매 리포트를 한국어 Markdown으로 작성합니다.

규칙:
- 숫자는 사실 자료에 있는 값만 그대로 인용합니다. 새 숫자를 만들거나 추정하거나 직접 계산하지 마십시오.
  필요한 합계·비율·수익률은 모두 사실 자료에 있습니다. 없는 값은 "자료 없음"이라고 쓰십시오.
- 금액은 원 단위 정수(예: 1,234,567원), 비율은 `_pct` 값에 %를 붙여(예: 1.23%) 씁니다.
- 사실 자료에 없는 사건, 뉴스, 종목 정보, 전망을 지어내지 마십시오. 투자 권유를 하지 마십시오.
- HTML이나 스크립트, 이미지, 링크를 쓰지 마십시오. Markdown 제목, 목록, 굵은 글씨, 표만 씁니다.
- 800~1,500자 정도로 간결하게 씁니다.

구성 (각각 `## ` 제목):
1. 요약 — 주간 수익률과 평가액 변화, 비교 지수(benchmark) 대비 초과수익.
2. 잘된 점
3. 아쉬운 점 — 손실 거래, 실패한 주문·작업, 경고(failures)가 있으면 반드시 언급.
4. 위험 요인 — 보유 종목 집중도, 시장 변동성·이상치(analysis), 극단적 z-점수 종목.
5. 다음 주 참고 사항 — 전략 규칙(strategies)에 따라 확인할 점. 예측은 하지 마십시오."""


class ModelUnavailable(Exception):
    """No model is configured (no API key)."""


class ModelFailed(Exception):
    """The API failed (after retries for transient errors)."""

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


@dataclass(frozen=True)
class ModelReply:
    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    attempts: int
    cost_usd: Decimal | None
    finish_reason: str = ""


def prompt_facts(facts: dict) -> dict:
    """What the model sees: the facts without the chart series (the same numbers, day by day)."""
    return {key: value for key, value in facts.items() if key not in ("series", "schema")}


def build_messages(facts: dict) -> list[dict]:
    week = facts.get("week", {}).get("iso_week", "")
    payload = json.dumps(prompt_facts(facts), ensure_ascii=False, separators=(",", ":"))
    user = (
        f"{week} 주간 리포트를 작성해 주세요. 사실 자료(facts, JSON):\n"
        f"```json\n{payload}\n```\n"
        "week.complete가 false이면 주가 아직 끝나지 않았으니 as_of 날짜까지의 중간 결과라고 밝혀 주세요."
    )
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def request_body(facts: dict) -> dict:
    body: dict = {"model": settings.OPENAI_MODEL, "messages": build_messages(facts)}
    if settings.OPENAI_TEMPERATURE is not None:
        body["temperature"] = settings.OPENAI_TEMPERATURE
    if settings.OPENAI_MAX_OUTPUT_TOKENS:
        body["max_completion_tokens"] = settings.OPENAI_MAX_OUTPUT_TOKENS
    return body


def redact(text: str) -> str:
    """The text with the API key (if it slipped in anywhere) and secret-shaped values masked."""
    key = settings.OPENAI_API_KEY
    if key:
        text = text.replace(key, "***")
    return mask_secrets(text)


def cost_for(model: str, prompt_tokens: int, completion_tokens: int) -> Decimal | None:
    """USD cost from OPENAI_PRICES: {"model prefix": (input, output) USD per 1M tokens}; the longest
    matching prefix wins (so "gpt-4o-mini-2024-07-18" uses "gpt-4o-mini", not "gpt-4o")."""
    prices = settings.OPENAI_PRICES or {}
    names = [name for name in prices if model.startswith(name)]
    if not names:
        return None
    price_in, price_out = prices[max(names, key=len)]
    cost = (Decimal(str(price_in)) * prompt_tokens + Decimal(str(price_out)) * completion_tokens) / Decimal(1_000_000)
    return cost.quantize(Decimal("0.000001"))


def is_transient(error: BaseException) -> bool:
    if isinstance(error, openai.APITimeoutError | openai.APIConnectionError):
        return True
    if isinstance(error, openai.APIStatusError):
        return error.status_code in RETRY_STATUSES or error.status_code >= 500
    return False


def _wait(state: RetryCallState) -> float:
    error = state.outcome.exception() if state.outcome else None
    retry_after = None
    if isinstance(error, openai.APIStatusError):
        header = error.response.headers.get("retry-after") if error.response is not None else None
        try:
            retry_after = float(header) if header is not None else None
        except ValueError:
            retry_after = None
    if retry_after is not None and 0 <= retry_after <= MAX_BACKOFF:
        return retry_after
    base = float(settings.OPENAI_RETRY_BACKOFF) * 2 ** (state.attempt_number - 1)
    return min(base + random.uniform(0, base / 2), MAX_BACKOFF)


def _client() -> openai.OpenAI:
    return openai.OpenAI(
        api_key=settings.OPENAI_API_KEY, base_url=settings.OPENAI_BASE_URL or None,
        timeout=float(settings.OPENAI_TIMEOUT), max_retries=0,
    )


def write_report(facts: dict, *, sleep=time.sleep) -> ModelReply:
    """The report text from the model. Raises ModelUnavailable without a key, ModelFailed when the
    API fails (transient errors after OPENAI_MAX_RETRIES retries)."""
    if not settings.OPENAI_API_KEY:
        raise ModelUnavailable("OPENAI_API_KEY is not set")
    body = request_body(facts)
    logger.info("OpenAI request to %s: %s", settings.OPENAI_BASE_URL or "api.openai.com",
                redact(json.dumps(body, ensure_ascii=False)))
    client = _client()
    attempts = 0

    def call():
        nonlocal attempts
        attempts += 1
        return client.chat.completions.create(**body)

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        logger.warning("OpenAI call %d failed (%s); retrying", state.attempt_number, _describe(error))

    retrying = Retrying(
        stop=stop_after_attempt(int(settings.OPENAI_MAX_RETRIES) + 1), wait=_wait,
        retry=retry_if_exception(is_transient), before_sleep=before_sleep, sleep=sleep, reraise=True,
    )
    started = time.monotonic()
    try:
        completion = retrying(call)
    except openai.OpenAIError as error:
        raise ModelFailed(_describe(error), attempts) from error
    finally:
        client.close()
    choice = completion.choices[0] if completion.choices else None
    text = (choice.message.content or "").strip() if choice and choice.message else ""
    if not text:
        raise ModelFailed("the model answered with an empty text", attempts)
    usage = completion.usage
    prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
    total_tokens = int(getattr(usage, "total_tokens", 0) or 0) or prompt_tokens + completion_tokens
    model = completion.model or settings.OPENAI_MODEL
    logger.info("OpenAI answer: model %s, %d+%d tokens, %d call(s), %.1f s", model, prompt_tokens,
                completion_tokens, attempts, time.monotonic() - started)
    return ModelReply(
        text=text, model=model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
        total_tokens=total_tokens, attempts=attempts, cost_usd=cost_for(model, prompt_tokens, completion_tokens),
        finish_reason=choice.finish_reason or "",
    )


def _describe(error: BaseException | None) -> str:
    """A short, secret-free description of an API error for the report's status and the logs."""
    if error is None:
        return "unknown error"
    if isinstance(error, openai.APITimeoutError):
        return f"time-out after {settings.OPENAI_TIMEOUT:g} s"
    if isinstance(error, openai.APIStatusError):
        return redact(f"HTTP {error.status_code} {type(error).__name__}")
    if isinstance(error, openai.APIConnectionError):
        return "connection error"
    return redact(type(error).__name__)

"""The report text from an OpenAI-compatible Chat Completions API (`openai` package).

- Configuration from settings (`.env`): `OPENAI_API_KEY`, `OPENAI_MODEL`, `OPENAI_BASE_URL` (any
  compatible server), `OPENAI_TIMEOUT` (seconds per call), `OPENAI_MAX_RETRIES` (retries after the
  first call), `OPENAI_RETRY_BACKOFF` (first wait in seconds, doubled each retry with jitter, at
  most `MAX_BACKOFF`; a 429's `Retry-After` up to that cap wins), `OPENAI_TEMPERATURE`,
  `OPENAI_MAX_OUTPUT_TOKENS`.
- Transient errors are retried: time-outs, connection errors, 408, 409, 429, 5xx and a 200 whose
  body is no chat completion (not JSON, not UTF-8, no choices: a broken proxy or an overloaded
  server). Anything else (401, 400, …) fails at once. The client's own retries are off
  (`max_retries=0`) so every call is counted here (`ModelFailed.attempts`, `ModelReply.attempts`).
- Only a complete answer is a report. One cut at the output limit (`finish_reason` "length") is
  asked once more with twice the room, at most `OPENAI_MAX_OUTPUT_TOKENS_CEILING`; cut again, it
  fails (`FailureKind.TRUNCATED`). A content-filtered answer, a refusal (`message.refusal`, its text
  kept on the error) and an empty one fail too. `ModelFailed.kind` says which, and
  `fails_for_everyone` whether the next user's call would fail the same way (server down, wrong
  key/model/URL), so a run can stop calling it.
- The prompt hands over the facts as JSON and nothing else about the user: no username, e-mail,
  account number, account name or key (the facts carry none, `prompt_facts` keeps it so). The
  request body is logged (logger `reports.llm`) with secrets masked; the key only ever travels in
  the Authorization header.
- Token usage from the answers (summed over the calls, the unusable ones included); the cost from
  `OPENAI_PRICES` (USD per million tokens, by model name prefix), or none for an unknown model.
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
from openai.types.chat import ChatCompletion, ChatCompletionMessage
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from trading_site.logging import mask_secrets

logger = logging.getLogger("reports.llm")

MAX_BACKOFF = 30.0
RETRY_STATUSES = {408, 409, 429}
REFUSAL_CHARS = 1000  # of the model's refusal text kept on the report

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
3. 아쉬운 점 — 손실 거래, 실패한 주문·작업, 경고(failures)가 있으면 반드시 언급. 실거래와 백테스트의 비교(drift)가
   있으면 손익 차이(pnl_gap, pnl_gap_bps), 슬리피지, 누락·추가 거래와 경고(alert)를 언급.
4. 위험 요인 — 보유 종목 집중도, 시장 변동성·이상치(analysis), 극단적 z-점수 종목.
5. 다음 주 참고 사항 — 전략 규칙(strategies)에 따라 확인할 점. 예측은 하지 마십시오."""


class ModelUnavailable(Exception):
    """No model is configured (no API key)."""


class FailureKind:
    """Why the model gave no report (`ModelFailed.kind`)."""

    DOWN = "down"  # transient errors (time-out, connection, 429, 5xx, an undecodable answer) after the retries
    REJECTED = "rejected"  # a permanent HTTP error (400, 401, 403, 404, …): not retried
    TRUNCATED = "truncated"  # finish_reason "length", also after the retry with more room
    FILTERED = "filtered"  # finish_reason "content_filter"
    REFUSED = "refused"  # message.refusal set, no content
    EMPTY = "empty"  # an answer without text


# HTTP statuses that fail the same way for every user of a run (the key, the model or the URL is wrong).
CONFIGURATION_STATUSES = {401, 403, 404}


@dataclass
class Spent:
    """What the calls of one report cost: every call counts, also the ones whose answer was unusable."""

    attempts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost_usd: Decimal | None = None
    model: str = ""
    failed_in_a_row: int = 0  # failed calls of the last retry series

    def add_usage(self, completion) -> None:
        usage = getattr(completion, "usage", None)
        prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
        answer = int(getattr(usage, "completion_tokens", 0) or 0)
        total = int(getattr(usage, "total_tokens", 0) or 0) or prompt + answer
        self.model = getattr(completion, "model", None) or self.model or settings.OPENAI_MODEL
        self.prompt_tokens += prompt
        self.completion_tokens += answer
        self.total_tokens += total
        cost = cost_for(self.model, prompt, answer)
        if cost is not None:
            self.cost_usd = (self.cost_usd or Decimal(0)) + cost


class ModelFailed(Exception):
    """The model gave no usable report: the API failed (transient errors after the retries), or it
    answered with something that is not a report (truncated, filtered, refused, empty). The message
    is Korean and secret-free; `spent` counts every call and the tokens they used."""

    def __init__(self, message: str, attempts: int, *, kind: str = FailureKind.DOWN, refusal: str = "",
                 status_code: int | None = None, spent: Spent | None = None) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.kind = kind
        self.refusal = refusal
        self.status_code = status_code
        self.spent = spent or Spent(attempts=attempts)

    @property
    def fails_for_everyone(self) -> bool:
        """The next user's call would fail the same way: the server is down, or the key, model or URL
        is wrong. (A truncated, filtered or refused answer depends on this user's facts.)"""
        return self.kind == FailureKind.DOWN or (
            self.kind == FailureKind.REJECTED and self.status_code in CONFIGURATION_STATUSES)


class MalformedAnswer(Exception):
    """The server answered 200 with a body that is not a chat completion (not JSON, not UTF-8, no
    choices): a broken proxy or an overloaded server, retried like a 5xx."""


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
    if isinstance(error, MalformedAnswer | openai.APITimeoutError | openai.APIConnectionError
                  | openai.APIResponseValidationError):
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


def _well_formed(completion) -> bool:
    # The client returns the body as text when it is not JSON, and builds a ChatCompletion from any
    # JSON object without checking it (so `{"error": …}` with a 200 has choices None).
    if not isinstance(completion, ChatCompletion) or not isinstance(completion.choices, list) or not completion.choices:
        return False
    message = getattr(completion.choices[0], "message", None)
    return isinstance(message, ChatCompletionMessage)


def _complete(client: openai.OpenAI, body: dict, spent: Spent, sleep) -> ChatCompletion:
    """One chat completion, transient errors retried with the backoff; every call is counted in
    `spent`. Raises ModelFailed when the API fails."""
    spent.failed_in_a_row = 0

    def call() -> ChatCompletion:
        spent.attempts += 1
        try:
            try:
                completion = client.chat.completions.create(**body)
            except UnicodeDecodeError as error:  # a 200 whose body is not text
                raise MalformedAnswer("UTF-8이 아님") from error
            except json.JSONDecodeError as error:  # … or not JSON
                raise MalformedAnswer("JSON이 아님") from error
            if not _well_formed(completion):
                raise MalformedAnswer("JSON이 아니거나 chat completion 형식이 아님")
        except Exception:
            spent.failed_in_a_row += 1
            raise
        return completion

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        logger.warning("OpenAI call %d failed (%s); retrying", spent.attempts, _describe(error))

    retrying = Retrying(
        stop=stop_after_attempt(int(settings.OPENAI_MAX_RETRIES) + 1), wait=_wait,
        retry=retry_if_exception(is_transient), before_sleep=before_sleep, sleep=sleep, reraise=True,
    )
    try:
        completion = retrying(call)
    except (openai.OpenAIError, MalformedAnswer) as error:
        transient = is_transient(error)
        status = error.status_code if isinstance(error, openai.APIStatusError) else None
        raise ModelFailed(_describe(error), spent.attempts, kind=FailureKind.DOWN if transient else FailureKind.REJECTED,
                          status_code=status, spent=spent) from error
    spent.add_usage(completion)
    return completion


def more_room(max_tokens: int | None) -> int | None:
    """The output budget for the one retry of a truncated answer: twice the last one, at most
    OPENAI_MAX_OUTPUT_TOKENS_CEILING; None when that leaves no more room."""
    ceiling = int(settings.OPENAI_MAX_OUTPUT_TOKENS_CEILING or 0)
    if not max_tokens:  # none was sent: the server's own limit cut it, ask for the ceiling
        return ceiling or None
    room = min(2 * int(max_tokens), ceiling)
    return room if room > max_tokens else None


def write_report(facts: dict, *, sleep=time.sleep) -> ModelReply:
    """The report text from the model. Raises ModelUnavailable without a key and ModelFailed when
    the model gives no complete report:
    - the API fails (transient errors after OPENAI_MAX_RETRIES retries, or a permanent error);
    - the answer is cut at the output limit (`finish_reason` "length"): asked once more with twice
      the room (at most OPENAI_MAX_OUTPUT_TOKENS_CEILING), and if still cut, failed — a truncated
      answer is never a report;
    - the answer was stopped by the content filter, is a refusal (its text kept on the error), or empty.
    """
    if not settings.OPENAI_API_KEY:
        raise ModelUnavailable("OPENAI_API_KEY is not set")
    body = request_body(facts)
    logger.info("OpenAI request to %s: %s", settings.OPENAI_BASE_URL or "api.openai.com",
                redact(json.dumps(body, ensure_ascii=False)))
    client = _client()
    spent = Spent()
    started = time.monotonic()
    try:
        completion = _complete(client, body, spent, sleep)
        if completion.choices[0].finish_reason == "length":
            limit = body.get("max_completion_tokens")
            room = more_room(limit)
            if room is None:
                raise ModelFailed(
                    f"답변이 출력 한도({_tokens(limit)})에서 잘렸고, 한도를 더 늘릴 수 없습니다 "
                    "(OPENAI_MAX_OUTPUT_TOKENS_CEILING).", spent.attempts, kind=FailureKind.TRUNCATED, spent=spent)
            logger.warning("OpenAI answer cut at the output limit (%s); asking once more with %d tokens",
                           limit or "the server's", room)
            body = {**body, "max_completion_tokens": room}
            completion = _complete(client, body, spent, sleep)
            if completion.choices[0].finish_reason == "length":
                raise ModelFailed(
                    f"답변이 출력 한도에서 잘렸습니다 ({_tokens(limit)}에서 잘려 {room:,} 토큰으로 다시 요청했지만 또 잘림).",
                    spent.attempts, kind=FailureKind.TRUNCATED, spent=spent)
    finally:
        client.close()
    choice = completion.choices[0]
    message = choice.message
    text = (message.content or "").strip()
    if choice.finish_reason == "content_filter":
        raise ModelFailed("모델의 콘텐츠 필터가 답변을 막았습니다 (finish_reason: content_filter).", spent.attempts,
                          kind=FailureKind.FILTERED, spent=spent)
    refusal = redact((getattr(message, "refusal", None) or "").strip())[:REFUSAL_CHARS]
    if refusal and not text:
        raise ModelFailed(f"모델이 리포트 작성을 거절했습니다: “{refusal}”", spent.attempts, kind=FailureKind.REFUSED,
                          refusal=refusal, spent=spent)
    if not text:
        raise ModelFailed("모델이 빈 답변을 보냈습니다.", spent.attempts, kind=FailureKind.EMPTY, spent=spent)
    logger.info("OpenAI answer: model %s, %d+%d tokens, %d call(s), %.1f s", spent.model, spent.prompt_tokens,
                spent.completion_tokens, spent.attempts, time.monotonic() - started)
    return ModelReply(
        text=text, model=spent.model, prompt_tokens=spent.prompt_tokens, completion_tokens=spent.completion_tokens,
        total_tokens=spent.total_tokens, attempts=spent.attempts, cost_usd=spent.cost_usd,
        finish_reason=choice.finish_reason or "",
    )


def _tokens(limit: int | None) -> str:
    return f"{limit:,} 토큰" if limit else "서버 기본값"


HTTP_MEANINGS = {
    400: "잘못된 요청", 401: "인증 실패 — OPENAI_API_KEY를 확인하세요", 403: "권한 없음",
    404: "모델이나 주소가 없음 — OPENAI_MODEL, OPENAI_BASE_URL을 확인하세요", 408: "요청 시간 초과",
    409: "충돌", 413: "요청이 너무 큼", 422: "처리할 수 없는 요청", 429: "요청 한도 초과",
}


def _describe(error: BaseException | None) -> str:
    """A short, secret-free Korean description of an API error for the report's status and the logs."""
    if error is None:
        return "알 수 없는 오류"
    if isinstance(error, openai.APITimeoutError):
        return f"응답 시간 초과(time-out {float(settings.OPENAI_TIMEOUT):g}초)"
    if isinstance(error, openai.APIStatusError):
        code = error.status_code
        meaning = HTTP_MEANINGS.get(code) or ("서버 오류" if code >= 500 else "오류")
        return redact(f"HTTP {code} {meaning}")
    if isinstance(error, openai.APIConnectionError):
        return "서버에 연결하지 못함(connection error)"
    if isinstance(error, MalformedAnswer):
        return f"응답 본문을 해석할 수 없음({error})"
    if isinstance(error, openai.APIResponseValidationError):
        return "응답 본문을 해석할 수 없음(chat completion 형식이 아님)"
    return redact(type(error).__name__)

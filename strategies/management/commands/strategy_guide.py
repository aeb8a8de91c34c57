"""manage.py strategy_guide: write the Korean strategy guide (docs/strategies_kr.md).

For every registered strategy: its description, the hand-written idea / exact rule / when it works
and when it fails (``GUIDE_TEXT`` below, next to the generator so it is edited with it), the
parameter table generated from the ``Parameter`` declarations, and a backtest with the default
parameters on the demo market, next to the equal-weight buy-and-hold of the same universe.

The demo market is built in memory (``market.demo``'s generator through
``strategies.backtest.synthetic.demo_market``), never read from or written to the database: a fixed
seed, universe and period, so the same code gives the same file. ``--check`` compares the file on
disk with what would be written and exits 1 when they differ (for CI).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from markdown.extensions.toc import slugify_unicode

from market.demo import DEFAULT_SEED, DEMO_EPOCH, generate_universe
from market.krx import trading_days
from market.krx.fees import DEFAULT_COMMISSION_RATE, SELL_TAX_SCHEDULE
from strategies.backtest import BacktestConfig, BacktestResult, MarketData, run_backtest
from strategies.backtest.synthetic import demo_market
from strategies.guide_views import guide_path
from strategies.library import Strategy, all_strategies

# The demo market of the guide: the demo's default size and seed, a fixed period (never "today":
# the file must not change with the date it is generated on). Bars are simulated from the demo's
# epoch, so the long-lookback strategies are warmed up when trading starts.
SYMBOLS = 40
SEED = DEFAULT_SEED
START = date(2023, 1, 2)
END = date(2025, 12, 30)
INITIAL_CASH = 10_000_000
MAX_POSITIONS = 10

# Hand-written Korean prose per strategy key: idea, rule (exact entry/exit and ranking), works, fails.
# The figures and the parameter tables are generated; a strategy missing here gets a short note.
GUIDE_TEXT: dict[str, dict[str, str]] = {
    "mean_reversion": {
        "idea": (
            "가격이 최근 평균에서 크게 벗어나면 다시 평균 쪽으로 돌아온다는 가정입니다. 하루 이틀 사이 과하게 "
            "떨어진 종목(과잉 반응)을 사서, 평균으로 되돌아오는 동안의 반등을 노립니다."
        ),
        "rule": (
            "- Z = (종가 − `window`일 이동평균) / `window`일 표본표준편차(ddof=1), 종목 자신의 일봉으로 계산합니다.\n"
            "- 매수 신호(+1): Z < −`z_threshold`. 매도 신호(−1): Z > +`z_threshold`.\n"
            "- 순위 점수: −Z (Z가 가장 낮은 종목부터 삽니다).\n"
            "- 주간 백테스트에서는 진입일 전 거래일 종가의 Z로 후보를 고르고 주 첫 거래일 시가에 삽니다. 주중에는 "
            "손절·익절·매도 신호가 나온 날 종가에 팔고, 남은 종목은 주 마지막 거래일 종가에 모두 팝니다. Z가 "
            "+임계값까지 회복하는 데는 보통 한 주보다 오래 걸리므로 대부분 주말 청산(week_end)으로 끝납니다."
        ),
        "works": (
            "박스권 장세, 뉴스 없이 수급으로 생긴 일시적 급락, 유동성이 큰 종목에서 잘 맞습니다. 데모 시장은 "
            "되돌아오는 과잉 반응과 박스권 구간을 일부러 넣어 만들었기 때문에 이 전략에 유리합니다."
        ),
        "fails": (
            "하락 추세가 이어지면 Z가 계속 낮아 '떨어지는 칼'을 반복해서 잡습니다(손절이 잦아짐). 실적 악화처럼 "
            "가치 자체가 바뀐 하락은 돌아오지 않고, 변동성이 급증하면 표준편차가 커져 신호가 늦어집니다."
        ),
    },
    "bollinger": {
        "idea": (
            "볼린저 밴드 하단 아래로 마감한 종가를 단기 과매도로 보고, 중심선(또는 상단)으로 돌아오는 움직임을 "
            "노리는 역추세 전략입니다. 평균회귀(Z-점수)와 같은 생각을 밴드로 표현한 것입니다."
        ),
        "rule": (
            "- 중심선 = `window`일 이동평균, σ = `window`일 모표준편차(ddof=0); 하단 = 중심선 − `num_std`×σ, "
            "상단 = 중심선 + `num_std`×σ.\n"
            "- 매수 신호(+1): 종가 < 하단. 매도 신호(−1): `exit_band`가 middle이면 종가 > 중심선, upper이면 "
            "종가 > 상단.\n"
            "- 순위 점수: −%b, %b = (종가 − 하단) / (상단 − 하단) (밴드 아래로 가장 깊이 내려간 종목부터).\n"
            "- 주간 백테스트: 진입일 전 거래일의 신호로 주 첫 거래일 시가에 사고, 주중 손절·익절·매도 신호가 나온 "
            "날 종가에, 아니면 주 마지막 거래일 종가에 팝니다. middle 기준은 평균회귀 전략의 Z > 0에 해당해 "
            "신호 매도가 더 일찍 나옵니다."
        ),
        "works": "평균회귀와 같은 장세(박스권, 일시적 과잉 반응)에서 잘 맞습니다. middle 기준은 짧은 반등만 먹고 빠집니다.",
        "fails": (
            "추세가 강한 하락장에서는 종가가 하단을 따라 내려가며(밴드 워킹) 매수 신호가 계속 나옵니다. 변동성이 "
            "줄어든 구간에서는 밴드가 좁아져 작은 움직임에도 신호가 나고, 비용이 수익을 깎습니다."
        ),
    },
    "ma_crossover": {
        "idea": (
            "추세 추종 전략입니다. 단기 이동평균이 장기 이동평균 위로 올라서면(골든크로스) 상승 추세의 시작, "
            "아래로 내려가면(데드크로스) 추세의 끝으로 봅니다."
        ),
        "rule": (
            "- 단기선 = `short_window`일 이동평균, 장기선 = `long_window`일 이동평균 (`short_window` < "
            "`long_window`여야 합니다).\n"
            "- `mode` = cross: 매수 신호(+1)는 오늘 단기선 > 장기선이고 전날 단기선 ≤ 장기선인 날(골든크로스), "
            "매도 신호(−1)는 오늘 단기선 < 장기선이고 전날 단기선 ≥ 장기선인 날(데드크로스)에만 나옵니다.\n"
            "- `mode` = trend: 단기선 > 장기선인 동안 매수 신호, 단기선 < 장기선인 동안 매도 신호.\n"
            "- 순위 점수: (단기선 − 장기선) / 장기선 (이격이 큰 종목부터).\n"
            "- 주간 백테스트: cross 모드에서는 진입일 전 거래일(보통 금요일)에 교차한 종목만 후보가 되고, 주중 "
            "다른 날의 교차는 놓칩니다. trend 모드에서는 단기선이 위에 있는 종목이 매주 모두 후보가 되어 "
            "매주 사고 주말에 팔기를 되풀이하므로 거래 수와 비용이 훨씬 큽니다."
        ),
        "works": "몇 주에서 몇 달 이어지는 뚜렷한 추세가 있는 종목과 장세에서 잘 맞습니다.",
        "fails": (
            "횡보장에서는 두 선이 자주 엇갈려 가짜 신호(휩소)가 많고, 이동평균이라 신호가 늦습니다. 주간 "
            "청산 규칙 때문에 한 번 잡은 추세를 길게 타지 못해 추세 추종의 장점이 줄어듭니다."
        ),
    },
    "rsi": {
        "idea": (
            "최근 상승폭에 비해 하락폭이 지나치게 크면(RSI가 낮으면) 반등한다고 보는 역추세 전략입니다."
        ),
        "rule": (
            "- 전일 대비 변화의 상승분과 하락분을 와일더 방식으로 평활합니다: 첫 값은 처음 `period`개 변화의 "
            "단순평균, 이후 평균 = (이전 평균 × (`period` − 1) + 오늘 값) / `period`.\n"
            "- RSI = 100 × 평균 상승 / (평균 상승 + 평균 하락) (둘 다 0이면 50).\n"
            "- 매수 신호(+1): RSI < `oversold`. 매도 신호(−1): RSI > `overbought` (`oversold` < `overbought`).\n"
            "- 순위 점수: −RSI (가장 과매도된 종목부터).\n"
            "- 주간 백테스트: 진입일 전 거래일의 RSI로 주 첫 거래일 시가에 사고, 손절·익절·매도 신호가 나온 날 "
            "종가에, 아니면 주 마지막 거래일 종가에 팝니다. 과매수까지 오르는 데는 보통 한 주보다 오래 걸립니다."
        ),
        "works": "박스권과 짧은 조정이 반복되는 장세에서 잘 맞습니다.",
        "fails": (
            "강한 하락 추세에서는 RSI가 오래 과매도 구간에 머물러 손실 매수가 이어지고, 강한 상승장에서는 "
            "과매도 신호 자체가 드물어 거의 거래하지 않습니다."
        ),
    },
    "volatility_breakout": {
        "idea": (
            "래리 윌리엄스의 변동성 돌파입니다. 당일 가격이 시가에서 전일 변동폭의 일정 비율 이상 오르면 "
            "그 방향의 힘이 이어진다고 봅니다."
        ),
        "rule": (
            "- 전일 변동폭 = 전일 고가 − 전일 저가; 목표가 = 당일 시가 + `k` × 전일 변동폭; 하한 = 당일 시가 − "
            "`k` × 전일 변동폭.\n"
            "- 매수 신호(+1): 종가 > 목표가 (`ma_window` > 0이면 종가 > `ma_window`일 이동평균도 만족해야 함). "
            "매도 신호(−1): 종가 < 하한.\n"
            "- 순위 점수: (종가 − 목표가) / 시가 (목표가를 크게 넘은 종목부터).\n"
            "- 주간 백테스트: 원래 전략은 장중 목표가 돌파 때 사서 다음 날 시가에 팔지만, 여기서는 진입일 전 "
            "거래일의 종가가 목표가를 넘었는지로 주 첫 거래일 시가에 삽니다('금요일 돌파 → 월요일 시가 매수'). "
            "주중 종가가 하한 아래면 그날 종가에, 아니면 주 마지막 거래일 종가에 팝니다."
        ),
        "works": "돌파 뒤 며칠 동안 같은 방향으로 움직이는 추세장, 거래대금이 몰리는 주도주에서 잘 맞습니다.",
        "fails": (
            "돌파가 하루로 끝나고 되돌리는 장(과잉 반응이 되돌아오는 데모 시장이 그렇습니다)에서는 고점에 사게 "
            "됩니다. 주말 사이 갭 하락의 위험을 그대로 지고, 장중 진입이 아니라 원래 전략의 수익원과 다릅니다."
        ),
    },
    "momentum_12_1": {
        "idea": (
            "지난 1년 동안 많이 오른 종목이 앞으로도 상대적으로 더 오르는 경향(횡단면 모멘텀)을 이용합니다. "
            "최근 1개월은 단기 반전 효과가 있어 빼고 잽니다."
        ),
        "rule": (
            "- 모멘텀 = `skip`일 전 종가 / `lookback`일 전 종가 − 1 (종목 자신의 일봉 수로 셉니다; `skip` < "
            "`lookback`).\n"
            "- 매일 전 종목을 모멘텀이 높은 순으로 순위를 매깁니다(동률은 종목코드 순).\n"
            "- 매수 신호(+1): 순위 ≤ `top_n` (모멘텀의 부호와 무관). 매도 신호(−1): 순위 > `top_n`이고 모멘텀 < 0.\n"
            "- 순위 점수: 모멘텀.\n"
            "- 주간 백테스트: 매주 상위 종목을 주 첫 거래일 시가에 사서 주 마지막 거래일 종가에 모두 팔고, 다음 "
            "주에 다시 삽니다. 그래서 거래 수가 많고 수수료와 매도세가 매주 듭니다. 최대 보유 종목 수가 "
            "`top_n`보다 작으면 상위 순서대로 그 수만큼만 삽니다."
        ),
        "works": "업종이나 테마의 추세가 몇 달 이상 이어지는 장세에서 잘 맞습니다.",
        "fails": (
            "추세가 급히 뒤집히는 때(모멘텀 크래시)와 횡보장에서 약합니다. 데모 시장은 가격을 기본 가치 쪽으로 "
            "끌어당기고 종목의 추세가 이어지는 성질을 따로 넣지 않았으므로 이 전략이 기대하는 효과가 없고, "
            "주간 회전 비용도 큽니다."
        ),
    },
    "dual_momentum": {
        "idea": (
            "게리 안토나치의 듀얼 모멘텀입니다. 다른 종목보다 많이 오른 종목(상대 모멘텀) 가운데 현금보다 나은 "
            "종목(절대 모멘텀)만 삽니다. 시장 전체가 내리면 절대 모멘텀이 매수를 막아 현금으로 남습니다."
        ),
        "rule": (
            "- 수익률 = 종가 / `lookback`일 전 종가 − 1 (종목 자신의 일봉 수로 셉니다).\n"
            "- 매일 전 종목을 수익률이 높은 순으로 순위를 매깁니다(동률은 종목코드 순).\n"
            "- 매수 신호(+1): 순위 ≤ `top_n`이고 수익률 > `threshold`. 매도 신호(−1): 수익률 ≤ `threshold`.\n"
            "- 순위 점수: 수익률.\n"
            "- 주간 백테스트: 12-1 모멘텀과 같이 매주 사고 주말에 모두 팔아 다시 사므로 거래 수와 비용이 큽니다."
        ),
        "works": "강세장과 주도 업종이 뚜렷한 장에서 잘 맞고, 긴 약세장에서는 매수를 멈춰 손실을 줄입니다.",
        "fails": (
            "급반전 구간에서는 절대 모멘텀이 늦게 반응해 고점에서 사고 저점에서 팝니다. 수익률이 `threshold` "
            "근처를 오가는 횡보장에서는 매매가 잦아지고, 데모 시장처럼 추세가 이어지지 않는 시장에서는 불리합니다."
        ),
    },
}

MISSING_TEXT = "이 전략의 해설은 아직 없습니다 (`strategies/management/commands/strategy_guide.py`의 `GUIDE_TEXT`)."
TYPE_NAMES = {"int": "정수", "float": "숫자", "choice": "선택"}
REASON_NAMES = {"stop_loss": "손절", "take_profit": "익절", "signal": "매도 신호", "week_end": "주말 청산"}


@dataclass(frozen=True)
class GuideRun:
    strategy: type[Strategy]
    result: BacktestResult


def build_demo_market() -> tuple[MarketData, list[dict]]:
    """The guide's demo market in memory (no database): ``SYMBOLS`` symbols from the demo epoch to ``END``."""
    days = trading_days(DEMO_EPOCH, END)
    return demo_market(SYMBOLS, days, seed=SEED), generate_universe(SYMBOLS, SEED)


def backtest_config() -> BacktestConfig:
    # Costs: the KRX tables (commission and the dated sell tax), as the live job pays them.
    return BacktestConfig(initial_cash=INITIAL_CASH, max_positions=MAX_POSITIONS, start=START, end=END)


def run_all(data: MarketData) -> list[GuideRun]:
    config = backtest_config()
    return [GuideRun(cls, run_backtest(cls(), data, config)) for cls in all_strategies().values()]


# ------------------------------------------------------------------------------------------ formatting


def _pct(value: float | None, signed: bool = True) -> str:
    if value is None:
        return "—"
    return f"{value * 100:+.2f}%" if signed else f"{value * 100:.2f}%"


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _bound(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _rate(rate: Decimal) -> str:
    return f"{(rate * 100).normalize():f}%"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _anchor(strategy: type[Strategy]) -> str:
    # Same slug as the page's Markdown `toc` extension and as GitHub's (for these headings).
    return slugify_unicode(_heading(strategy), "-")


def _heading(strategy: type[Strategy]) -> str:
    return f"{strategy.name} ({strategy.key})"


def parameter_table(strategy: type[Strategy]) -> list[str]:
    lines = ["| 파라미터 | 이름 | 종류 | 기본값 | 최솟값 | 최댓값 | 설명 |", "| --- | --- | --- | ---: | ---: | ---: | --- |"]
    for p in strategy.parameter_specs():
        help_text = p.help
        if p.type == "choice":
            help_text = f"{help_text} (선택: {', '.join(p.choices)})"
        lines.append(
            f"| `{p.name}` | {_cell(p.label)} | {TYPE_NAMES[p.type]} | {_bound(p.default)} | {_bound(p.min)} | "
            f"{_bound(p.max)} | {_cell(help_text)} |"
        )
    return lines


def _metric_rows(m: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        ("총수익률", _pct(m["total_return"]), _pct(b["total_return"])),
        ("연평균 수익률(CAGR)", _pct(m["cagr"]), _pct(b["cagr"])),
        ("샤프 지수", _num(m["sharpe"]), _num(b["sharpe"])),
        ("최대 낙폭(MDD)", _pct(m["max_drawdown"]), _pct(b["max_drawdown"])),
        ("승률", _pct(m["win_rate"], signed=False), "—"),
        ("거래 수", f"{m['n_trades']:,}", "—"),
    ]


def backtest_section(run: GuideRun) -> list[str]:
    m, b = run.result.metrics, run.result.benchmark
    lines = [
        f"기본 파라미터, {m['start']} ~ {m['end']}, 위 [백테스트 조건](#백테스트-조건)의 데모 시장 {SYMBOLS}개 종목·비용.",
        "",
        "| 지표 | 전략 | 균등가중 매수 후 보유 |",
        "| --- | ---: | ---: |",
    ]
    lines += [f"| {name} | {value} | {bench} |" for name, value, bench in _metric_rows(m, b)]
    reasons = m.get("reasons") or {}
    if reasons:
        parts = [f"{REASON_NAMES.get(k, k)} {v:,}" for k, v in reasons.items()]
        lines += ["", f"청산 사유: {', '.join(parts)}. 수수료 {m['fees']:,}원, 매도세 {m['tax']:,}원."]
    return lines


def tax_lines() -> list[str]:
    """The sell-tax rates (transaction tax + 농어촌특별세) in force during the period, per market."""
    lines = []
    for market in ("KOSPI", "KOSDAQ"):
        rows = sorted((r for r in SELL_TAX_SCHEDULE if r.market.value == market), key=lambda r: r.effective_from)
        shown = []
        for i, row in enumerate(rows):
            until = rows[i + 1].effective_from if i + 1 < len(rows) else None
            if row.effective_from > END or (until is not None and until <= START):
                continue
            since = max(row.effective_from, START)
            shown.append(f"{since.isoformat()}부터 {_rate(row.total)}")
        lines.append(f"  - {market}: {', '.join(shown)}")
    return lines


def render(runs: list[GuideRun], universe: list[dict]) -> str:
    kospi = sum(1 for s in universe if s["market"] == "KOSPI")
    names = ", ".join(f"{s['name']}({s['code']})" for s in sorted(universe, key=lambda s: s["code"]))
    out: list[str] = [
        "# 전략 가이드",
        "",
        "> 이 문서는 `manage.py strategy_guide`가 만듭니다. 직접 고치지 마세요: 해설은 "
        "`strategies/management/commands/strategy_guide.py`의 `GUIDE_TEXT`, 파라미터는 각 전략의 선언"
        "(`strategies/library/`)에서 오고, 수치는 명령이 데모 시장에서 백테스트해 계산합니다. "
        "`manage.py strategy_guide --check`는 파일이 최신이 아니면 1로 끝납니다.",
        "",
        "각 전략의 아이디어, 정확한 규칙(매수·매도 신호와 순위 점수), 파라미터와 허용 범위, 잘 맞는 때와 "
        "안 맞는 때, 그리고 데모 시장에서의 백테스트 결과를 정리합니다.",
        "",
        "**주의:** 수치는 합성 데모 시장의 결과이며 실제 시장의 성과를 예측하지 않습니다. 데모 시장은 평균회귀 "
        "전략이 거래할 거리가 있도록(되돌아오는 과잉 반응, 박스권 구간) 만들어져 있고 종목의 추세가 이어지는 "
        "성질(모멘텀)은 넣지 않았으므로, 전략 사이의 순위는 이 시장의 성질에 크게 좌우됩니다.",
        "",
        "## 목차",
        "",
        "- [백테스트 조건](#백테스트-조건)",
        "- [한눈에 보기](#한눈에-보기)",
        "- [주간 매매 규칙](#주간-매매-규칙)",
    ]
    out += [f"- [{_heading(r.strategy)}](#{_anchor(r.strategy)})" for r in runs]
    out += [
        "",
        "## 백테스트 조건",
        "",
        f"- 시장: 데모 시장(`market.demo`의 합성 시세, 시드 {SEED}), {SYMBOLS}개 종목(KOSPI {kospi}개, "
        f"KOSDAQ {SYMBOLS - kospi}개). 데이터베이스를 쓰지 않고 메모리에서 만듭니다.",
        f"- 기간: {START.isoformat()} ~ {END.isoformat()}에 매매합니다. 지표는 {DEMO_EPOCH.isoformat()}부터의 "
        "일봉으로 미리 계산해 두므로 긴 조회 기간의 전략도 첫 주부터 신호가 있습니다.",
        f"- 자금: 초기 자금 {INITIAL_CASH:,}원, 최대 보유 {MAX_POSITIONS}종목, 주간 매수 한도 없음(가용 현금을 "
        "후보 수로 똑같이 나눔), 슬리피지 0틱.",
        f"- 비용: 매수·매도 수수료 각각 {_rate(DEFAULT_COMMISSION_RATE)}(원 미만 버림), 매도 시 증권거래세와 "
        "농어촌특별세(결제일 기준 시장별 세율, 원 미만 버림):",
        *tax_lines(),
        "- 파라미터: 각 전략의 기본값.",
        "- 벤치마크: 같은 종목을 첫 거래 주 진입일 시가에 똑같은 금액씩 사서 끝까지 보유(비용 없음).",
        "",
        f"종목: {names}.",
        "",
        "## 한눈에 보기",
        "",
        "| 전략 | 총수익률 | CAGR | 샤프 | 최대 낙폭 | 승률 | 거래 수 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in runs:
        m = r.result.metrics
        out.append(
            f"| [{r.strategy.name}](#{_anchor(r.strategy)}) | {_pct(m['total_return'])} | {_pct(m['cagr'])} | "
            f"{_num(m['sharpe'])} | {_pct(m['max_drawdown'])} | {_pct(m['win_rate'], signed=False)} | "
            f"{m['n_trades']:,} |"
        )
    if runs:
        b = runs[0].result.benchmark
        out.append(
            f"| 균등가중 매수 후 보유 | {_pct(b['total_return'])} | {_pct(b['cagr'])} | {_num(b['sharpe'])} | "
            f"{_pct(b['max_drawdown'])} | — | — |"
        )
    out += [
        "",
        "## 주간 매매 규칙",
        "",
        "모든 전략은 같은 주간 규칙으로 거래합니다(백테스트와 실제 주간 작업이 같습니다; "
        "`strategies/backtest/engine.py`).",
        "",
        "- 한 주 = KRX 거래일의 달력 주. 진입일은 그 주의 첫 거래일, 청산일은 마지막 거래일입니다(월요일이 "
        "휴장이면 화요일에 진입).",
        "- 매수 후보: 진입일 **전 거래일 종가**의 신호가 +1이고, 진입일에 시세가 있으며, 아직 보유하지 않은 종목. "
        "전략의 순위 점수가 높은 순(동률은 종목코드 순)으로 최대 보유 종목 수에서 남은 자리만큼 고릅니다.",
        "- 가용 현금(주간 매수 한도가 있으면 그 한도까지)을 고른 종목 수로 똑같이 나눠 진입일 **시가**에 삽니다"
        "(수수료 포함 금액이 배분액을 넘지 않는 최대 주수).",
        "- 진입일부터 청산일까지 매일 종가에서: 진입가 대비 수익률 ≤ `stop_loss`이면 손절, ≥ `take_profit`이면 "
        "익절, 그날 신호가 −1이면 매도 신호로 그 종가에 팝니다. 청산일 종가에 남은 종목은 모두 팝니다(주말 청산).",
        "- 거래정지 등으로 시세가 없는 날에는 팔 수 없어, 다음 시세가 있는 날 종가에 팝니다.",
        "- `stop_loss`와 `take_profit`은 모든 전략에 있는 파라미터입니다(각 전략의 파라미터 표에 포함).",
        "",
    ]
    for r in runs:
        cls = r.strategy
        text = GUIDE_TEXT.get(cls.key)
        features = []
        if cls.needs_ohlc:
            features.append("시가·고가·저가가 필요합니다")
        if cls.cross_sectional:
            features.append("종목 간 비교(횡단면) 전략입니다")
        warmup = cls().warmup
        if warmup:
            features.append(f"기본 파라미터로 첫 신호까지 종목당 {warmup}거래일의 일봉이 필요합니다")
        out += [f"## {_heading(cls)}", "", cls.description, ""]
        if text is None:
            out += [MISSING_TEXT, ""]
        else:
            out += ["### 아이디어", "", text["idea"], "", "### 규칙", "", text["rule"], ""]
        if features:
            out += [f"{'; '.join(features)}.", ""]
        out += ["### 파라미터", "", *parameter_table(cls), ""]
        if text is not None:
            out += ["### 잘 맞는 때", "", text["works"], "", "### 안 맞는 때", "", text["fails"], ""]
        out += ["### 데모 시장 백테스트", "", *backtest_section(r), ""]
    return "\n".join(out).rstrip("\n") + "\n"


def generate() -> str:
    """The guide's Markdown (deterministic: fixed demo market, period and costs)."""
    data, universe = build_demo_market()
    return render(run_all(data), universe)


class Command(BaseCommand):
    help = "Write the Korean strategy guide (docs/strategies_kr.md) with backtests on the in-memory demo market."

    def add_arguments(self, parser):
        parser.add_argument("--output", help="the Markdown file (default: docs/strategies_kr.md)")
        parser.add_argument("--check", action="store_true",
                            help="write nothing; exit 1 when the file differs from what would be generated")

    def handle(self, *args, output: str | None, check: bool, **options):
        path = Path(output) if output else guide_path()
        text = generate()
        if check:
            current = path.read_text(encoding="utf-8") if path.exists() else None
            if current != text:
                raise CommandError(f"{path} is out of date: run manage.py strategy_guide", returncode=1)
            self.stdout.write(f"{path} is up to date")
            return
        if not path.parent.is_dir():
            raise CommandError(f"no such directory: {path.parent}")
        path.write_text(text, encoding="utf-8")
        self.stdout.write(f"wrote {path} ({len(all_strategies())} strategies)")

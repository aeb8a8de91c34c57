"""manage.py walk_forward: choose the grid's parameters on each in-sample window, trade them on the next
out-of-sample window, and print the windows, the chosen parameters, the in-/out-of-sample gap and
the stitched out-of-sample summary (or JSON)."""

from __future__ import annotations

import json
import unicodedata

from django.core.management.base import BaseCommand, CommandError

from strategies.library.base import ParameterError
from strategies.management.commands._run_options import add_run_arguments, owner_option, params_option, run_settings
from strategies.models import WalkForwardObjective
from strategies.selectors import format_metric
from strategies.services import BacktestInputError
from strategies.walk_forward import create_walk_forward, execute_walk_forward

# Commands run without a language: the labels are written in Korean here.
OBJECTIVE_LABELS = {"sharpe": "샤프 지수", "total_return": "총수익률", "cagr": "연평균 수익률(CAGR)",
                    "calmar": "수익률/최대 낙폭(칼마)"}
OBJECTIVE_FORMAT = {"sharpe": "number", "calmar": "number", "total_return": "signed_percent", "cagr": "signed_percent"}


def _grid(items: list[str]) -> dict[str, list[str]]:
    grid: dict[str, list[str]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        parts = [value.strip() for value in values.split(",") if value.strip()]
        if not sep or not name.strip() or not parts:
            raise CommandError(f"--grid takes name=value,value,..., got {item!r}")
        grid.setdefault(name.strip(), []).extend(parts)
    if not grid:
        raise CommandError("give at least one --grid name=value,value,...")
    return grid


class Command(BaseCommand):
    help = ("Walk-forward analysis: the grid's best parameters on each in-sample window trade the next "
            "out-of-sample window; prints the windows, the chosen parameters, the gap and the summary.")

    def add_arguments(self, parser):
        parser.add_argument("--strategy", default="mean_reversion")
        parser.add_argument("--grid", action="append", default=[],
                            help="name=value,value,... (repeatable), e.g. --grid window=10,20,30")
        add_run_arguments(parser, param_help="name=value for a parameter outside the grid (repeatable)")
        parser.add_argument("--in-sample-weeks", type=int, default=104)
        parser.add_argument("--out-of-sample-weeks", type=int, default=26)
        parser.add_argument("--anchored", action="store_true",
                            help="every in-sample window starts at the first week (default: rolling)")
        parser.add_argument("--objective", default=WalkForwardObjective.SHARPE, choices=WalkForwardObjective.values)
        parser.add_argument("--json", action="store_true", help="print the stored result as one JSON object")

    def handle(self, *args, **o):
        owner = owner_option(o["user"])
        try:
            run = create_walk_forward(
                owner, strategy_key=o["strategy"], grid=_grid(o["grid"]), base_params=params_option(o["param"]),
                in_sample_weeks=o["in_sample_weeks"], out_of_sample_weeks=o["out_of_sample_weeks"],
                anchored=o["anchored"], objective=o["objective"], **run_settings(o),
            )
            execute_walk_forward(run)
        except (ParameterError, BacktestInputError, ValueError) as error:
            raise CommandError(str(error)) from None
        if o["json"]:
            self.stdout.write(json.dumps({"run": run.pk, **run.result}, ensure_ascii=False))
            return
        self._print(run)

    def _print(self, run) -> None:
        result, summary = run.result, run.result["summary"]
        kind = OBJECTIVE_FORMAT[run.objective]
        objective = OBJECTIVE_LABELS[run.objective]
        write = self.stdout.write
        write(f"워크포워드 #{run.pk}: {run.strategy_key}, {run.settings['start']} ~ {run.settings['end']}, "
              f"종목 {len(run.settings['codes'])}개, 조합 {result['sets']}개")
        write(f"  학습 {run.in_sample_weeks}주 → 검증 {run.out_of_sample_weeks}주, "
              f"{'누적(anchored)' if run.anchored else '이동(rolling)'}, 목표 지표: {objective}")
        write("")
        header = ("#", "학습 기간", "검증 기간", "선택한 파라미터", "학습 지표", "검증 지표", "검증 수익률")
        rows = [header]
        for window in result["windows"]:
            rows.append((
                str(window["index"] + 1),
                f"{window['in_sample_start']}~{window['in_sample_end']}",
                f"{window['out_of_sample_start']}~{window['out_of_sample_end']}",
                " ".join(f"{name}={value}" for name, value in window["params"].items()),
                format_metric(window["in_sample_objective"], kind),
                format_metric(window["out_of_sample_objective"], kind),
                format_metric(window["out_of_sample_return"], "signed_percent"),
            ))
        widths = [max(_width(row[i]) for row in rows) for i in range(len(header))]
        for row in rows:
            write("  " + "  ".join(_pad(cell, width) for cell, width in zip(row, widths, strict=True)).rstrip())
        write("")
        write(f"  학습 평균 {objective}: {format_metric(summary['mean_in_sample_objective'], kind)}, "
              f"검증 평균: {format_metric(summary['mean_out_of_sample_objective'], kind)}, "
              f"차이(gap): {format_metric(summary['gap'], kind)}")
        write(f"  워크포워드 효율(검증 CAGR / 학습 CAGR): {format_metric(summary['efficiency'], 'percent')}, "
              f"선택 변경: {summary['choice_changes']}회 / {summary['windows']}구간")
        write(f"  검증 구간 이어붙인 결과 ({summary['start']} ~ {summary['end']}): "
              f"총수익률 {format_metric(summary['total_return'], 'signed_percent')}, "
              f"CAGR {format_metric(summary['cagr'], 'signed_percent')}, "
              f"샤프 {format_metric(summary['sharpe'], 'number')}, "
              f"최대 낙폭 {format_metric(summary['max_drawdown'], 'percent')}")


def _width(text: str) -> int:
    """Display width: Hangul and other wide characters take two columns."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))

from celery import group, shared_task

from .models import BacktestRun, BacktestSweep


@shared_task(name="strategies.run_backtest")
def run_backtest_task(run_id: int) -> str:
    from .services import execute_backtest_run

    run = BacktestRun.objects.get(pk=run_id)
    try:
        execute_backtest_run(run)
    except Exception:  # stored on the run with its message; the task itself has nothing more to do
        pass
    return BacktestRun.objects.values_list("status", flat=True).get(pk=run_id)


def start_backtest(run: BacktestRun) -> None:
    """Hand a pending run to the workers (inline when CELERY_TASK_ALWAYS_EAGER)."""
    run_backtest_task.delay(run.pk)


def start_sweep(sweep: BacktestSweep) -> None:
    """Fan the sweep's runs out as a Celery group: many workers run them side by side."""
    group(run_backtest_task.s(run_id) for run_id in sweep.runs.values_list("pk", flat=True)).apply_async()

from celery import shared_task

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


@shared_task(name="strategies.run_sweep")
def run_sweep_task(sweep_id: int) -> str:
    from .sweeps import execute_sweep

    try:
        execute_sweep(BacktestSweep.objects.get(pk=sweep_id))
    except Exception:  # stored on the sweep with its message
        pass
    return BacktestSweep.objects.values_list("status", flat=True).get(pk=sweep_id)


def start_sweep(sweep: BacktestSweep) -> None:
    """Hand a pending sweep to a worker: one task runs every set in one shared pass on all its cores
    (strategies.research.sweep), faster than one backtest task per set."""
    run_sweep_task.delay(sweep.pk)


@shared_task(name="strategies.run_walk_forward")
def run_walk_forward_task(run_id: int) -> str:
    from .models import WalkForwardRun
    from .walk_forward import execute_walk_forward

    try:
        execute_walk_forward(WalkForwardRun.objects.get(pk=run_id))
    except Exception:  # stored on the run with its message
        pass
    return WalkForwardRun.objects.values_list("status", flat=True).get(pk=run_id)


def start_walk_forward(run) -> None:
    """Hand a pending walk-forward run to the workers (inline when CELERY_TASK_ALWAYS_EAGER)."""
    run_walk_forward_task.delay(run.pk)

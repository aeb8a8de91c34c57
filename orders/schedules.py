from trading_site.schedules import Schedule

SCHEDULES = [
    Schedule(
        name="orders: weekly entry",
        task="orders.weekly_entry",
        minute="5", hour="9", day_of_week="1-5",
        description="Mon–Fri 09:05 KST; buys only on the week's first KRX trading day. Missed: runs the same "
                    "day until 13:00, otherwise that week's entry is skipped with a reason.",
    ),
    Schedule(
        name="orders: exit checks",
        task="orders.exit_checks",
        minute="15", hour="15", day_of_week="1-5",
        description="Mon–Fri 15:15 KST: stop-loss/take-profit/sell signal; the week's last trading day sells "
                    "everything. A missed check is caught up at the next one (older positions are sold).",
    ),
    Schedule(
        name="orders: reconcile",
        task="orders.reconcile",
        minute="*/5", hour="9-16", day_of_week="1-5",
        description="Every 5 minutes 09:00–16:55 KST: broker order/fill status, unknown orders, and the resume "
                    "sweep for interrupted runs. Never sends a new order by itself except an interrupted run's "
                    "intent that the broker shows no trace of.",
    ),
    Schedule(
        name="orders: live vs backtest",
        task="orders.compare_live_backtest",
        minute="30", hour="17", day_of_week="1-5",
        description="Mon–Fri 17:30 KST, acts on the week's last KRX trading day (after the exit and the 16:05 bar "
                    "refresh, before the Friday 18:00 reports): each active strategy's live orders and fills of "
                    "the week against its backtest over the same bars; an alert when they drift.",
    ),
]

from trading_site.schedules import Schedule

SCHEDULES = [
    Schedule(
        name="reports: weekly reports",
        task="reports.weekly_reports",
        minute="0", hour="18", day_of_week="5",
        description="Friday 18:00 KST, after the week's last trading day: one report per user with activity "
                    "(the model writes it when OPENAI_API_KEY is set, else the plain template). Idempotent: "
                    "an existing report is kept.",
    ),
    Schedule(
        name="reports: weekly reports catch-up",
        task="reports.weekly_reports",
        minute="0", hour="7", day_of_week="1",
        description="Monday 07:00 KST: the previous week's missing reports (e.g. the worker was down on Friday); "
                    "existing reports are kept.",
    ),
]

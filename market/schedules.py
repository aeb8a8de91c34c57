from trading_site.schedules import Schedule

SCHEDULES = [
    Schedule(
        name="market: refresh daily bars after the close",
        task="market.refresh_recent_bars",
        minute="5", hour="16", day_of_week="1-5",
        description="Mon–Fri 16:05 KST; the task skips KRX holidays.",
    ),
    Schedule(
        name="market: weekly analysis",
        task="market.analyze_last_week",
        minute="0", hour="6", day_of_week="6",
        description="Saturday 06:00 KST: statistics and outliers of the week that just ended.",
    ),
]

"""Every daily bar and instrument records where its prices come from: demo (synthetic), csv or kis.

Rows stored before this migration did not record it. The demo market is deterministic (every run
simulates from the same epoch with the same seed), so a stored bar is recognised as demo when it
equals, field for field, the bar the demo generator makes for its code and date; a real bar equals a
synthetic one in open, high, low, close, volume and traded value practically never. Everything else
is real and becomes ``csv`` (the imports did not record whether a bar came from a file or from KIS;
both are real prices). An instrument with any demo bar becomes ``demo``; the others ``csv``. A
database whose demo market was built with a non-default ``demo_data --seed`` has its demo bars
marked ``csv``. On an empty database (every fresh install and test run) this does nothing.
"""

from django.db import migrations, models
from django.db.models import Max

SYMBOLS_PER_CHUNK = 200
DATES_PER_UPDATE = 500


def mark_demo_data(apps, schema_editor):
    DailyBar = apps.get_model("market", "DailyBar")
    Instrument = apps.get_model("market", "Instrument")
    db = schema_editor.connection.alias
    if not DailyBar.objects.using(db).exists():
        return
    # The generator of this release; imported only when there are bars to recognise.
    from market.demo import DEFAULT_SEED, DEMO_EPOCH, MAX_SYMBOLS, generate_bars, generate_universe
    from market.krx import trading_days

    universe = {symbol["code"]: symbol for symbol in generate_universe(MAX_SYMBOLS, DEFAULT_SEED)}
    instruments = list(Instrument.objects.using(db).filter(code__in=list(universe)).values_list("id", "code"))
    if not instruments:
        return
    last = DailyBar.objects.using(db).filter(instrument_id__in=[pk for pk, _ in instruments]).aggregate(
        last=Max("date"))["last"]
    if last is None or last < DEMO_EPOCH:
        return
    days = trading_days(DEMO_EPOCH, last)
    for offset in range(0, len(instruments), SYMBOLS_PER_CHUNK):
        chunk = instruments[offset : offset + SYMBOLS_PER_CHUNK]
        generated = generate_bars([universe[code] for _, code in chunk], days, DEFAULT_SEED)
        for pk, code in chunk:
            synthetic = {row[0]: tuple(row[1:]) for row in generated[code].tolist()}
            stored = DailyBar.objects.using(db).filter(instrument_id=pk).values_list(
                "date", "open", "high", "low", "close", "volume", "traded_value")
            demo, real = [], []
            for day, *values in stored:
                (demo if synthetic.get(day) == tuple(values) else real).append(day)
            if not demo:
                continue
            bars = DailyBar.objects.using(db).filter(instrument_id=pk)
            if real:
                for start in range(0, len(demo), DATES_PER_UPDATE):
                    bars.filter(date__in=demo[start : start + DATES_PER_UPDATE]).update(source="demo")
            else:
                bars.update(source="demo")
            Instrument.objects.using(db).filter(pk=pk).update(source="demo")


class Migration(migrations.Migration):

    dependencies = [
        ("market", "0002_weekly_analysis"),
    ]

    operations = [
        migrations.AddField(
            model_name="dailybar",
            name="source",
            field=models.CharField(
                choices=[("demo", "demo (synthetic prices)"), ("csv", "CSV import"), ("kis", "KIS")],
                default="csv", max_length=4, verbose_name="source",
            ),
        ),
        migrations.AddField(
            model_name="instrument",
            name="source",
            field=models.CharField(
                choices=[("demo", "demo (synthetic prices)"), ("csv", "CSV import"), ("kis", "KIS")],
                default="csv", max_length=4, verbose_name="data source",
            ),
        ),
        migrations.RunPython(mark_demo_data, migrations.RunPython.noop, elidable=True),
    ]

import factory

from accounts.models import BrokerMode
from accounts.tests.factories import BrokerAccountFactory
from market.models import DailyBar, Instrument


class InstrumentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Instrument
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"{100000 + n:06d}")
    name = factory.Sequence(lambda n: f"테스트종목{n}")
    market = "KOSPI"


class DailyBarFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DailyBar

    instrument = factory.SubFactory(InstrumentFactory)
    open = 70_000
    high = factory.LazyAttribute(lambda o: max(o.open, o.close) + 1_000)
    low = factory.LazyAttribute(lambda o: min(o.open, o.close) - 1_000)
    close = 71_000
    volume = 1_000_000


class PaperBrokerAccountFactory(BrokerAccountFactory):
    mode = BrokerMode.PAPER
    app_key = ""
    app_secret = ""
    account_number = ""

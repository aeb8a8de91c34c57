import factory
from django.contrib.auth import get_user_model

from accounts.models import BrokerAccount, BrokerMode
from accounts.services import create_broker_account


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"trader{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "correct-horse-battery-9")

    @factory.post_generation
    def _save_password(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class BrokerAccountFactory(factory.django.DjangoModelFactory):
    """KIS accounts go through the service, as the site creates them."""

    class Meta:
        model = BrokerAccount

    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"KIS 계좌 {n}")
    mode = BrokerMode.SIMULATED
    app_key = factory.Sequence(lambda n: f"PSkeyAPPKEY{n:06d}abcdef")
    app_secret = factory.Sequence(lambda n: f"secret-{n:04d}-" + "x" * 60)
    account_number = factory.Sequence(lambda n: f"{50000000 + n:08d}")
    product_code = "01"

    @classmethod
    def _create(cls, model_class, owner, **kwargs):
        return create_broker_account(owner, **kwargs)

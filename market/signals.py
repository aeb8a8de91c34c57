from django.db.models.signals import pre_delete
from django.dispatch import receiver

from accounts.models import BrokerAccount

from .services import revoke_broker_token


@receiver(pre_delete, sender=BrokerAccount, dispatch_uid="market.revoke_token_on_account_delete")
def revoke_token_on_account_delete(sender, instance: BrokerAccount, **kwargs):
    revoke_broker_token(instance)

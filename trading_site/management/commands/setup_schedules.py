from django.core.management.base import BaseCommand

from trading_site.schedules import install_schedules


class Command(BaseCommand):
    help = "Create the site's periodic tasks (django-celery-beat) that do not exist yet; edited ones are kept."

    def handle(self, *args, **options):
        for schedule, created in install_schedules():
            when = f"{schedule.minute} {schedule.hour} * * {schedule.day_of_week} (Asia/Seoul)"
            self.stdout.write(f"{'created' if created else 'kept   '}  {schedule.name}: {schedule.task} at {when}")

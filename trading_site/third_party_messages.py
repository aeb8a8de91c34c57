"""Words of third-party apps that their own catalogues do not translate into Korean, declared here so
that `makemessages` puts them in locale/ko (LOCALE_PATHS is searched first, so ours win). Never
imported: only the message extraction reads this file."""

from django.utils.translation import gettext_noop

THIRD_PARTY_MESSAGES = [
    # django-celery-beat: the admin's section and model names.
    gettext_noop("Periodic Tasks"),
    gettext_noop("clocked"),
    gettext_noop("crontab"),
    gettext_noop("crontabs"),
    gettext_noop("interval"),
    gettext_noop("intervals"),
    gettext_noop("periodic task"),
    gettext_noop("periodic tasks"),
    gettext_noop("solar event"),
    gettext_noop("solar events"),
    gettext_noop("periodic task track"),
    gettext_noop("periodic task tracks"),
    # djangorestframework-simplejwt's token blacklist.
    gettext_noop("Token Blacklist"),
    gettext_noop("Outstanding Token"),
    gettext_noop("Outstanding Tokens"),
    gettext_noop("Blacklisted Token"),
    gettext_noop("Blacklisted Tokens"),
]

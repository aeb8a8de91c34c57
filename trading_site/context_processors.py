from django.conf import settings


def site(request):
    """Values every page needs: the version and which broker the site trades through."""
    return {"SITE_VERSION": settings.VERSION, "BROKER_BACKEND": settings.BROKER_BACKEND}

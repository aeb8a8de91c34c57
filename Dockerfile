# The deployment image: gunicorn (uvicorn workers) for the web; the same image runs the Celery worker and beat
# and the real-time streamer.
FROM node:20-bookworm-slim AS static-vendor
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NUMBA_CACHE_DIR=/tmp/numba-cache
RUN apt-get update \
 && apt-get install -y --no-install-recommends default-libmysqlclient-dev pkg-config build-essential gettext \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt requirements-mysql.txt ./
RUN pip install --no-cache-dir -r requirements-mysql.txt
COPY . .
COPY --from=static-vendor /build/node_modules ./node_modules
# collectstatic needs settings that import; these throwaway values never reach a running container.
RUN DEBUG=False SECRET_KEY=build-only FIELD_ENCRYPTION_KEYS=$(python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())") \
    python manage.py collectstatic --noinput \
 && useradd --create-home --uid 10001 trader && mkdir -p /app/var && chown -R trader /app/var /app/staticfiles
USER trader
EXPOSE 8000
# The ASGI app under gunicorn's uvicorn workers, as scripts/serve runs it (its comments explain the flags).
CMD ["gunicorn", "trading_site.asgi:application", "-k", "trading_site.asgi.UvicornWorker", "--bind", "0.0.0.0:8000", "--workers", "3", "--timeout", "30", "--graceful-timeout", "25", "--preload", "--access-logfile", "-"]

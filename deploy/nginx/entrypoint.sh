#!/usr/bin/env bash
# Start of the HTTPS front: a certificate (yours, or a self-signed one made on the first start), then
# nginx.conf rendered from nginx.conf.template, then the command (nginx). scripts/front_check runs it too,
# with the paths and ports below pointed at a scratch folder.
#
# SERVER_NAME     the site's host name(s), space separated (localhost)
# APP_UPSTREAM    host:port of gunicorn (127.0.0.1:8000; web:8000 in docker-compose)
# HTTP_PORT, HTTPS_PORT   ports nginx listens on (80, 443); LISTEN_ADDRESS limits them to one address
# PUBLIC_HTTPS_PORT       the HTTPS port browsers use, for the HTTP redirect (HTTPS_PORT)
# STATIC_ROOT     the collected static files (/srv/static)
# TLS_CERT, TLS_KEY       certificate chain and key, PEM (/etc/nginx/tls/fullchain.pem, privkey.pem);
#                 when neither exists, a self-signed pair is generated there (browsers warn about it)
# NGINX_CONF      where the rendered configuration goes (/etc/nginx/nginx.conf)
# NGINX_RUNTIME_DIR  pid file and temporary files (/run/nginx); NGINX_USER (www-data)
# NGINX_ACCESS_LOG, NGINX_ERROR_LOG  (/dev/stdout, stderr)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

export SERVER_NAME=${SERVER_NAME:-localhost}
export APP_UPSTREAM=${APP_UPSTREAM:-127.0.0.1:8000}
HTTP_PORT=${HTTP_PORT:-80}
HTTPS_PORT=${HTTPS_PORT:-443}
PUBLIC_HTTPS_PORT=${PUBLIC_HTTPS_PORT:-$HTTPS_PORT}
export HTTP_LISTEN="${LISTEN_ADDRESS:+$LISTEN_ADDRESS:}$HTTP_PORT"
export HTTPS_LISTEN="${LISTEN_ADDRESS:+$LISTEN_ADDRESS:}$HTTPS_PORT"
export HTTPS_PORT_SUFFIX=""
[ "$PUBLIC_HTTPS_PORT" = 443 ] || HTTPS_PORT_SUFFIX=":$PUBLIC_HTTPS_PORT"
export STATIC_ROOT=${STATIC_ROOT:-/srv/static}
STATIC_ROOT=${STATIC_ROOT%/}
export TLS_CERT=${TLS_CERT:-/etc/nginx/tls/fullchain.pem}
export TLS_KEY=${TLS_KEY:-/etc/nginx/tls/privkey.pem}
NGINX_CONF=${NGINX_CONF:-/etc/nginx/nginx.conf}
export NGINX_RUNTIME_DIR=${NGINX_RUNTIME_DIR:-/run/nginx}
export NGINX_USER=${NGINX_USER:-www-data}
export NGINX_ACCESS_LOG=${NGINX_ACCESS_LOG:-/dev/stdout}
export NGINX_ERROR_LOG=${NGINX_ERROR_LOG:-stderr}

fail() { echo "front: $*" >&2; exit 1; }

if [ ! -e "$TLS_CERT" ] && [ ! -e "$TLS_KEY" ]; then
  # No certificate yet: a self-signed one for local use, kept (in docker-compose, in the "tls" volume) so
  # the browser's exception for it lasts across restarts.
  command -v openssl >/dev/null || fail "no certificate at $TLS_CERT and no openssl to make one"
  names=()
  declare -A seen=()
  for name in $SERVER_NAME localhost 127.0.0.1; do
    [ -z "${seen[$name]:-}" ] || continue
    seen[$name]=1
    if [[ $name =~ ^[0-9.]+$ || $name == *:* ]]; then names+=("IP:$name"); else names+=("DNS:$name"); fi
  done
  san=$(IFS=,; echo "${names[*]}")
  echo "front: no certificate at $TLS_CERT; generating a self-signed one for ${SERVER_NAME%% *}" >&2
  mkdir -p "$(dirname "$TLS_CERT")" "$(dirname "$TLS_KEY")"
  (umask 077 && openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 825 -subj "/CN=${SERVER_NAME%% *}" \
     -addext "subjectAltName=$san" -keyout "$TLS_KEY" -out "$TLS_CERT" 2>/dev/null) \
    || fail "could not write a self-signed certificate to $TLS_CERT (a read-only folder? put your own there)"
  chmod 644 "$TLS_CERT"
elif [ ! -r "$TLS_CERT" ] || [ ! -r "$TLS_KEY" ]; then
  fail "TLS_CERT ($TLS_CERT) and TLS_KEY ($TLS_KEY) must both exist and be readable"
fi

mkdir -p "$NGINX_RUNTIME_DIR" "$(dirname "$NGINX_CONF")"
# Only these names are replaced: $host, $request_uri and the like are nginx's.
envsubst '${SERVER_NAME} ${APP_UPSTREAM} ${HTTP_LISTEN} ${HTTPS_LISTEN} ${HTTPS_PORT_SUFFIX} ${STATIC_ROOT}
          ${TLS_CERT} ${TLS_KEY} ${NGINX_RUNTIME_DIR} ${NGINX_USER} ${NGINX_ACCESS_LOG} ${NGINX_ERROR_LOG}' \
  < "$here/nginx.conf.template" > "$NGINX_CONF"

exec "$@"

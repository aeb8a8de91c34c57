# Shared steps of scripts/run and scripts/test. Sourced, not run.
# Each step is idempotent and cheap when nothing changed, so both commands work on a fresh clone.

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

uses_mysql() {  # DATABASE_URL from the environment or .env names MySQL/MariaDB
  case "${DATABASE_URL:-$(sed -n 's/^DATABASE_URL=//p' .env 2>/dev/null | tail -n 1)}" in
    mysql*) return 0 ;;
    *) return 1 ;;
  esac
}

ensure_python_env() {  # $1: the requirements file to install (+ the MySQL driver when DATABASE_URL asks for it)
  local requirements=$1 stamp digest
  stamp="$VENV/.installed-$(basename "$requirements")"
  if [ ! -x "$VENV/bin/python" ]; then
    say "Creating the virtual environment in $VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
  fi
  digest=$(cat requirements*.txt | sha256sum | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
    say "Installing $requirements (a first install takes about a minute and a half)"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$requirements"
    echo "$digest" > "$stamp"
  fi
  if uses_mysql && ! "$VENV/bin/python" -c 'import MySQLdb' 2>/dev/null; then
    say "Installing the MySQL driver (requirements-mysql.txt; needs default-libmysqlclient-dev, pkg-config)"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r requirements-mysql.txt
  fi
}

ensure_static_vendor() {  # HTMX and Chart.js from npm, served as the project's own static files
  local stamp=node_modules/.installed-lock
  if [ ! -f "$stamp" ] || [ "$(sha256sum package-lock.json | cut -d' ' -f1)" != "$(cat "$stamp")" ]; then
    command -v npm >/dev/null || { echo "npm is needed to install HTMX and Chart.js (apt-get install npm)" >&2; exit 1; }
    say "Installing front-end libraries (npm ci)"
    npm ci --no-audit --no-fund --loglevel=error
    sha256sum package-lock.json | cut -d' ' -f1 > "$stamp"
  fi
}

ensure_env_file() {  # a local .env with fresh secrets, made once from .env.example
  if [ ! -f .env ]; then
    say "Writing .env for local use (from .env.example, with generated secrets)"
    "$VENV/bin/python" scripts/make_env.py .env.example .env
  fi
}

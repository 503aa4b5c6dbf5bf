#!/usr/bin/env bash
# Tryton 8.0 LTS as a real ERP for erp-writer's Tryton connector (recipe and gotchas:
# ../../shared/erp/tryton/NOTES.md, copied setup in deploy/tryton/). Everything lives
# under .data/tryton (git-ignored): a venv from PyPI, a SQLite database, the server log.
#   tryton.sh install | start | stop | status
# TRYTON_PORT (default 8000) moves the server.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

T="$DATA_DIR/tryton"
V="$T/venv"
PORT="${TRYTON_PORT:-8000}"
CONF="$T/trytond.conf"
SRC="$ROOT/deploy/tryton"

install() {
  mkdir -p "$T"
  if [[ ! -x "$V/bin/trytond" ]]; then
    log "installing trytond 8.0 into $V (PyPI)"
    python3 -m venv "$V"
    "$V/bin/pip" install -q --upgrade pip
    "$V/bin/pip" install -q 'trytond>=8.0,<8.1' 'proteus>=8.0,<8.1' \
      'trytond_party>=8.0,<8.1' 'trytond_company>=8.0,<8.1' 'trytond_currency>=8.0,<8.1' \
      'trytond_product>=8.0,<8.1' 'trytond_stock>=8.0,<8.1' 'trytond_account>=8.0,<8.1' \
      'trytond_account_product>=8.0,<8.1' 'trytond_account_invoice>=8.0,<8.1' \
      'trytond_account_invoice_stock>=8.0,<8.1' 'trytond_sale>=8.0,<8.1'
  fi
  # trytond's SQLite backend needs an absolute database path.
  sed -e "s|^path = .*|path = $T/db|" -e "s|^listen = .*|listen = 127.0.0.1:$PORT|" \
    "$SRC/trytond.conf" >"$CONF"
  if [[ ! -s "$T/db/erp.sqlite" ]]; then
    log "creating the Tryton database (modules, company, chart, products, warehouses)"
    mkdir -p "$T/db"
    touch "$T/db/erp.sqlite"
    TRYTONPASSFILE="$SRC/passfile" "$V/bin/trytond-admin" -c "$CONF" -d erp --all \
      --email admin@example.com >"$T/admin.log" 2>&1 || { tail -20 "$T/admin.log" >&2; die "trytond-admin failed"; }
    TRYTONPASSFILE="$SRC/passfile" "$V/bin/trytond-admin" -c "$CONF" -d erp -u sale \
      --activate-dependencies >>"$T/admin.log" 2>&1 || { tail -20 "$T/admin.log" >&2; die "module activation failed"; }
    TRYTOND_CONFIG="$CONF" "$V/bin/python" "$SRC/setup.py" >"$T/setup.log" 2>&1 \
      || { tail -20 "$T/setup.log" >&2; die "Tryton setup failed"; }
  fi
}

up() { curl -fsS -o /dev/null -X POST "http://127.0.0.1:$PORT/rpc/" -H 'Content-Type: application/json' \
  -d '{"id":0,"method":"common.server.version","params":[]}'; }

start() {
  install
  if pid_alive "$T/trytond.pid"; then return; fi
  "$V/bin/trytond" -c "$CONF" -d erp --pidfile "$T/trytond.pid" >"$T/trytond.log" 2>&1 &
  wait_for "Tryton (http://127.0.0.1:$PORT)" 60 up || { tail -20 "$T/trytond.log" >&2; die "trytond did not start"; }
}

stop() { stop_pid trytond "$T/trytond.pid"; }

status() {
  if pid_alive "$T/trytond.pid"; then echo "tryton: running on http://127.0.0.1:$PORT (db erp, admin/admin), log $T/trytond.log"
  else echo "tryton: stopped"; fi
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) die "usage: tryton.sh install|start|stop|status" ;;
esac

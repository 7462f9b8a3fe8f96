#!/bin/sh
# influx-init (docker-compose.yml): the two InfluxDB tokens the stack uses besides the admin's,
# each written into a volume that only its readers mount:
#   SINK_TOKEN_FILE     write-only on the bucket: the bridge's and workers' InfluxDB sink
#   GRAFANA_TOKEN_FILE  read-only on the bucket: Grafana's datasource
# InfluxDB chooses token values itself, so they are created here (with the admin token in
# INFLUX_TOKEN, INFLUX_HOST, INFLUX_ORG, INFLUX_BUCKET) and handed over as files, owned by
# the reader's uid (SINK_UID, GRAFANA_UID), mode 0400. A file whose token still works is kept,
# so a restart creates nothing new.
set -eu

bucket_id="$(influx bucket list --org "$INFLUX_ORG" --name "$INFLUX_BUCKET" --hide-headers | cut -f1)"
[ -n "$bucket_id" ] || { echo "influx-init: no bucket $INFLUX_BUCKET" >&2; exit 1; }

# still_valid FILE: the token in FILE is an active authorization of this InfluxDB.
still_valid() {
  [ -s "$1" ] || return 1
  influx auth list --org "$INFLUX_ORG" --hide-headers | cut -f3 | grep -qxF "$(cat "$1")"
}

# issue FILE UID DESCRIPTION PERMISSION: create a token with PERMISSION on the bucket.
issue() {
  if still_valid "$1"; then
    echo "influx-init: $3 token kept ($1)"
    return 0
  fi
  token="$(influx auth create --org "$INFLUX_ORG" --description "$3" "$4" "$bucket_id" \
    --hide-headers | cut -f3)"
  [ -n "$token" ] || { echo "influx-init: could not create the $3 token" >&2; exit 1; }
  umask 077
  printf '%s\n' "$token" > "$1.tmp"
  chown "$2" "$1.tmp"
  chmod 0400 "$1.tmp"
  mv "$1.tmp" "$1"
  echo "influx-init: $3 token created ($1)"
}

issue "$SINK_TOKEN_FILE" "$SINK_UID" gyeongbo-sink --write-bucket
issue "$GRAFANA_TOKEN_FILE" "$GRAFANA_UID" gyeongbo-grafana --read-bucket

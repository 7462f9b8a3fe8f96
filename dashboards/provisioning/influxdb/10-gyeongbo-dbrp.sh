#!/bin/sh
# InfluxDB 2.x init script (mount into /docker-entrypoint-initdb.d/ of the influxdb:2 image):
# maps the InfluxQL database/retention policy gyeongbo/autogen onto the bucket the sink writes,
# so Grafana's InfluxQL datasource (dashboards/provisioning/datasources/) can read it.
# Runs once, after the image's setup from DOCKER_INFLUXDB_INIT_{ORG,BUCKET,ADMIN_TOKEN}.
set -eu
org="${DOCKER_INFLUXDB_INIT_ORG:-gyeongbo}"
bucket="${DOCKER_INFLUXDB_INIT_BUCKET:-gyeongbo}"
token="${DOCKER_INFLUXDB_INIT_ADMIN_TOKEN}"
bucket_id="$(influx bucket list --org "$org" --name "$bucket" --token "$token" --hide-headers | cut -f1)"
influx v1 dbrp create --org "$org" --token "$token" \
  --db gyeongbo --rp autogen --bucket-id "$bucket_id" --default

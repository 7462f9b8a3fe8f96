"""The local development stack: the production roles as local processes on loopback ports.

Production runs the images in ``docker-compose.yml``. Here (no Docker engine) ``gyeongbo
stack up`` starts mosquitto, a Kafka-protocol broker (noida-db or Tansu), influxd 1.x with a
v2-write compatibility endpoint, a fake Twilio Messages API and (unless
``stack.postgres`` is off) a PostgreSQL cluster for the subscriber store, under ``.gyeongbo/``.
This package is development and test tooling: nothing in the production path imports it.
"""

"""Grafana dashboards as code, and their provisioning."""

from __future__ import annotations

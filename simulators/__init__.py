"""Simulated gateways and drills, publishing through the same MQTT front door as real ones."""

from __future__ import annotations

"""Structured JSON logs (Powertools Logger), one per service, level from
LOG_LEVEL. Never pass a token, key or secret to a log call."""

from __future__ import annotations

import os

from aws_lambda_powertools.logging import Logger

__all__ = ["Logger", "get_logger"]


def get_logger(service: str) -> Logger:
    return Logger(service=service, level=os.environ.get("LOG_LEVEL", "INFO").upper())

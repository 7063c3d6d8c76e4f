"""One place that knows every secret value this process has read, and scrubs them."""

from __future__ import annotations

import base64
import threading
from collections.abc import Mapping
from typing import Any

MASK = "[REDACTED]"
SENSITIVE_KEYS = frozenset({"authorization", "api_secret", "api_key", "password", "secret", "token"})


class Redactor:
    def __init__(self) -> None:
        self._values: set[str] = set()
        self._longest_first: tuple[str, ...] = ()  # kept sorted: every audit line goes through text()
        self._lock = threading.Lock()

    def register(self, *values: str) -> None:
        with self._lock:
            for v in values:
                if len(v) >= 4:
                    self._values.add(v)
            self._longest_first = tuple(sorted(self._values, key=len, reverse=True))

    def register_basic_auth(self, user: str, password: str) -> None:
        # The Authorization header carries the base64 of both: scrub that form too.
        self.register(user, password, base64.b64encode(f"{user}:{password}".encode()).decode())

    def text(self, s: str) -> str:
        for v in self._longest_first:
            if v in s:
                s = s.replace(v, MASK)
        return s

    def value(self, obj: Any) -> Any:
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, Mapping):
            return {
                k: (MASK if str(k).lower() in SENSITIVE_KEYS else self.value(v))
                for k, v in obj.items()
            }
        if isinstance(obj, list | tuple):
            return [self.value(v) for v in obj]
        return obj


REDACTOR = Redactor()

"""Backends (detectors, embedders, ...) chosen by name, so a notebook picks one with a string and a
test can add a fake one. A registry maps a name to a factory; it holds no model instances."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from .errors import FaceclusterError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            self._factories[name] = factory
            return factory

        return decorator

    def create(self, name: str, **params: object) -> T:
        try:
            factory = self._factories[name]
        except KeyError:
            raise FaceclusterError(f"unknown {self.kind} {name!r}; available: {', '.join(self.names())}") from None
        return factory(**params)

    def names(self) -> list[str]:
        return sorted(self._factories)

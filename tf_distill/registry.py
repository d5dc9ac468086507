"""A tiny name -> object registry used for tasks, losses and students."""

from typing import Callable, Dict, Generic, List, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
  """Maps names to objects; raises on duplicates and lists what exists on a miss."""

  def __init__(self, kind: str):
    self.kind = kind
    self._items: Dict[str, T] = {}

  def register(self, name: str) -> Callable[[T], T]:
    def decorator(obj: T) -> T:
      if name in self._items:
        raise ValueError(f"{self.kind} {name!r} is already registered")
      self._items[name] = obj
      return obj
    return decorator

  def get(self, name: str) -> T:
    if name not in self._items:
      raise LookupError(f"unknown {self.kind} {name!r}; known: {sorted(self._items)}")
    return self._items[name]

  def names(self) -> List[str]:
    return sorted(self._items)

  def __contains__(self, name: str) -> bool:
    return name in self._items

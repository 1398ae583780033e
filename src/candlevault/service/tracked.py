"""The symbols the service keeps complete and current, per venue, persisted in the data dir.

`<data dir>/symbols.json` survives restarts: a symbol added through the admin API is
still tracked after the service comes back. The configured `CANDLEVAULT_SYMBOLS` (and
`serve --symbols`) are added at start; removing one stops its work and keeps its
history (the warm store is never pruned by this).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import msgspec

from candlevault.domain.symbols import Instrument
from candlevault.domain.venues import Venue

FILE_NAME = "symbols.json"


class TrackedSymbols:
    """An ordered set of (venue, symbol), written through to a JSON file."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / FILE_NAME
        self._items: dict[Instrument, None] = {}
        if self.path.is_file():
            doc = msgspec.json.decode(self.path.read_bytes(), type=dict[Venue, list[str]])
            for venue, symbols in doc.items():
                for symbol in symbols:
                    self._items[Instrument(venue, symbol)] = None

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def all(self) -> list[Instrument]:
        """Return every tracked symbol, in the order they were added."""
        return list(self._items)

    def of(self, venue: Venue) -> list[str]:
        """Return the venue's tracked symbols."""
        return [i.symbol for i in self._items if i.venue is venue]

    def add(self, items: Iterable[Instrument]) -> list[Instrument]:
        """Track `items`; return those that were not tracked yet."""
        new = [i for i in items if i not in self._items]
        for item in new:
            self._items[item] = None
        if new:
            self._save()
        return new

    def remove(self, item: Instrument) -> bool:
        """Stop tracking `item`; return whether it was tracked."""
        if item not in self._items:
            return False
        del self._items[item]
        self._save()
        return True

    def _save(self) -> None:
        doc: dict[str, list[str]] = {}
        for item in self._items:
            doc.setdefault(item.venue.value, []).append(item.symbol)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_bytes(msgspec.json.encode(doc))
        temporary.replace(self.path)

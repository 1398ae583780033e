"""Archive files already on disk: verified ones stored exactly, broken ones refused."""

from __future__ import annotations

import io
import zipfile
from datetime import date
from pathlib import Path

from candlevault.bootstrap.folder_import import import_folder
from candlevault.domain.decimals import BINANCE_SPOT
from candlevault.domain.timeframes import M1
from candlevault.domain.venues import Venue
from candlevault.exchanges.binance.archive import ArchiveRef
from candlevault.exchanges.binance.archive_client import BinanceArchiveClient
from candlevault.ingest.writer import Ingestor
from tests.integration.bootstrap.test_archive_import import LISTED_MS, truth
from tests.integration.bootstrap.test_bootstrap import store_at
from tests.integration.exchanges.venues import running_sim

V = Venue.BINANCE


def _ref(period: str, day: date) -> ArchiveRef:
    return ArchiveRef("spot", "BTCUSDT", M1, period, day)  # type: ignore[arg-type]


async def test_a_folder_of_files_is_imported_exactly_and_a_broken_one_refused(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "files"
    folder.mkdir()
    refs = [
        _ref("monthly", date(2023, 12, 1)),
        *(_ref("daily", date(2024, 1, d)) for d in (1, 2, 3)),
    ]
    async with running_sim(listed=(("BTCUSDT", LISTED_MS),)) as sim, store_at(tmp_path) as store:
        archives = BinanceArchiveClient(sim.session, sim.server.url)
        for ref in refs:
            data = await archives.fetch(ref)
            checksum = await archives.fetch_checksum(ref)
            assert data is not None
            assert checksum is not None
            (folder / ref.zip_name).write_bytes(data)
            (folder / f"{ref.zip_name}.CHECKSUM").write_text(checksum)
        # 2 January as the bare CSV; 3 January damaged in transit
        jan2 = folder / refs[2].zip_name
        with zipfile.ZipFile(io.BytesIO(jan2.read_bytes())) as z:
            (folder / refs[2].member_name).write_bytes(z.read(refs[2].member_name))
        jan2.unlink()
        jan3 = folder / refs[3].zip_name
        broken = bytearray(jan3.read_bytes())
        broken[len(broken) // 2] ^= 0xFF
        jan3.write_bytes(bytes(broken))
        report = await import_folder(folder, V, "BTCUSDT", BINANCE_SPOT, Ingestor(store))
        stored = list((await store.read(V, "BTCUSDT", M1)).candles())
        coverage = await Ingestor(store).coverage(V, "BTCUSDT")
        expected = [c for c in truth(sim) if c.open_time_ms < refs[3].start_ms]
    assert report.verified == 3
    assert [name for name, _ in report.refused] == [refs[3].zip_name]
    assert "checksum" in report.refused[0][1]
    assert stored == expected
    assert report.candles == len(expected)
    assert coverage.inception_ms == LISTED_MS  # the first minute on file

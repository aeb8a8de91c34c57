"""Download of KIS's stock master files (종목 마스터): static zips on KIS's public download host,
no authentication and no rate limit. Pure Python (requests + zipfile), like the rest of the client."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import requests

MASTER_FILE_NAMES = ("kospi_code.mst", "kosdaq_code.mst")


class MasterDownloadError(ValueError):
    """A master file could not be fetched or was not the expected zip; the message names the URL."""


def download_master_files(base_url: str, folder: str | Path, *, timeout: float = 30.0,
                          names: tuple[str, ...] = MASTER_FILE_NAMES) -> list[Path]:
    """Fetch ``<name>.zip`` for each name under ``base_url`` and unzip ``<name>`` into ``folder``."""
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        url = f"{base_url.rstrip('/')}/{name}.zip"
        try:
            response = requests.get(url, timeout=timeout)
            response.raise_for_status()
            with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
                member = next((m for m in archive.namelist() if m.endswith(name)), None)
                if member is None:
                    raise MasterDownloadError(f"{name} is not in the archive")
                (target / name).write_bytes(archive.read(member))
        except (requests.RequestException, zipfile.BadZipFile, MasterDownloadError) as error:
            raise MasterDownloadError(f"could not download {url}: {error}") from error
        paths.append(target / name)
    return paths

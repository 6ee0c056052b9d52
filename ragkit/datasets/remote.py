"""Evaluation data on demand: each built-in benchmark's raw files fetched from its pinned public upstream.

:data:`SOURCES` pins, per built-in dataset, the upstream repository, the commit and each file's path
and (where established) sha256. :func:`download` fetches them into ``<root>/<name>/`` (default root:
``RAGKIT_HOME/datasets``), the way ``sklearn.datasets.fetch_*`` does:

- **upstream layout**: files keep their upstream names (``questions_df.csv``, ``hotpotqa_train.json``,
  ...); the loaders read that layout (the full benchmark, every question, ``split: full``) as well as
  the dev layout of a development checkout (``questions_dev.csv``, ``*.dev.json``, ``split: dev``).
- **mirror**: ``mirror`` (``--mirror URL``, else ``$RAGKIT_DATASETS_MIRROR``) replaces the host
  ``https://raw.githubusercontent.com``; a mirror serves ``<mirror>/<owner>/<repo>/<commit>/<path>``.
- **resumable**: bytes arrive in ``<root>/.downloads/<name>/<file>.part``; a rerun asks for the rest
  with an HTTP ``Range`` request (a server that ignores it sends the whole file again).
- **atomic**: the dataset folder receives the files only once every file is complete and matches its
  pinned sha256; a mismatching file is deleted. Nothing half-written ever sits under a loader's file name.
- **provenance**: ``<root>/<name>/DOWNLOAD.json`` records repository, commit, URL, size and sha256 of
  every file, and whether the hash was checked against a pinned value.

Pinned hashes: files that the development copy holds byte for byte (the corpora) carry the sha256 of
that copy. Files the development copy only holds as a dev subset (the question files) could not be
hashed offline: their ``sha256`` is ``None``, they are checked for size and format only, and the hash
they arrived with is recorded in ``DOWNLOAD.json`` (``"verified": false``).

Example:
    >>> sorted(SOURCES) == sorted(["chroma_chunking_eval", "hipporag_multihop", "leval_longdoc", "qasper_sample"])
    True
    >>> src = SOURCES["chroma_chunking_eval"]
    >>> src.url(src.files[0], mirror="http://127.0.0.1:8000/")
    'http://127.0.0.1:8000/brandonstarxel/chunking_evaluation/d451fc4cf56e417b755994b4ca5212fd5057c0d2/chunking_evaluation/evaluation_framework/general_evaluation_data/corpora/state_of_the_union.md'
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ragkit.datasets.root import default_data_root
from ragkit.errors import DatasetError

__all__ = ["MIRROR_ENV", "SOURCES", "UPSTREAM_HOST", "DatasetSource", "RemoteFile", "download", "is_present"]

#: Environment variable naming a mirror of the upstream host (``--mirror`` beats it).
MIRROR_ENV = "RAGKIT_DATASETS_MIRROR"
#: The host every upstream file is served from (GitHub's raw-file host).
UPSTREAM_HOST = "https://raw.githubusercontent.com"
_CHUNK = 1 << 16


@dataclass(frozen=True)
class RemoteFile:
    """One upstream file: its path in the repository, its local name, and its pinned sha256 (``None``: not established).

    Example:
        >>> RemoteFile("data/x.json", "x.json", None).verified
        False
    """

    path: str
    name: str
    sha256: str | None
    size: int | None = None

    @property
    def verified(self) -> bool:
        """Whether the download is checked against a pinned sha256."""
        return self.sha256 is not None


@dataclass(frozen=True)
class DatasetSource:
    """Where a built-in dataset comes from: repository, pinned commit, files, licence, approximate size.

    Example:
        >>> SOURCES["qasper_sample"].repo
        'rajsr-p/qasper-personal'
    """

    name: str
    repo: str
    commit: str
    files: tuple[RemoteFile, ...]
    license: str
    size: str
    questions: str

    def url(self, file: RemoteFile, mirror: str | None = None) -> str:
        """The URL of ``file``: ``<mirror or upstream host>/<repo>/<commit>/<path>``."""
        host = (mirror or UPSTREAM_HOST).rstrip("/")
        return f"{host}/{self.repo}/{self.commit}/{file.path}"

    @property
    def upstream(self) -> str:
        """``owner/repo@commit`` (short commit)."""
        return f"{self.repo}@{self.commit[:8]}"


_CHROMA_DIR = "chunking_evaluation/evaluation_framework/general_evaluation_data"
_CHROMA_CORPORA = {  # sha256 of the development copy, byte-identical to the upstream file (datasets/README.md)
    "state_of_the_union": ("6fc21d560d31eb2421e337596feea0f83f1fa9ca02c6c4e47bc26959d7531b37", 48_995),
    "wikitexts": ("74cafcdb771185ecb9f22cc41b73e2e44477e0636ecf9cf1f96fd6ee0f4b86c0", 118_612),
    "chatlogs": ("543a98f82b2a6a492349fd7f8c9d6c3e78d1a4af81d13c79a7fd513c3f65bda6", 40_013),
    "finance": ("1c48d0156820abc88e46e5c992fa0cd2708b07ae59a3771b2b18234b7208561f", 737_905),
    "pubmed": ("0fd9242ffb253695e5d0f0215cb79a66a2a8f1236591e764c60d370747684ced", 501_965),
}
_LEVAL_TASKS = ("legal_contract_qa", "natural_question", "scientific_qa")

#: Built-in datasets by name: their pinned upstream files.
SOURCES: dict[str, DatasetSource] = {
    "chroma_chunking_eval": DatasetSource(
        "chroma_chunking_eval", "brandonstarxel/chunking_evaluation", "d451fc4cf56e417b755994b4ca5212fd5057c0d2",
        tuple(RemoteFile(f"{_CHROMA_DIR}/corpora/{c}.md", f"{c}.md", sha, size)
              for c, (sha, size) in _CHROMA_CORPORA.items())
        + (RemoteFile(f"{_CHROMA_DIR}/questions_df.csv", "questions_df.csv", None),),
        "MIT (repository); corpora from third-party sources, research use with attribution",
        "1.7 MB", "472 questions"),
    "hipporag_multihop": DatasetSource(
        "hipporag_multihop", "OSU-NLP-Group/HippoRAG", "b144c46df14cabe5f5822d8caded4bec5f709461",
        (RemoteFile("data/hotpotqa_train.json", "hotpotqa_train.json", None),
         RemoteFile("data/hotpotqa_train_corpus.json", "hotpotqa_train_corpus.json",
                    "2671af600095eabc5b3f3bc3728861682f14fcced84ef1386509a8ae92647f88", 640_159),
         RemoteFile("data/musique_train.json", "musique_train.json", None),
         RemoteFile("data/musique_train_corpus.json", "musique_train_corpus.json",
                    "79845dd085f9df49c8ce440208763e2611aeb86c81ee0bdad2094504381bb651", 974_514)),
        "MIT (repository); HotpotQA CC BY-SA 4.0, MuSiQue CC BY 4.0", "3.6 MB", "100 + 100 questions"),
    "leval_longdoc": DatasetSource(
        "leval_longdoc", "OpenLMLab/LEval", "cd34b050269148aed75acbbe4a599873ad0f37e9",
        tuple(RemoteFile(f"LEval-data/Open-ended-tasks/{t}.jsonl", f"{t}.jsonl", None) for t in _LEVAL_TASKS),
        "GPL-3.0 (repository); CUAD CC BY 4.0, Natural Questions CC BY-SA 3.0, Qasper CC BY 4.0",
        "5 MB", "447 questions"),
    "qasper_sample": DatasetSource(
        "qasper_sample", "rajsr-p/qasper-personal", "d40559b9f8468dc3c94620503a9d83075df07016",
        (RemoteFile("qasper-original-sample.json", "qasper-original-sample.json", None),),
        "no licence file (copying repository); Qasper CC BY 4.0", "0.4 MB", "51 questions"),
}


def _source(name: str) -> DatasetSource:
    if name not in SOURCES:
        raise DatasetError(f"no download source for dataset {name!r}; downloadable: {', '.join(SOURCES)} (or 'all')")
    return SOURCES[name]


def is_present(name: str, root: str | Path | None = None) -> bool:
    """Whether every upstream file of ``name`` is in ``<root>/<name>/`` (or its dev layout is).

    Example:
        >>> import tempfile
        >>> is_present("qasper_sample", tempfile.mkdtemp())
        False
    """
    from ragkit.datasets.files import DEV_NAMES  # the dev layout of a development checkout

    folder = Path(root or default_data_root()).expanduser() / name
    return all((folder / f.name).is_file() or (folder / DEV_NAMES.get(f.name, f.name)).is_file()
               for f in _source(name).files)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch(url: str, part: Path, label: str) -> None:
    """Append the rest of ``url`` to ``part`` (HTTP Range from its size); raise on a short transfer."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=60)  # noqa: S310 - http(s) URLs built from SOURCES
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to send: the part is complete
            return
        raise
    with response:
        if have and response.status != 206:  # the server ignored Range: start again
            have = 0
        length = response.headers.get("Content-Length")
        expected = have + int(length) if length is not None else None
        got = have
        with part.open("ab" if have else "wb") as fh, tqdm(
                total=expected, initial=have, unit="B", unit_scale=True, desc=label, leave=False, disable=None) as bar:
            for block in iter(lambda: response.read(_CHUNK), b""):
                fh.write(block)
                got += len(block)
                bar.update(len(block))
    if expected is not None and got < expected:
        raise ConnectionError(f"transfer cut short at {got:,} of {expected:,} bytes")


def _offline_error(src: DatasetSource, mirror: str | None, folder: Path, exc: BaseException) -> DatasetError:
    urls = "\n".join(f"  {src.url(f, mirror)}  ->  {folder / f.name}" for f in src.files)
    return DatasetError(
        f"could not download {src.name} ({type(exc).__name__}: {exc}). Files fetched so far are kept and the "
        f"next run resumes them. If this machine is offline, fetch these files elsewhere and place them by "
        f"hand:\n{urls}\nor point --mirror / ${MIRROR_ENV} at a mirror that serves <owner>/<repo>/<commit>/<path>."
    )


def download(name: str, root: str | Path | None = None, *, mirror: str | None = None, force: bool = False) -> Path:
    """Fetch dataset ``name``'s pinned upstream files into ``<root>/<name>/`` and return that folder.

    Already complete datasets are left as they are (``force`` fetches again). ``mirror`` (else
    ``$RAGKIT_DATASETS_MIRROR``) replaces ``https://raw.githubusercontent.com``.

    Args:
        name: a key of :data:`SOURCES` (``chroma_chunking_eval``, ``hipporag_multihop``, ...).
        root: the data root to fill (default ``RAGKIT_HOME/datasets``).
        mirror: base URL serving ``<owner>/<repo>/<commit>/<path>``.
        force: fetch even when the files are present.

    Returns:
        The dataset folder, ready for :func:`ragkit.datasets.load_dataset` with ``data_root=root``.

    Raises:
        DatasetError: unknown name; the network or mirror is unreachable (the message lists every URL
            and where to place the file by hand); a file's sha256 differs from the pinned one.

    Example:
        >>> import tempfile
        >>> download("nope", tempfile.mkdtemp())
        Traceback (most recent call last):
        ...
        ragkit.errors.DatasetError: no download source for dataset 'nope'; downloadable: chroma_chunking_eval, hipporag_multihop, leval_longdoc, qasper_sample (or 'all')
    """
    src = _source(name)
    base = Path(root or default_data_root()).expanduser()
    folder = base / name
    if not force and all((folder / f.name).is_file() for f in src.files):
        return folder
    mirror = mirror or os.environ.get(MIRROR_ENV) or None
    staging = base / ".downloads" / name
    staging.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    for file in src.files:
        url = src.url(file, mirror)
        done, part = staging / file.name, staging / f"{file.name}.part"
        if not done.is_file():
            try:
                _fetch(url, part, f"{name}/{file.name}")
            except (OSError, http.client.HTTPException) as exc:  # URLError, refused, reset, cut short
                raise _offline_error(src, mirror, folder, exc) from exc
            digest = _sha256(part)
            if file.sha256 is not None and digest != file.sha256:
                part.unlink()
                raise DatasetError(
                    f"{url}: sha256 {digest} differs from the pinned {file.sha256} (the file was deleted). The "
                    f"upstream or mirror serves other bytes than commit {src.commit[:8]}; check the mirror, or "
                    "report it if the upstream changed."
                )
            os.replace(part, done)
        digest = _sha256(done)
        records.append({"file": file.name, "url": url, "bytes": done.stat().st_size, "sha256": digest,
                        "verified": file.sha256 is not None})
    folder.mkdir(parents=True, exist_ok=True)
    for file in src.files:  # every file complete and checked: move them in
        os.replace(staging / file.name, folder / file.name)
    (folder / "DOWNLOAD.json").write_text(json.dumps(
        {"dataset": name, "repository": src.repo, "commit": src.commit, "split": "full", "license": src.license,
         "files": records}, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(staging, ignore_errors=True)
    return folder

"""The study export as one zip: responses.csv, participants.csv, codebook.csv, design.json,
and, once there are main responses to analyse, analysis.txt with the plots as SVG files.

The zip is produced as a stream of byte chunks: rows come from the database in chunks
(`.iterator`) and each chunk of the archive is handed on as soon as it is written, so the CSV
members take constant memory however large the study. The analysis is collected in the same
pass over the responses and does grow with the study: about 30 bytes per main response
(see study.results.analysis), plus its model, which is fitted only up to MODEL_MAX_CELLS and so
bounded. The same stream feeds the dashboard's download and `export_study --zip`.
"""

import csv
import io
import json
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.utils import timezone

from study.design.launch import study_design
from study.models import Study
from study.results.columns import (
    EXPORT_COLUMNS,
    PARTICIPANT_COLUMNS,
    PARTICIPANT_EXPORT_COLUMNS,
    RESPONSE_COLUMNS,
)
from study.results.reports import (
    study_analysis,
    study_analysis_collected,
    study_analysis_options,
    study_response_collector,
)
from study.results.rows import study_export_rows, study_participant_rows

if TYPE_CHECKING:
    from study.results.analysis import ResponseCollector

RESPONSES_CSV = "responses.csv"
PARTICIPANTS_CSV = "participants.csv"
CODEBOOK_CSV = "codebook.csv"
DESIGN_JSON = "design.json"
ZIP_MEMBERS = (RESPONSES_CSV, PARTICIPANTS_CSV, CODEBOOK_CSV, DESIGN_JSON)
ANALYSIS_TXT = "analysis.txt"
CODEBOOK_COLUMNS = ("file", "column", "type", "unit", "allowed_values", "description")
ROWS_PER_CHUNK = 500


@dataclass(frozen=True)
class AnalysisFile:
    name: str
    description: str
    content: str


def study_analysis_files(
    *, study: Study, collector: "ResponseCollector | None" = None
) -> list[AnalysisFile]:
    """analysis.txt and the plots, with the participants the dashboard counts by default;
    none when there is nothing to analyse. `collector`: one that was given every export row
    (see `study_export_zip`), else the responses are read here."""
    from study.results.analysis import PLOT_TITLES, AnalysisError, report_svgs, report_text

    options = study_analysis_options(study=study, params={})
    try:
        if collector is None:
            report = study_analysis(study=study, **vars(options))
        else:
            report = study_analysis_collected(study=study, collector=collector)
    except AnalysisError:
        return []
    pilot = "included" if options.include_pilot else "left out"
    header = (
        f"Study {study.slug}: outcome statistics of the main trials; pilot participants "
        f"{pilot}, excluded participants left out.\n\n"
    )
    text = AnalysisFile(
        ANALYSIS_TXT,
        "outcome statistics of the main trials, as analyze_study prints them: accuracy per "
        "condition with participant-clustered 95% Wilson intervals, omnibus tests, "
        "Holm-corrected pairwise comparisons, reliance on the AI, calibration, response times",
        header + report_text(report),
    )
    plots = [
        AnalysisFile(f"{name}.svg", f"plot (SVG): {PLOT_TITLES[name]}, 95% intervals", svg)
        for name, svg in report_svgs(report).items()
    ]
    return [text, *plots]


def codebook_rows(analysis_files: Iterable[AnalysisFile] = ()) -> Iterator[dict]:
    """Every column of both CSVs with its meaning, from the same declarations the writers use;
    then the analysis files, each as a whole (blank column)."""
    for file_name, columns in (
        (RESPONSES_CSV, RESPONSE_COLUMNS),
        (PARTICIPANTS_CSV, PARTICIPANT_COLUMNS),
    ):
        for column in columns:
            yield {
                "file": file_name,
                "column": column.name,
                "type": column.type,
                "unit": column.unit,
                "allowed_values": column.allowed,
                "description": column.description,
            }
    for file in analysis_files:
        yield {
            "file": file.name,
            "column": "",
            "type": "",
            "unit": "",
            "allowed_values": "",
            "description": file.description,
        }


def study_design_document(*, study: Study) -> dict:
    """design.json: the frozen design and the hash participants were stamped with. Hashing
    `design` (sorted keys, no spaces) gives `config_hash` again while the study is unchanged."""
    return {
        "study": study.slug,
        "status": study.status,
        "config_hash": study.config_hash,
        "exported_at": timezone.now().isoformat(),
        "design": study_design(study=study),
        # Not part of the design (they may change while the study runs, each change logged).
        "quotas": {
            "default": study.participants_per_condition,
            "conditions": {
                condition.name: condition.quota or study.participants_per_condition
                for condition in study.conditions.order_by("pk")
            },
        },
    }


class _Pipe:
    """A write-only file that keeps what was written until it is taken. Having no `tell`,
    it makes zipfile write a streamable archive (sizes in data descriptors)."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def write(self, data) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


def _csv_member(
    archive: zipfile.ZipFile, pipe: _Pipe, name: str, columns: tuple, rows: Iterable[dict]
) -> Iterator[bytes]:
    info = zipfile.ZipInfo(name, date_time=timezone.now().timetuple()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    with (
        archive.open(info, "w", force_zip64=True) as member,
        io.TextIOWrapper(member, encoding="utf-8", newline="") as text,
    ):
        writer = csv.DictWriter(text, fieldnames=columns)
        writer.writeheader()
        for count, row in enumerate(rows, start=1):
            writer.writerow(row)
            if count % ROWS_PER_CHUNK == 0:
                text.flush()
                yield pipe.take()
    yield pipe.take()


def study_export_zip(*, study: Study) -> Iterator[bytes]:
    """The export archive, chunk by chunk. Apply the exclusion rules first
    (services.participants_apply_exclusions) so the flags are current.

    The responses are read once: each row goes to responses.csv and to the analysis, which
    is computed when they are all written and comes last in the archive."""
    options = study_analysis_options(study=study, params={})
    collector = study_response_collector(study=study, **vars(options))

    def rows_collected() -> Iterator[dict]:
        for row in study_export_rows(study=study):
            collector.add(row)
            yield row

    pipe = _Pipe()
    with zipfile.ZipFile(pipe, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        yield from _csv_member(archive, pipe, RESPONSES_CSV, EXPORT_COLUMNS, rows_collected())
        analysis_files = study_analysis_files(study=study, collector=collector)
        yield from _csv_member(
            archive,
            pipe,
            PARTICIPANTS_CSV,
            PARTICIPANT_EXPORT_COLUMNS,
            study_participant_rows(study=study),
        )
        yield from _csv_member(
            archive, pipe, CODEBOOK_CSV, CODEBOOK_COLUMNS, codebook_rows(analysis_files)
        )
        design = json.dumps(study_design_document(study=study), indent=2, sort_keys=True)
        archive.writestr(DESIGN_JSON, design)
        yield pipe.take()
        for file in analysis_files:
            archive.writestr(file.name, file.content)
            yield pipe.take()
    yield pipe.take()

"""No patient data in logs: UIDs appear only as digests, names and IDs never."""

from __future__ import annotations

import logging

import pytest

from ich.dicom import TooFewSlicesError, load
from ich.logs import uid_digest


def test_ingestion_logs_digests_only(series, write, study, caplog) -> None:
    datasets = series()
    caplog.set_level(logging.DEBUG)
    load(write(datasets))
    with pytest.raises(TooFewSlicesError):
        load(write(series(slices=2)))
    text = caplog.text
    assert uid_digest(datasets[0].SeriesInstanceUID) in text
    for secret in (
        study.study_uid,
        datasets[0].SeriesInstanceUID,
        study.patient_id,
        study.patient_name,
        study.accession,
    ):
        assert secret not in text

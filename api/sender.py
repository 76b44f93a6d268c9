"""C-STORE of a study's DICOM SEG and SR back to a destination AE (pynetdicom), so that the
findings appear in PACS next to the images."""

from __future__ import annotations

from pathlib import Path

from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE

STORED = frozenset({0x0000, 0xB000, 0xB006, 0xB007})
"""C-STORE success, and the warnings that still mean stored (PS3.4 B.2.3)."""


class DeliveryError(RuntimeError):
    """The destination AE refused the association, a SOP class or an object."""


def send_objects(files: list[Path], destination: str, calling_ae: str) -> None:
    """C-STORE ``files`` to ``destination`` (``AE@host:port``) in one association, offering
    each object's own transfer syntax and the two uncompressed ones.

    Raises:
        DeliveryError: the association, a SOP class or an object was refused.
    """
    called, _, address = destination.partition("@")
    host, _, port = address.rpartition(":")
    datasets = [dcmread(path) for path in files]
    ae = AE(ae_title=calling_ae)
    for dataset in datasets:
        syntaxes = {dataset.file_meta.TransferSyntaxUID, ExplicitVRLittleEndian}
        ae.add_requested_context(dataset.SOPClassUID, [*syntaxes, ImplicitVRLittleEndian])
    association = ae.associate(host, int(port), ae_title=called)
    if not association.is_established:
        raise DeliveryError(f"{destination} did not accept an association from {calling_ae}.")
    try:
        accepted = {c.abstract_syntax for c in association.accepted_contexts}
        for dataset in datasets:
            if dataset.SOPClassUID not in accepted:
                raise DeliveryError(
                    f"{destination} does not accept {dataset.SOPClassUID.name} objects."
                )
            try:
                status = association.send_c_store(dataset)
            except ValueError as refused:  # pynetdicom: no context for its transfer syntax
                raise DeliveryError(
                    f"{destination} refused {dataset.Modality}: {refused}"
                ) from None
            code = getattr(status, "Status", None)
            if code is None or code not in STORED:
                raise DeliveryError(f"{destination} answered {code!r} to {dataset.Modality}.")
    finally:
        association.release()

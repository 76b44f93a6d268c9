"""The DICOM C-STORE receiver (pynetdicom) that PACS and modalities push studies to.

It accepts every storage SOP class in every transfer syntax the gateway can decode (a PACS
routes whole studies: scouts, dose reports and key images come along, and refusing them fails
many routers' transfers; series selection then analyses the axial CT series and reports what it
skipped), and Verification (C-ECHO). Each instance is written to disk as its fragments arrive
(pynetdicom's chunked receive: never held whole in memory) and filed under its study by the
same assembler as STOW-RS, so a study is analysed ``dicom_quiet_s`` after its last instance,
as a job of the job store like any upload. A full disk, a full queue or a study over the file
limit is refused with "Out of resources" (0xA700); an instance that is not readable DICOM with
"Cannot understand" (0xC000). Associations from calling AE titles not allowed are rejected.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import uuid
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.uid import AllTransferSyntaxes
from pynetdicom import AE, AllStoragePresentationContexts, _config, evt
from pynetdicom.events import Event
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.transport import ThreadedAssociationServer

from api.intake import decodable
from api.problems import ProblemError
from api.settings import Settings
from api.stow import OUT_OF_RESOURCES, Assembler, Refused
from ich.logs import uid_digest

log = logging.getLogger("api.dimse")
SUCCESS = 0x0000
STORE_TIMEOUT_S = 60.0
"""Longest wait for the assembler to file one instance before answering out of resources."""
TRANSFER_SYNTAXES = [uid for uid in AllTransferSyntaxes if decodable(uid)]
_config.STORE_RECV_CHUNKED_DATASET = True  # instances go to a file, not memory


@dataclass
class Receiver:
    """The C-STORE SCP of one gateway process; its handlers run in pynetdicom's threads and
    hand each stored file to the assembler on the gateway's event loop."""

    settings: Settings
    assembler: Assembler
    client_id: str
    loop: asyncio.AbstractEventLoop
    server: ThreadedAssociationServer | None = field(default=None)

    @property
    def staging(self) -> Path:
        return self.settings.spool_dir / "dimse-incoming"

    def start(self) -> None:
        ae = AE(ae_title=self.settings.dicom_ae_title)
        ae.maximum_associations = self.settings.dicom_max_associations
        ae.require_calling_aet = list(self.settings.dicom_allowed_aes)
        for context in AllStoragePresentationContexts:
            ae.add_supported_context(context.abstract_syntax, TRANSFER_SYNTAXES)
        ae.add_supported_context(Verification)
        address = (self.settings.dicom_host, self.settings.dicom_port or 0)
        self.server = ae.start_server(
            address, block=False, evt_handlers=[(evt.EVT_C_STORE, self._store)]
        )
        log.info("DICOM receiver %s on %s:%d", ae.ae_title, *self.server.server_address[:2])

    def stop(self) -> None:
        """Stop listening and abort associations still open (their senders retry the
        instances not acknowledged); blocking, so call it off the event loop."""
        if self.server is not None:
            self.server.shutdown()
            for association in self.server.active_associations:
                association.abort()

    def _store(self, event: Event) -> int:
        """One instance: to disk, then to its study; the DIMSE status of the outcome."""
        self.staging.mkdir(parents=True, exist_ok=True)  # a sweep may have removed it
        free = shutil.disk_usage(self.staging).free
        if free < self.settings.min_free_bytes:
            log.warning("refused an instance: %d bytes free on the spool", free)
            return OUT_OF_RESOURCES
        path = self.staging / f"{uuid.uuid4().hex}.dcm"
        try:
            shutil.move(event.dataset_path, path)
            filed = asyncio.run_coroutine_threadsafe(
                self.assembler.add(self.client_id, [path]), self.loop
            )
            try:
                (outcome,) = filed.result(STORE_TIMEOUT_S)
            except FutureTimeout:
                filed.cancel()
                raise
        except ProblemError as refused:  # queue full
            log.warning("refused an instance: %s", refused.code)
            return OUT_OF_RESOURCES
        except (OSError, RuntimeError, FutureTimeout):  # RuntimeError: the loop is closing
            log.exception("could not store an instance")
            return OUT_OF_RESOURCES
        finally:
            path.unlink(missing_ok=True)  # moved into the study's spool when it was filed
        if isinstance(outcome, Refused):
            return outcome.reason
        log.debug("stored %s", uid_digest(outcome.sop_instance_uid))
        return SUCCESS

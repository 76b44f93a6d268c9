"""Detection and volumetry of acute intracranial hemorrhage on non-contrast head CT."""

__version__ = "0.1.0"

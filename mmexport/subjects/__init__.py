"""What an artifact covers (base.py): a connector (connector.py) or a part of a model folder
(mmexport.hf.subject). Every stage takes a Subject and asks it, not which kind it is."""

from .base import Subject
from .connector import ConnectorSubject, resolve

__all__ = ["ConnectorSubject", "Subject", "resolve"]

"""Records, readers and writers, and the embedded parallel corpus."""

from lingualift.data.corpus import CORPUS_LANGUAGES, ParallelCorpus, parse_books
from lingualift.data.io import FieldMap, iter_rows, read_records, write_records
from lingualift.data.records import Record, fingerprint, text_hash

__all__ = [
    "CORPUS_LANGUAGES",
    "FieldMap",
    "ParallelCorpus",
    "Record",
    "fingerprint",
    "iter_rows",
    "parse_books",
    "read_records",
    "text_hash",
    "write_records",
]

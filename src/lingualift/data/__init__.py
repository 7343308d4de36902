"""Records, the one reader for user data (every format, folder and ``hf:`` dataset), writers,
and the embedded parallel corpus."""

from lingualift.data.columns import Columns, merge_columns, shorthand_columns
from lingualift.data.corpus import CORPUS_LANGUAGES, ParallelCorpus, parse_books
from lingualift.data.io import FieldMap, read_records, write_records
from lingualift.data.readers import describe_source, iter_rows
from lingualift.data.records import Record, fingerprint, text_hash

__all__ = [
    "CORPUS_LANGUAGES",
    "Columns",
    "FieldMap",
    "ParallelCorpus",
    "Record",
    "describe_source",
    "fingerprint",
    "iter_rows",
    "merge_columns",
    "parse_books",
    "read_records",
    "shorthand_columns",
    "text_hash",
    "write_records",
]

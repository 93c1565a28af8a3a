"""Parsers of nvidia-smi's outputs, one module per format, over one table of fields.

``specs`` (where each field is printed, and its converter), ``fields`` (reading them and the
parsed ``SmiReport``), then ``xml_format`` (``-q -x``), ``text_format`` (``-q``) and
``csv_format`` (``--query-gpu``). The live source is ``ca4_producer.nvidia_smi``.
"""

from ca4_producer.smi.csv_format import parse_query_csv, parse_query_gpu_csv
from ca4_producer.smi.fields import SmiReport
from ca4_producer.smi.text_format import parse_text
from ca4_producer.smi.xml_format import parse_xml

__all__ = ["SmiReport", "parse_query_csv", "parse_query_gpu_csv", "parse_text", "parse_xml"]

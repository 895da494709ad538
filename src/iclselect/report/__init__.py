"""report.html: one self-contained page on why each sample was kept or dropped."""

from iclselect.report.page import SECTIONS, write_compare_report, write_report

__all__ = ["SECTIONS", "write_compare_report", "write_report"]

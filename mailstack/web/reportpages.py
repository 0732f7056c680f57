"""
The class report in the console: C{/reports} (a table) and C{/reports.csv}
(the same rows as a CSV download), from L{mailstack.web.reports}. An admin
sees every student; anyone else sees their own row only.
"""

from twisted.internet import defer

from mailstack.web.page import Answer, Page
from mailstack.web.reports import PROTOCOLS, contextReport, isoTime, reportCSV, studentReport

__all__ = ["reportResources", "CONSOLE_LINKS"]

CONSOLE_LINKS = [("Class report", "/reports", False)]


def rowsFor(context, principal):
    """
    The rows C{principal} may see: every student's for an admin, else their
    own. @return: a Deferred firing with a list of
    L{mailstack.web.reports.StudentReport}.
    """
    if context.activity is None:
        return defer.succeed([])
    if principal.admin:
        return contextReport(context)
    return defer.succeed([studentReport(context.activity, principal.address)])


class ReportPage(Page):
    """C{/reports}: the class report as a table."""

    title = "Class report"

    def get(self, request, principal):
        d = rowsFor(self.context, principal)
        d.addCallback(lambda rows: Answer("reports.html", rows=rows, protocols=PROTOCOLS,
                                          everyone=principal.admin, isoTime=isoTime))
        return d


class ReportCSV(Page):
    """C{/reports.csv}: the same rows as a CSV file to download."""

    title = "Class report (CSV)"

    def get(self, request, principal):
        def answer(rows):
            request.setHeader(b"content-type", b"text/csv; charset=utf-8")
            request.setHeader(b"content-disposition",
                              b'attachment; filename="class-report.csv"')
            return reportCSV(rows).encode("utf-8")
        return rowsFor(self.context, principal).addCallback(answer)


def reportResources(context, auth):
    """
    The report pages, for L{mailstack.web.app.buildRoot}.

    @return: C{{path tuple: resource}}.
    """
    return {(b"reports",): ReportPage(context, auth),
            (b"reports.csv",): ReportCSV(context, auth)}

"""The built-in report renderers (Markdown and self-contained HTML)."""

from optbench import hookimpl


@hookimpl
def optbench_register_reporters(register):
    from optbench.reports.renderers import HTMLReporter, MarkdownReporter

    register(MarkdownReporter())
    register(HTMLReporter())

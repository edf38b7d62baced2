"""`python -m discviewer` — the same as the `discviewer` command (an entry point, not core code:
it hands over to the top layer by module name, so core never imports the UI)."""
import runpy

runpy.run_module("discviewer.ui.cli", run_name="__main__", alter_sys=True)

"""Entry script of the PyInstaller bundle (packaging/discviewer.spec): the `discviewer` command."""
import sys

from discviewer.ui.cli import main

if __name__ == "__main__":
    sys.exit(main())

"""SigmaHQ content kept under the data directory: fetched (``norrvakt rules update``) or
imported (``norrvakt rules import``), verified, unpacked one version per folder, and diffed.

Layout (docs/rules.md, "Getting and updating SigmaHQ content")::

    <data_dir>/content/sigma/<version>/<package>/rules*/...   one folder per kept version
    <data_dir>/content/sigma/<version>/manifest.json          where it came from, what was verified
    <data_dir>/content/sigma/current                          the version in use (one line)
"""

"""The ``gyeongbo`` command line (:mod:`gyeongbo_cli.main`): the composition root.

It registers the sub-commands that live next to the code they drive (``streams``,
``simulators``, ``gyeongbo.stack``), so it sits above every package and none imports it
(docs/design.md §2, "Layers"). ``python -m gyeongbo_cli`` runs it as the console script does.
"""
